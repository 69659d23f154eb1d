//! Replays: what a subscription wants before its live records (`resume`, `history`, a
//! snapshot), served from memory under the channel lock when memory covers it, otherwise read
//! from Kafka ([`Need`] → [`Fetched`]) while the subscription's live records wait, then handed
//! over without a gap or a duplicate. The Kafka reader speaks these same types.

use std::collections::{BTreeMap, HashMap};
use std::ops::Range;
use std::sync::Arc;

use super::{add_subscriber, find_subscriber, scope_of, Buffer, Hub, SessionHandle, Sieve, Terms};
use crate::catalogue::ChannelId;
use crate::config::Deliver;
use crate::protocol::Item;
use crate::state::{sort_by_time, ChannelMemory, Held, Missing, Target};

/// What a subscriber wants before live records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Want {
    /// Live records only (plus the snapshot, where the channel keeps one).
    Live,
    /// Every record after these offsets (partition → last offset seen).
    Resume(BTreeMap<i32, i64>),
    /// The newest N records.
    Newest(usize),
}

/// Records read from Kafka for one subscription: raw records as the reader returns them
/// (`R` = the reader's owned record), then encoded for the channel (`R` = [`Held`]).
#[derive(Debug, Clone)]
pub struct Fetched<R = Held> {
    /// Records of the subscription's target.
    pub records: Vec<R>,
    /// Offsets read per partition (`start..end`, end exclusive).
    pub covered: BTreeMap<i32, Range<i64>>,
    /// Kafka no longer holds part of what was asked, or the read limit cut it short.
    pub gap: bool,
}

impl<R> Default for Fetched<R> {
    fn default() -> Self {
        Fetched {
            records: Vec::new(),
            covered: BTreeMap::new(),
            gap: false,
        }
    }
}

/// What must be read from Kafka before a subscription can complete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Need {
    /// These ranges (resume).
    Ranges(Vec<Missing>),
    /// The newest records of every partition of the topic, each before the given offset when
    /// listed (memory and live cover the rest), else up to the partition's end.
    Tails(BTreeMap<i32, i64>),
}

/// How a subscription attached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attached {
    pub replayed: usize,
    pub gap: bool,
}

/// The start of a subscription.
#[derive(Debug)]
pub enum Begun {
    /// Memory covered it: confirmed, replayed, live.
    Attached(Attached),
    /// Registered with its live records held back; read `need` from Kafka, then call
    /// [`Hub::complete`] with the read and `held`.
    Reading { need: Need, held: Vec<Held> },
}

/// A subscription being started or completed: its channel, key and session, what it wants
/// before live records, and the most records its replay may hold.
#[derive(Clone, Copy)]
pub struct Asked<'a> {
    pub channel: ChannelId,
    pub key: Option<&'a str>,
    pub session: &'a Arc<SessionHandle>,
    pub want: &'a Want,
    pub limit: usize,
}

/// What a subscription's confirmation says: the key's snapshot, how many records the replay
/// holds, whether part of what was asked is gone, and where live records continue.
pub struct Confirmed<'a> {
    pub snapshot: Option<&'a Held>,
    pub replayed: usize,
    pub gap: bool,
    pub positions: &'a BTreeMap<i32, i64>,
}

