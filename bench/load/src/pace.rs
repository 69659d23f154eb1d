//! The scheduled load producer of `capacity` and `curve`: record `n` of a step is *scheduled*
//! at `start + n / rate` and carries that time in its `ts`, whenever it is actually handed to
//! librdkafka. Latency measured from `ts` therefore includes any delay of the generator itself
//! (no coordinated omission: a generator that stalls does not stop the clock of the records it
//! owes), and how late the generator was is reported separately as `behind_us_max`.
//!
//! The producer runs on its own OS thread, apart from the current-thread runtime that reads the
//! sessions: readers busy with a burst of deliveries cannot delay the schedule (they can still
//! compete for a core if the generator is pinned to one; `generator_behind_ms_max` shows it).

use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use crate::kafka::Pacer;
use crate::procstat::now_us;

/// What one scheduled run produced, all counted.
#[derive(Clone, Copy, Debug, Default)]
pub struct ScheduledReport {
    /// Records handed to librdkafka.
    pub produced: u64,
    /// Of those, records whose scheduled time lies in the measured window.
    pub in_window: u64,
    /// The largest lateness of a record: actual hand-off time − scheduled time, in µs.
    pub behind_us_max: u64,
    /// Times librdkafka's queue was full (the record is retried on the next pass).
    pub queue_full: u64,
    /// Records of the schedule never handed over (given up [`GIVE_UP_AFTER`] past its end).
    pub unsent: u64,
    pub secs: f64,
}

/// A producer still behind this long after its schedule's end stops trying.
pub const GIVE_UP_AFTER: Duration = Duration::from_secs(10);

/// Scheduled time of record `n`, µs after the start, at `rate` records/s.
pub fn offset_us(n: u64, rate: f64) -> u64 {
    (n as f64 * 1e6 / rate) as u64
}

/// How many records are due `elapsed_us` after the start (the first one at 0), at most `total`.
pub fn due(elapsed_us: u64, rate: f64, total: u64) -> u64 {
    (((elapsed_us as f64) * rate / 1e6) as u64 + 1).min(total)
}

/// Produces at `rate` records/s for `dur`, record `n` stamped `start + n / rate` (µs since the
/// epoch; start is now). Records stamped in `window` are counted. Blocking: runs on its own
/// thread.
pub fn run_blocking(
    pacer: &mut Pacer,
    rate: f64,
    dur: Duration,
    window: (u64, u64),
) -> ScheduledReport {
    let start = Instant::now();
    let start_us = now_us();
    let total = (rate * dur.as_secs_f64()).round() as u64;
    let mut r = ScheduledReport::default();
    pacer.window = window;
    pacer.in_window = 0;
    let full_before = pacer.queue_full;
    if rate <= 0.0 {
        return r;
    }
    let give_up = dur + GIVE_UP_AFTER;
    while r.produced < total {
        if start.elapsed() > give_up {
            // Still owing records this long after the schedule ended (librdkafka's queue stays
            // full): what is left is reported unsent, its lateness counted.
            r.unsent = total - r.produced;
            let at = offset_us(r.produced, rate);
            let late = (start.elapsed().as_micros() as u64).saturating_sub(at);
            r.behind_us_max = r.behind_us_max.max(late);
            break;
        }
        let elapsed = start.elapsed().as_micros() as u64;
        let due = due(elapsed, rate, total);
        while r.produced < due {
            let at = offset_us(r.produced, rate);
            if !pacer.send_at(start_us + at) {
                // librdkafka's queue is full: try again after a short pause; the lateness
                // this causes is measured.
                break;
            }
            let late = (start.elapsed().as_micros() as u64).saturating_sub(at);
            r.behind_us_max = r.behind_us_max.max(late);
            r.produced += 1;
        }
        if r.produced >= total {
            break;
        }
        let next = offset_us(r.produced, rate);
        let now = start.elapsed().as_micros() as u64;
        let wait = next.saturating_sub(now).clamp(50, 1000);
        std::thread::sleep(Duration::from_micros(wait));
    }
    r.in_window = pacer.in_window;
    r.queue_full = pacer.queue_full - full_before;
    r.secs = start.elapsed().as_secs_f64();
    r
}

/// Runs [`run_blocking`] on a new thread; the pacer comes back with the report.
pub fn spawn(
    mut pacer: Pacer,
    rate: f64,
    dur: Duration,
    window: (u64, u64),
) -> oneshot::Receiver<(Pacer, ScheduledReport)> {
    let (tx, rx) = oneshot::channel();
    std::thread::Builder::new()
        .name("kwb-load-producer".into())
        .spawn(move || {
            let r = run_blocking(&mut pacer, rate, dur, window);
            let _ = tx.send((pacer, r));
        })
        .expect("spawn the producer thread");
    rx
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_is_evenly_spaced_and_due_counts_the_first_at_zero() {
        assert_eq!(offset_us(0, 1000.0), 0);
        assert_eq!(offset_us(3, 1000.0), 3000);
        assert_eq!(due(0, 1000.0, 100), 1);
        assert_eq!(due(999, 1000.0, 100), 1);
        assert_eq!(due(1000, 1000.0, 100), 2);
        assert_eq!(due(10_000_000, 1000.0, 100), 100);
    }
}
