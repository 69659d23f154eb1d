//! Process CPU time and memory from /proc, the clock, and the fd limit.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Microseconds since the epoch (what records carry in `ts`).
#[inline]
pub fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

pub fn clk_tck() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as u64
    } else {
        100
    }
}

/// utime + stime of every thread of `pid` (live and exited), in seconds.
pub fn cpu_secs(pid: u32) -> Option<f64> {
    cpu_split(pid).map(|(u, s)| u + s)
}

/// (utime, stime) of every thread of `pid`, in seconds.
pub fn cpu_split(pid: u32) -> Option<(f64, f64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may contain spaces), which ends with the last ')'.
    let rest = &text[text.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state); utime is field 14, stime 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    let tck = clk_tck() as f64;
    Some((utime as f64 / tck, stime as f64 / tck))
}

/// Resident set size of `pid` in KiB.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// CPU use of one process over an interval.
pub struct CpuMeter {
    pid: Option<u32>,
    start_cpu: f64,
    start_split: (f64, f64),
    start: Instant,
}

impl CpuMeter {
    pub fn start(pid: Option<u32>) -> CpuMeter {
        let split = pid.and_then(cpu_split).unwrap_or((0.0, 0.0));
        CpuMeter {
            pid,
            start_cpu: split.0 + split.1,
            start_split: split,
            start: Instant::now(),
        }
    }

    /// CPU seconds used since start, and the wall seconds elapsed.
    pub fn read(&self) -> Option<(f64, f64)> {
        let pid = self.pid?;
        let now = cpu_secs(pid)?;
        Some((now - self.start_cpu, self.start.elapsed().as_secs_f64()))
    }

    /// User and system CPU seconds used since start.
    pub fn split(&self) -> Option<(f64, f64)> {
        let (u, s) = cpu_split(self.pid?)?;
        Some((u - self.start_split.0, s - self.start_split.1))
    }

    /// Percent of one core used since start.
    pub fn percent(&self) -> Option<f64> {
        self.read()
            .map(|(cpu, wall)| (cpu / wall.max(1e-9) * 1000.0).round() / 10.0)
    }
}

/// Raises the soft limit of open files to the hard limit; returns the new soft limit.
pub fn raise_nofile() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain libc calls on a local struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 1024;
        }
        if lim.rlim_cur < lim.rlim_max {
            let wanted = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &wanted) == 0 {
                lim.rlim_cur = lim.rlim_max;
            }
        }
    }
    lim.rlim_cur
}

/// Open-file limit (soft) of another process, from /proc/<pid>/limits.
pub fn nofile_of(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/limits")).ok()?;
    text.lines()
        .find(|l| l.starts_with("Max open files"))?
        .split_whitespace()
        .nth(3)?
        .parse()
        .ok()
}
