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

/// Machine-wide CPU time from the first line of /proc/stat (clock ticks): (total, iowait,
/// steal). Total is user+nice+system+idle+iowait+irq+softirq+steal (guest time is already in
/// user).
pub fn system_ticks() -> Option<(u64, u64, u64)> {
    let text = std::fs::read_to_string("/proc/stat").ok()?;
    parse_system_ticks(text.lines().next()?)
}

fn parse_system_ticks(line: &str) -> Option<(u64, u64, u64)> {
    let mut f = line.split_whitespace();
    if f.next()? != "cpu" {
        return None;
    }
    let v: Vec<u64> = f.take(8).map(|x| x.parse().unwrap_or(0)).collect();
    if v.len() < 8 {
        return None;
    }
    Some((v.iter().sum(), v[4], v[7]))
}

/// Share of all CPUs' time over an interval that was stolen by the hypervisor (`steal_pct`)
/// or idle waiting for I/O (`iowait_pct`), in percent, from /proc/stat deltas.
pub struct SysMeter(Option<(u64, u64, u64)>);

impl SysMeter {
    pub fn start() -> SysMeter {
        SysMeter(system_ticks())
    }

    /// (steal_pct, iowait_pct) since start.
    pub fn read(&self) -> (Option<f64>, Option<f64>) {
        let (Some(a), Some(b)) = (self.0, system_ticks()) else {
            return (None, None);
        };
        let total = b.0.saturating_sub(a.0).max(1) as f64;
        let pct =
            |x: u64, y: u64| Some((y.saturating_sub(x) as f64 / total * 1000.0).round() / 10.0);
        (pct(a.2, b.2), pct(a.1, b.1))
    }
}

/// The 1-minute load average (/proc/loadavg).
pub fn loadavg1() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_ticks_sum_the_first_eight_fields() {
        let t = parse_system_ticks("cpu  10 1 5 100 7 0 2 3 4 0").unwrap();
        assert_eq!(t, (128, 7, 3));
        assert!(parse_system_ticks("cpu0 1 2 3 4 5 6 7 8").is_none());
    }
}
