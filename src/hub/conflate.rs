//! `max_rate`: per subscription and record key, at most N messages a second.
//! A record arriving sooner is held, replacing any record of that key already held (latest
//! value wins, never an old one); the hub's flusher sends it when its key's interval has
//! passed, marked `"conflated": <records skipped>`. Replays never pass through here.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::Hub;
use crate::catalogue::ChannelId;
use crate::outbox::Pushed;
use crate::protocol::Item;
use crate::state::Held;

/// Held-back records of one subscription, per key hash.
pub(super) struct Conflation {
    interval: Duration,
    slots: HashMap<u64, Slot>,
}

struct Slot {
    /// When this key may be sent again.
    next: Instant,
    pending: Option<Held>,
    /// Records of the key replaced while held (never sent).
    skipped: u64,
}

/// Idle keys beyond this many are forgotten when a record is offered (bounds the map on
/// channels with many keys).
const MAX_IDLE_SLOTS: usize = 1024;

impl Conflation {
    pub(super) fn new(per_second: u32) -> Self {
        Conflation {
            interval: Duration::from_secs(1) / per_second.max(1),
            slots: HashMap::new(),
        }
    }

    /// Whether `held` may be sent now; otherwise it is held (replacing the key's older one),
    /// and the replaced record counts as skipped: returns the count of records it replaced.
    pub(super) fn offer(&mut self, key: u64, held: &Held, now: Instant) -> Result<(), u64> {
        if self.slots.len() > MAX_IDLE_SLOTS {
            self.slots
                .retain(|_, s| s.pending.is_some() || s.next > now);
        }
        let slot = self.slots.entry(key).or_insert(Slot {
            next: now,
            pending: None,
            skipped: 0,
        });
        if slot.pending.is_none() && now >= slot.next {
            slot.next = now + self.interval;
            return Ok(());
        }
        let replaced = u64::from(slot.pending.replace(held.clone()).is_some());
        slot.skipped += replaced;
        Err(replaced)
    }

    /// The held records now due, each with what to send (marked `conflated` when records of
    /// its key were skipped) and its key hash.
    pub(super) fn due(&mut self, now: Instant) -> Vec<(u64, Held, Item)> {
        let mut out = Vec::new();
        for (key, slot) in &mut self.slots {
            if now < slot.next {
                continue;
            }
            if let Some(held) = slot.pending.take() {
                let frame = match slot.skipped {
                    0 => Item::Record(held.record.clone()),
                    n => Item::Conflated(held.record.clone(), n),
                };
                slot.skipped = 0;
                slot.next = now + self.interval;
                out.push((*key, held, frame));
            }
        }
        out
    }

    pub(super) fn has_pending(&self) -> bool {
        self.slots.values().any(|s| s.pending.is_some())
    }
}

impl Hub {
    /// Sends the records `max_rate` held back whose interval has passed (latest per key,
    /// marked `conflated`). Called every few milliseconds by a task of the app; costs an
    /// atomic load per channel while nothing is held back.
    pub fn flush_conflated(&self) {
        let now = Instant::now();
        for (i, flag) in self.conflating.iter().enumerate() {
            if !flag.swap(false, Ordering::AcqRel) {
                continue;
            }
            let channel = self.catalogue.channel(i as ChannelId);
            let mut state = self.states[i].lock();
            let (mut delivered, mut still) = (0, false);
            let subscribers = &mut state.subscribers;
            let lists =
                std::iter::once(&mut subscribers.all).chain(subscribers.by_key.values_mut());
            for subscriber in lists.flatten() {
                let Some(rate) = &mut subscriber.rate else {
                    continue;
                };
                for (key, held, frame) in rate.due(now) {
                    let pushed = subscriber.session.outbox.push_message(
                        &frame,
                        i as ChannelId,
                        key,
                        held.timestamp,
                        channel.spec.on_slow_client,
                    );
                    delivered += u64::from(matches!(pushed, Pushed::Queued | Pushed::Behind));
                }
                still |= rate.has_pending();
            }
            drop(state);
            if still {
                flag.store(true, Ordering::Release);
            }
            channel.metrics.delivered.inc_by(delivered);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held(n: i64) -> Held {
        Held {
            record: std::sync::Arc::new(crate::protocol::Delivery::new(crate::protocol::Parts {
                channel: 0,
                prefix: &crate::protocol::MessagePrefix::new("c"),
                key: None,
                data: &n.to_string(),
                partition: 0,
                offset: n,
                timestamp: None,
                headers: &[],
                schema_id: None,
                value: None,
            })),
            partition: 0,
            offset: n,
            timestamp: n,
            scope: None,
        }
    }

    #[test]
    fn the_latest_value_wins_and_says_how_many_were_skipped() {
        let mut c = Conflation::new(2);
        let t0 = Instant::now();
        assert_eq!(c.offer(1, &held(1), t0), Ok(()));
        assert_eq!(c.offer(2, &held(2), t0), Ok(()), "keys are independent");
        assert_eq!(c.offer(1, &held(3), t0), Err(0));
        assert_eq!(c.offer(1, &held(4), t0), Err(1));
        assert_eq!(c.offer(1, &held(5), t0), Err(1));
        assert!(c.due(t0 + Duration::from_millis(100)).is_empty());
        let due = c.due(t0 + Duration::from_millis(500));
        assert_eq!(due.len(), 1);
        assert!(
            matches!(&due[0].2, Item::Conflated(d, 2) if d.data() == "5"),
            "{:?}",
            due[0].2
        );
        assert!(!c.has_pending());
        assert_eq!(
            c.offer(1, &held(6), t0 + Duration::from_millis(600)),
            Err(0)
        );
        let due = c.due(t0 + Duration::from_millis(1000));
        assert!(
            matches!(&due[0].2, Item::Record(d) if d.data() == "6"),
            "only delayed: {:?}",
            due[0].2
        );
    }
}