impl Hub {
    /// Starts a subscription with its replay, under the channel lock so that no record is
    /// routed in between. When memory covers what `want` asks, it queues the confirmation
    /// (built by `confirm` from the key's snapshot, the replay count and the gap flag), the
    /// replayed records, and registers the session for the live records after them. Otherwise
    /// it registers the session with its live records held back and says what to read from
    /// Kafka: the range up to the live position, which the held-back records continue.
    pub fn begin(
        &self,
        asked: Asked<'_>,
        terms: Terms,
        confirm: impl FnOnce(Confirmed<'_>) -> Item,
    ) -> Begun {
        let Asked {
            channel: id,
            key,
            session,
            want,
            limit,
        } = asked;
        let channel = self.catalogue.channel(id);
        let mut state = self.states[id as usize].lock();
        let memory = &state.memory;
        let target = key.map_or(Target::All, Target::Key);
        let (replay, need) = match want {
            Want::Live => {
                let replay = if channel.deliver() == Deliver::Broadcast && channel.limits.snapshot {
                    memory.snapshots(limit)
                } else {
                    Vec::new()
                };
                (replay, None)
            }
            Want::Resume(seen) => match memory.replay_after(target, seen) {
                Ok(replay) => (replay, None),
                Err(missing) => {
                    // Memory serves what follows the missing ranges.
                    let mut held = memory
                        .replay_after(target, &BTreeMap::new())
                        .unwrap_or_default();
                    held.retain(|h| {
                        seen.get(&h.partition).is_none_or(|last| h.offset > *last)
                            && missing.iter().all(|m| {
                                m.partition != h.partition || m.until.is_some_and(|u| h.offset >= u)
                            })
                    });
                    (held, Some(Need::Ranges(missing)))
                }
            },
            Want::Newest(count) => {
                let (held, enough) = memory.newest(target, *count);
                if enough {
                    (held, None)
                } else {
                    let before = memory
                        .live_partitions()
                        .into_iter()
                        .filter_map(|p| memory.complete_from(target, p).map(|from| (p, from)))
                        .collect();
                    (held, Some(Need::Tails(before)))
                }
            }
        };
        if let Some(need) = need {
            let buffer = Buffer {
                records: std::collections::VecDeque::new(),
                limit,
                overflowed: false,
            };
            add_subscriber(
                channel,
                &mut state.subscribers,
                key,
                session,
                None,
                Some(buffer),
                terms,
            );
            return Begun::Reading { need, held: replay };
        }
        let snapshot = key.and_then(|k| state.memory.snapshot(k)).cloned();
        let cursors = live_cursors(&state.memory, &replay);
        let scope = scope_of(channel, session);
        let sieve = Sieve {
            scope: scope.as_deref(),
            filter: terms.filter.as_deref(),
        };
        let attached = queue_replay(
            &asked,
            sieve,
            replay,
            false,
            snapshot.as_ref(),
            &cursors,
            confirm,
        );
        // Live subscriptions need no filter: every live record comes after these positions.
        let filter = if *want == Want::Live {
            None
        } else {
            after(cursors)
        };
        add_subscriber(
            channel,
            &mut state.subscribers,
            key,
            session,
            filter,
            None,
            terms,
        );
        Begun::Attached(attached)
    }

    /// Completes a subscription [`Self::begin`] left reading: under the channel lock, queues
    /// the confirmation, then what was read (`fetched`, None when the read failed), then the
    /// records memory held at the start, then the live records held back meanwhile — without
    /// duplicates — and switches the session to live records.
    pub fn complete(
        &self,
        asked: Asked<'_>,
        held: Vec<Held>,
        fetched: Option<Fetched>,
        confirm: impl FnOnce(Confirmed<'_>) -> Item,
    ) -> Attached {
        let Asked {
            channel: id,
            key,
            session,
            want,
            ..
        } = asked;
        let channel = self.catalogue.channel(id);
        let mut state = self.states[id as usize].lock();
        let state = &mut *state;
        let Some(subscriber) = find_subscriber(channel, &mut state.subscribers, key, session)
        else {
            // Unsubscribed (session closing) while reading.
            return Attached {
                replayed: 0,
                gap: true,
            };
        };
        let buffer = subscriber.buffer.take();
        let client_filter = subscriber.filter.clone();
        let read_failed = fetched.is_none();
        let fetched = fetched.unwrap_or_default();
        let mut gap = fetched.gap || read_failed;
        let mut before: Vec<Held> = fetched.records;
        before.extend(held);
        dedup(&mut before);
        sort_by_time(&mut before);
        if let Want::Newest(count) = want {
            before.drain(..before.len().saturating_sub(*count));
        }
        let mut replay = before;
        if let Some(buffer) = buffer {
            gap |= buffer.overflowed;
            replay.extend(buffer.records);
        }
        if let Want::Resume(seen) = want {
            replay.retain(|h| seen.get(&h.partition).is_none_or(|last| h.offset > *last));
        }
        dedup_positions(&mut replay);
        let cursors = live_cursors(&state.memory, &replay);
        let snapshot = key.and_then(|k| state.memory.snapshot(k)).cloned();
        let scope = scope_of(channel, session);
        let sieve = Sieve {
            scope: scope.as_deref(),
            filter: client_filter.as_deref(),
        };
        let attached = queue_replay(
            &asked,
            sieve,
            replay,
            gap,
            snapshot.as_ref(),
            &cursors,
            confirm,
        );
        if let Some(subscriber) = find_subscriber(channel, &mut state.subscribers, key, session) {
            subscriber.after = after(cursors);
        }
        attached
    }
}

/// Replay filter positions: everything before the live position (already routed) and every
/// replayed record are covered.
fn live_cursors(memory: &ChannelMemory, replay: &[Held]) -> BTreeMap<i32, i64> {
    let mut cursors = BTreeMap::new();
    for partition in memory.live_partitions() {
        if let Some(next) = memory.live_next(partition) {
            cursors.insert(partition, next - 1);
        }
    }
    for held in replay {
        let cursor = cursors.entry(held.partition).or_insert(held.offset);
        *cursor = (*cursor).max(held.offset);
    }
    cursors
}

fn after(cursors: BTreeMap<i32, i64>) -> Option<Box<[(i32, i64)]>> {
    (!cursors.is_empty()).then(|| cursors.into_iter().collect())
}

/// Queues the confirmation and the replay (its newest `limit` records; fewer means a gap).
fn queue_replay(
    asked: &Asked<'_>,
    sieve: Sieve<'_>,
    mut replay: Vec<Held>,
    mut gap: bool,
    snapshot: Option<&Held>,
    positions: &BTreeMap<i32, i64>,
    confirm: impl FnOnce(Confirmed<'_>) -> Item,
) -> Attached {
    let (session, limit) = (asked.session, asked.limit);
    // Memory and Kafka hold every scope's records, filtered or not: only the subscription's go.
    replay.retain(|h| sieve.admits(h));
    let snapshot = snapshot.filter(|h| sieve.admits(h));
    if replay.len() > limit {
        replay.drain(..replay.len() - limit);
        gap = true;
    }
    session.outbox.push_control(confirm(Confirmed {
        snapshot,
        replayed: replay.len(),
        gap,
        positions,
    }));
    let replayed = replay.len();
    session
        .outbox
        .push_replay(replay.into_iter().map(|h| Item::Record(h.record)));
    Attached { replayed, gap }
}

/// Removes repeated positions from records sorted by time (each partition ascending).
fn dedup(records: &mut Vec<Held>) {
    let mut seen = std::collections::HashSet::new();
    records.retain(|h| seen.insert((h.partition, h.offset)));
}

/// Removes records at or below a position already replayed on their partition, keeping order.
fn dedup_positions(records: &mut Vec<Held>) {
    let mut last: HashMap<i32, i64> = HashMap::new();
    records.retain(|h| {
        let keep = last.get(&h.partition).is_none_or(|l| h.offset > *l);
        if keep {
            last.insert(h.partition, h.offset);
        }
        keep
    });
}
