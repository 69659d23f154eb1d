//! Channels → subscribers, and fan-out. Knows nothing of Kafka or HTTP: it routes an encoded
//! frame to the sessions subscribed to a channel (all of them, those of one key, or for reply
//! channels the session or user named by the record) and queues it on each one's [`Outbox`].
//!
//! Each channel has its own lock, held while a record is routed and while a session
//! (un)subscribes, so a subscription takes effect between two records, never during one.

use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasher, Hasher};
use std::ops::Range;
use std::sync::Arc;

use parking_lot::Mutex;

use crate::config::{ChannelConfig, Deliver, SlowClientPolicy};
use crate::metrics::ChannelMetrics;
use crate::outbox::{Outbox, Pushed};
use crate::protocol::Frame;
use crate::state::{sort_by_time, ChannelMemory, Held, MemoryLimits, MemoryStats, Missing, Target};

/// Index of a channel in the config's `channels` list.
pub type ChannelId = u32;

/// What the hub knows of a session.
pub struct SessionHandle {
    /// Process-unique number.
    pub id: u64,
    /// Sent in `welcome` and in the `bridge-session` header.
    pub public_id: String,
    /// Authenticated user id; `None` for anonymous sessions.
    pub user: Option<String>,
    pub outbox: Outbox,
}

/// Where a record goes.
#[derive(Debug, Clone, Copy)]
pub enum Route<'a> {
    /// Broadcast channels: every subscriber. By-key channels: subscribers of this key.
    Key(Option<&'a str>),
    /// Reply channels: the session named by `bridge-session`, else the user in `bridge-user`.
    Reply {
        session: Option<&'a str>,
        user: Option<&'a str>,
    },
}

/// Outcome of one fan-out.
#[derive(Default)]
pub struct Fanout {
    pub delivered: u64,
    pub dropped: u64,
    /// Sessions whose queue went over its bounds and that may still catch up
    /// ([`Pushed::Behind`]): the consumer waits for them before routing more.
    pub behind: Vec<Arc<SessionHandle>>,
    /// The channel sheds (drop_oldest, latest_per_key) rather than waits for a blocked socket.
    pub shed: bool,
}

impl Fanout {
    /// Blocks the calling thread (the Kafka consumer's) until every session left behind has
    /// caught up or closed, at most [`crate::outbox::WRITER_GRACE`] in all
    /// ([`Outbox::wait_for_writer`]): a burst is paced by the sessions that take it instead of
    /// closing them. Called with no hub lock held.
    pub fn wait_for_writers(self) {
        if self.behind.is_empty() {
            return;
        }
        // One deadline for all: sessions that stopped reading cost the consumer one grace at
        // most, not one each.
        let deadline = std::time::Instant::now() + crate::outbox::WRITER_GRACE;
        for session in &self.behind {
            session.outbox.wait_for_writer(deadline, self.shed);
        }
    }
}

/// A subscribed session, with the positions a replay already covered.
struct Subscriber {
    session: Arc<SessionHandle>,
    /// Live records at or below these offsets (per partition) were sent by the replay.
    after: Option<Box<[(i32, i64)]>>,
    /// While its replay is read from Kafka, the subscription's live records wait here.
    buffer: Option<Buffer>,
}

/// Live records held back while a replay is read, at most `limit` (the oldest go first).
struct Buffer {
    records: std::collections::VecDeque<Held>,
    limit: usize,
    overflowed: bool,
}

impl Subscriber {
    fn wants(&self, partition: i32, offset: i64) -> bool {
        match &self.after {
            None => true,
            Some(after) => after
                .iter()
                .all(|(p, last)| *p != partition || offset > *last),
        }
    }
}

#[derive(Default)]
struct Subscribers {
    /// Broadcast channels: every subscriber.
    all: Vec<Subscriber>,
    /// By-key channels: subscribers per key. Reply channels: per session public id.
    by_key: HashMap<String, Vec<Subscriber>>,
    /// Reply channels: subscribers per user.
    by_user: HashMap<String, Vec<Subscriber>>,
}

struct ChannelState {
    subscribers: Subscribers,
    memory: ChannelMemory,
}

pub struct ChannelRoutes {
    pub name: String,
    pub deliver: Deliver,
    pub policy: SlowClientPolicy,
    pub metrics: ChannelMetrics,
    /// Whether the channel keeps snapshots or history at all.
    pub limits: MemoryLimits,
    state: Mutex<ChannelState>,
}

pub struct Hub {
    channels: Vec<ChannelRoutes>,
    index: HashMap<String, ChannelId>,
    hasher: std::collections::hash_map::RandomState,
}

/// Result of a subscribe or unsubscribe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Changed,
    Unchanged,
}

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

/// Records read from Kafka for one subscription.
#[derive(Debug, Default, Clone)]
pub struct Fetched {
    /// Records of the subscription's target.
    pub records: Vec<Held>,
    /// Offsets read per partition (`start..end`, end exclusive).
    pub covered: BTreeMap<i32, Range<i64>>,
    /// Kafka no longer holds part of what was asked, or the read limit cut it short.
    pub gap: bool,
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

impl Hub {
    pub fn new(channels: &[ChannelConfig], metrics: impl Fn(&str) -> ChannelMetrics) -> Self {
        Hub {
            index: channels
                .iter()
                .enumerate()
                .map(|(i, c)| (c.name.clone(), i as ChannelId))
                .collect(),
            channels: channels
                .iter()
                .map(|c| {
                    let limits = MemoryLimits {
                        snapshot: c.snapshot,
                        history: c.history,
                        keyed_history: c.deliver == Deliver::ByKey,
                        max_keys: c.max_keys,
                        max_bytes: c.max_bytes,
                    };
                    ChannelRoutes {
                        name: c.name.clone(),
                        deliver: c.deliver,
                        policy: c.on_slow_client,
                        metrics: metrics(&c.name),
                        limits,
                        state: Mutex::new(ChannelState {
                            subscribers: Subscribers::default(),
                            memory: ChannelMemory::new(limits),
                        }),
                    }
                })
                .collect(),
            hasher: Default::default(),
        }
    }

    pub fn channel_id(&self, name: &str) -> Option<ChannelId> {
        self.index.get(name).copied()
    }

    pub fn channel(&self, id: ChannelId) -> &ChannelRoutes {
        &self.channels[id as usize]
    }

    /// Subscribes for live records only, queueing `confirmation` first (see [`Self::attach`]).
    pub fn subscribe(
        &self,
        id: ChannelId,
        key: Option<&str>,
        session: &Arc<SessionHandle>,
        confirmation: Frame,
    ) -> Change {
        let routes = self.channel(id);
        let mut state = routes.state.lock();
        session.outbox.push_control(confirmation);
        add_subscriber(routes, &mut state.subscribers, key, session, None, None)
    }

    /// Starts a subscription with its replay, under the channel lock so that no record is
    /// routed in between. When memory covers what `want` asks, it queues the confirmation
    /// (built by `confirm` from the key's snapshot, the replay count and the gap flag), the
    /// replayed records, and registers the session for the live records after them. Otherwise
    /// it registers the session with its live records held back and says what to read from
    /// Kafka: the range up to the live position, which the held-back records continue.
    pub fn begin(
        &self,
        id: ChannelId,
        key: Option<&str>,
        session: &Arc<SessionHandle>,
        want: &Want,
        limit: usize,
        confirm: impl FnOnce(Option<&Held>, usize, bool, &BTreeMap<i32, i64>) -> Frame,
    ) -> Begun {
        let routes = self.channel(id);
        let mut state = routes.state.lock();
        let memory = &state.memory;
        let target = key.map_or(Target::All, Target::Key);
        let (replay, need) = match want {
            Want::Live => {
                let replay = if routes.deliver == Deliver::Broadcast && routes.limits.snapshot {
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
                routes,
                &mut state.subscribers,
                key,
                session,
                None,
                Some(buffer),
            );
            return Begun::Reading { need, held: replay };
        }
        let snapshot = key.and_then(|k| state.memory.snapshot(k)).cloned();
        let cursors = live_cursors(&state.memory, &replay);
        let attached = queue_replay(
            session,
            replay,
            false,
            limit,
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
        add_subscriber(routes, &mut state.subscribers, key, session, filter, None);
        Begun::Attached(attached)
    }

    /// Completes a subscription [`Self::begin`] left reading: under the channel lock, queues
    /// the confirmation, then what was read (`fetched`, None when the read failed), then the
    /// records memory held at the start, then the live records held back meanwhile — without
    /// duplicates — and switches the session to live records.
    #[allow(clippy::too_many_arguments)]
    pub fn complete(
        &self,
        id: ChannelId,
        key: Option<&str>,
        session: &Arc<SessionHandle>,
        want: &Want,
        held: Vec<Held>,
        fetched: Option<Fetched>,
        limit: usize,
        confirm: impl FnOnce(Option<&Held>, usize, bool, &BTreeMap<i32, i64>) -> Frame,
    ) -> Attached {
        let routes = self.channel(id);
        let mut state = routes.state.lock();
        let state = &mut *state;
        let Some(subscriber) = find_subscriber(routes, &mut state.subscribers, key, session) else {
            // Unsubscribed (session closing) while reading.
            return Attached {
                replayed: 0,
                gap: true,
            };
        };
        let buffer = subscriber.buffer.take();
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
        let attached = queue_replay(
            session,
            replay,
            gap,
            limit,
            snapshot.as_ref(),
            &cursors,
            confirm,
        );
        if let Some(subscriber) = find_subscriber(routes, &mut state.subscribers, key, session) {
            subscriber.after = after(cursors);
        }
        attached
    }

    /// Removes a subscription added with the same arguments.
    pub fn unsubscribe(&self, id: ChannelId, key: Option<&str>, session: &SessionHandle) -> Change {
        let routes = self.channel(id);
        let mut state = routes.state.lock();
        let subscribers = &mut state.subscribers;
        let removed = match routes.deliver {
            Deliver::Broadcast => remove(&mut subscribers.all, session.id),
            Deliver::ByKey => {
                remove_keyed(&mut subscribers.by_key, key.unwrap_or_default(), session.id)
            }
            Deliver::Reply => {
                if let Some(user) = &session.user {
                    remove_keyed(&mut subscribers.by_user, user, session.id);
                }
                remove_keyed(&mut subscribers.by_key, &session.public_id, session.id)
            }
        };
        if removed {
            routes.metrics.subscriptions.dec();
            Change::Changed
        } else {
            Change::Unchanged
        }
    }

    /// Routes a live record: remembers it (snapshot, history) and queues its frame on every
    /// session the route selects, under the channel's slow-client policy. The caller waits for
    /// the sessions the result lists as behind ([`Fanout::wait_for_writers`]).
    pub fn deliver(&self, id: ChannelId, route: Route<'_>, held: &Held, tombstone: bool) -> Fanout {
        let routes = self.channel(id);
        let key_hash = match (routes.policy, route) {
            (SlowClientPolicy::LatestPerKey, Route::Key(Some(key))) => {
                let mut hasher = self.hasher.build_hasher();
                hasher.write(key.as_bytes());
                hasher.finish()
            }
            _ => 0,
        };
        let mut state = routes.state.lock();
        if state
            .memory
            .live_next(held.partition)
            .is_some_and(|next| held.offset < next)
        {
            // Routed before: the consumer went back to its last commit (a rebalance, a group
            // coordinator that moved) and reads again what live sessions already have.
            drop(state);
            routes.metrics.dropped_redelivered.inc();
            return Fanout::default();
        }
        state.memory.advance(held.partition, held.offset);
        if routes.limits.keeps_anything() {
            let key = match route {
                Route::Key(key) => key,
                Route::Reply { .. } => None,
            };
            let before = state.memory.stats();
            state.memory.remember(key, held, tombstone);
            report_memory(routes, before, state.memory.stats());
        }
        let subscribers = &mut state.subscribers;
        let targets: &mut [Subscriber] = match (routes.deliver, route) {
            (Deliver::Broadcast, _) => &mut subscribers.all,
            (Deliver::ByKey, Route::Key(Some(key))) => subscribers
                .by_key
                .get_mut(key)
                .map_or(&mut [], Vec::as_mut_slice),
            (Deliver::Reply, Route::Reply { session, user }) => {
                let by_session =
                    session.filter(|s| subscribers.by_key.get(*s).is_some_and(|l| !l.is_empty()));
                match (by_session, user) {
                    (Some(s), _) => subscribers
                        .by_key
                        .get_mut(s)
                        .map_or(&mut [], Vec::as_mut_slice),
                    (None, Some(u)) => subscribers
                        .by_user
                        .get_mut(u)
                        .map_or(&mut [], Vec::as_mut_slice),
                    (None, None) => &mut [],
                }
            }
            _ => &mut [],
        };
        let unrouted = targets.is_empty() && routes.deliver == Deliver::Reply;
        let mut fanout = Fanout {
            shed: routes.policy != SlowClientPolicy::Disconnect,
            ..Fanout::default()
        };
        for subscriber in targets.iter_mut() {
            if let Some(buffer) = &mut subscriber.buffer {
                buffer.records.push_back(held.clone());
                if buffer.records.len() > buffer.limit {
                    buffer.records.pop_front();
                    buffer.overflowed = true;
                }
                continue;
            }
            if !subscriber.wants(held.partition, held.offset) {
                continue;
            }
            match subscriber.session.outbox.push_message(
                &held.frame,
                id,
                key_hash,
                held.timestamp,
                routes.policy,
            ) {
                Pushed::Queued => fanout.delivered += 1,
                Pushed::Behind => {
                    fanout.delivered += 1;
                    fanout.behind.push(subscriber.session.clone());
                }
                Pushed::QueuedWithDrop => {
                    fanout.delivered += 1;
                    fanout.dropped += 1;
                }
                Pushed::Dropped | Pushed::Overflow => fanout.dropped += 1,
                Pushed::Closed => {}
            }
        }
        drop(state);
        routes.metrics.delivered.inc_by(fanout.delivered);
        routes.metrics.dropped_queue_full.inc_by(fanout.dropped);
        if unrouted {
            routes.metrics.dropped_undeliverable.inc();
        }
        fanout
    }

    /// A record of the channel's topic was consumed but not routed (undecodable, no key): the
    /// live position still moves past it.
    pub fn skip(&self, id: ChannelId, partition: i32, offset: i64) {
        self.channel(id)
            .state
            .lock()
            .memory
            .advance(partition, offset);
    }

    /// A record read while rebuilding snapshots at start.
    pub fn load_snapshot(&self, id: ChannelId, key: &str, held: &Held, tombstone: bool) {
        let routes = self.channel(id);
        let mut state = routes.state.lock();
        let before = state.memory.stats();
        state.memory.load_snapshot(key, held, tombstone);
        report_memory(routes, before, state.memory.stats());
    }

    /// Subscribers of a channel right now (all keys), for status pages.
    pub fn subscriber_count(&self, id: ChannelId) -> usize {
        let routes = self.channel(id);
        let state = routes.state.lock();
        match routes.deliver {
            Deliver::Broadcast => state.subscribers.all.len(),
            Deliver::ByKey | Deliver::Reply => {
                state.subscribers.by_key.values().map(Vec::len).sum()
            }
        }
    }

    pub fn channels(&self) -> impl Iterator<Item = (ChannelId, &ChannelRoutes)> {
        self.channels
            .iter()
            .enumerate()
            .map(|(i, c)| (i as ChannelId, c))
    }
}

fn add_subscriber(
    routes: &ChannelRoutes,
    subscribers: &mut Subscribers,
    key: Option<&str>,
    session: &Arc<SessionHandle>,
    after: Option<Box<[(i32, i64)]>>,
    buffer: Option<Buffer>,
) -> Change {
    if let Some(existing) = find_subscriber(routes, subscribers, key, session) {
        // Subscribing again (e.g. with a new resume point) replaces the replay state.
        existing.after = after;
        existing.buffer = buffer;
        return Change::Unchanged;
    }
    let subscriber = Subscriber {
        session: session.clone(),
        after,
        buffer,
    };
    match routes.deliver {
        Deliver::Broadcast => subscribers.all.push(subscriber),
        Deliver::ByKey => subscribers
            .by_key
            .entry(key.unwrap_or_default().to_owned())
            .or_default()
            .push(subscriber),
        Deliver::Reply => {
            if let Some(user) = &session.user {
                subscribers
                    .by_user
                    .entry(user.clone())
                    .or_default()
                    .push(Subscriber {
                        session: session.clone(),
                        after: None,
                        buffer: None,
                    });
            }
            subscribers
                .by_key
                .entry(session.public_id.clone())
                .or_default()
                .push(subscriber);
        }
    }
    routes.metrics.subscriptions.inc();
    Change::Changed
}

/// The subscription entry of `session` (for reply channels: the one routed by session id).
fn find_subscriber<'a>(
    routes: &ChannelRoutes,
    subscribers: &'a mut Subscribers,
    key: Option<&str>,
    session: &SessionHandle,
) -> Option<&'a mut Subscriber> {
    let list = match routes.deliver {
        Deliver::Broadcast => &mut subscribers.all,
        Deliver::ByKey => subscribers.by_key.get_mut(key.unwrap_or_default())?,
        Deliver::Reply => subscribers.by_key.get_mut(&session.public_id)?,
    };
    list.iter_mut().find(|s| s.session.id == session.id)
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
    session: &SessionHandle,
    mut replay: Vec<Held>,
    mut gap: bool,
    limit: usize,
    snapshot: Option<&Held>,
    positions: &BTreeMap<i32, i64>,
    confirm: impl FnOnce(Option<&Held>, usize, bool, &BTreeMap<i32, i64>) -> Frame,
) -> Attached {
    if replay.len() > limit {
        replay.drain(..replay.len() - limit);
        gap = true;
    }
    session
        .outbox
        .push_control(confirm(snapshot, replay.len(), gap, positions));
    let replayed = replay.len();
    session
        .outbox
        .push_replay(replay.into_iter().map(|h| h.frame));
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

/// Moves the channel's memory gauges and eviction counter by what changed.
fn report_memory(routes: &ChannelRoutes, before: MemoryStats, after: MemoryStats) {
    let metrics = &routes.metrics;
    metrics.state_keys.set(after.keys as i64);
    metrics.state_bytes.set(after.bytes as i64);
    metrics
        .state_evicted_keys
        .inc_by(after.evicted_keys - before.evicted_keys);
}

fn remove(list: &mut Vec<Subscriber>, id: u64) -> bool {
    // Unsubscribing ends a replay under way too.
    match list.iter().position(|s| s.session.id == id) {
        Some(i) => {
            list.swap_remove(i);
            true
        }
        None => false,
    }
}

fn remove_keyed(map: &mut HashMap<String, Vec<Subscriber>>, key: &str, id: u64) -> bool {
    let Some(list) = map.get_mut(key) else {
        return false;
    };
    let removed = remove(list, id);
    if list.is_empty() {
        map.remove(key);
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Metrics;

    fn channel(yaml: &str) -> ChannelConfig {
        serde_yaml::from_str(yaml).unwrap()
    }

    fn session(id: u64, user: Option<&str>) -> Arc<SessionHandle> {
        Arc::new(SessionHandle {
            id,
            public_id: format!("s{id}"),
            user: user.map(str::to_owned),
            outbox: Outbox::new(crate::outbox::Bounds {
                messages: 64,
                bytes: usize::MAX,
            }),
        })
    }

    fn ok() -> Frame {
        Frame::from("{\"type\":\"subscribed\"}".to_owned())
    }

    fn held(partition: i32, offset: i64) -> Held {
        let text = format!("{{\"p\":{partition},\"o\":{offset}}}");
        let data = 0..text.len();
        Held {
            frame: Frame::from(text),
            partition,
            offset,
            data,
            timestamp: offset,
        }
    }

    /// Every frame queued on a session, drained.
    fn frames(session: &SessionHandle) -> Vec<String> {
        let mut out = Vec::new();
        session.outbox.take(&mut out, usize::MAX);
        out.iter().map(|o| o.frame.as_str().to_owned()).collect()
    }

    fn queued(session: &SessionHandle) -> usize {
        session.outbox.queued_messages()
    }

    fn hub(channels: &[&str]) -> Hub {
        let metrics = Metrics::new(&[], &[], &[]);
        let configs: Vec<ChannelConfig> = channels.iter().map(|c| channel(c)).collect();
        Hub::new(&configs, |name| metrics.channel(name))
    }

    fn routing_hub() -> Hub {
        hub(&[
            "{name: news, topic: t}",
            "{name: bal, topic: t, deliver: by_key, key: {from: record_key}}",
            "{name: replies, topic: t, deliver: reply}",
        ])
    }

    #[test]
    fn broadcast_reaches_every_subscriber_once() {
        let hub = routing_hub();
        let (a, b, c) = (session(1, None), session(2, None), session(3, None));
        hub.subscribe(0, None, &a, ok());
        hub.subscribe(0, None, &b, ok());
        assert_eq!(hub.subscribe(0, None, &b, ok()), Change::Unchanged);
        assert_eq!(
            hub.deliver(0, Route::Key(Some("x")), &held(0, 0), false)
                .delivered,
            2
        );
        assert_eq!((queued(&a), queued(&b), queued(&c)), (1, 1, 0));
        hub.unsubscribe(0, None, &a);
        hub.deliver(0, Route::Key(None), &held(0, 1), false);
        assert_eq!((queued(&a), queued(&b)), (1, 2));
    }

    #[test]
    fn by_key_reaches_only_that_key() {
        let hub = routing_hub();
        let (a, b) = (session(1, None), session(2, None));
        hub.subscribe(1, Some("C-1"), &a, ok());
        hub.subscribe(1, Some("C-2"), &b, ok());
        hub.deliver(1, Route::Key(Some("C-1")), &held(0, 0), false);
        assert_eq!(
            hub.deliver(1, Route::Key(None), &held(0, 1), false)
                .delivered,
            0
        );
        assert_eq!(
            hub.deliver(1, Route::Key(Some("C-3")), &held(0, 2), false)
                .delivered,
            0
        );
        assert_eq!((queued(&a), queued(&b)), (1, 0));
        assert_eq!(hub.unsubscribe(1, Some("C-1"), &a), Change::Changed);
        assert_eq!(hub.unsubscribe(1, Some("C-1"), &a), Change::Unchanged);
        assert_eq!(hub.subscriber_count(1), 1);
    }

    #[test]
    fn replies_go_to_the_session_else_the_user() {
        let hub = routing_hub();
        let (a1, a2, b) = (
            session(1, Some("alice")),
            session(2, Some("alice")),
            session(3, Some("bob")),
        );
        for s in [&a1, &a2, &b] {
            hub.subscribe(2, None, s, ok());
        }
        let route = Route::Reply {
            session: Some("s1"),
            user: Some("alice"),
        };
        hub.deliver(2, route, &held(0, 0), false);
        assert_eq!((queued(&a1), queued(&a2), queued(&b)), (1, 0, 0));
        hub.unsubscribe(2, None, &a1);
        hub.deliver(2, route, &held(0, 1), false);
        assert_eq!((queued(&a1), queued(&a2), queued(&b)), (1, 1, 0));
        let nobody = Route::Reply {
            session: Some("gone"),
            user: Some("carol"),
        };
        assert_eq!(hub.deliver(2, nobody, &held(0, 2), false).delivered, 0);
    }

    fn confirm(
        snapshot: Option<&Held>,
        replayed: usize,
        gap: bool,
        _: &BTreeMap<i32, i64>,
    ) -> Frame {
        Frame::from(format!(
            "subscribed snapshot={:?} replayed={replayed} gap={gap}",
            snapshot.map(|h| h.offset)
        ))
    }

    fn begin(hub: &Hub, key: Option<&str>, s: &Arc<SessionHandle>, want: &Want) -> Begun {
        hub.begin(0, key, s, want, 100, confirm)
    }

    fn messages(s: &SessionHandle) -> Vec<String> {
        frames(s)
            .into_iter()
            .filter(|f| !f.starts_with("subscribed"))
            .collect()
    }

    fn at(offsets: std::ops::Range<i64>) -> Vec<String> {
        offsets.map(|o| format!("{{\"p\":0,\"o\":{o}}}")).collect()
    }

    #[test]
    fn records_read_again_after_a_rebalance_are_not_routed_twice() {
        let hub = hub(&["{name: c, topic: t}"]);
        let s = session(1, None);
        hub.subscribe(0, None, &s, ok());
        for offset in 0..5 {
            hub.deliver(0, Route::Key(None), &held(0, offset), false);
        }
        // The consumer went back to offset 2 (its last commit) on partition 0.
        for offset in 2..7 {
            hub.deliver(0, Route::Key(None), &held(0, offset), false);
        }
        // Another partition is not affected.
        hub.deliver(0, Route::Key(None), &held(1, 0), false);
        let offsets: Vec<String> = frames(&s).into_iter().skip(1).collect();
        assert_eq!(
            offsets,
            (0..7)
                .map(|o| format!("{{\"p\":0,\"o\":{o}}}"))
                .chain(["{\"p\":1,\"o\":0}".to_owned()])
                .collect::<Vec<_>>()
        );
        assert_eq!(hub.channel(0).metrics.dropped_redelivered.get(), 3);
    }

    #[test]
    fn resume_from_memory_then_live_without_duplicates_or_gaps() {
        let hub = hub(&["{name: bal, topic: t, deliver: by_key, key: {from: record_key}, history: 3, snapshot: true}"]);
        for offset in 0..5 {
            hub.deliver(0, Route::Key(Some("K")), &held(0, offset), false);
        }
        let s = session(1, None);
        let begun = begin(&hub, Some("K"), &s, &Want::Resume(BTreeMap::from([(0, 2)])));
        assert!(
            matches!(
                begun,
                Begun::Attached(Attached {
                    replayed: 2,
                    gap: false
                })
            ),
            "{begun:?}"
        );
        hub.deliver(0, Route::Key(Some("K")), &held(0, 5), false);
        let got = frames(&s);
        assert_eq!(got[0], "subscribed snapshot=Some(4) replayed=2 gap=false");
        assert_eq!(&got[1..], at(3..6));
    }

    #[test]
    fn resume_beyond_memory_reads_kafka_and_holds_live_records_back_meanwhile() {
        let hub =
            hub(&["{name: bal, topic: t, deliver: by_key, key: {from: record_key}, history: 2}"]);
        for offset in 0..6 {
            hub.deliver(0, Route::Key(Some("K")), &held(0, offset), false);
        }
        let s = session(1, None);
        let want = Want::Resume(BTreeMap::from([(0, 1)]));
        let Begun::Reading {
            need,
            held: from_memory,
        } = begin(&hub, Some("K"), &s, &want)
        else {
            panic!("memory holds only 4 and 5");
        };
        assert_eq!(
            need,
            Need::Ranges(vec![Missing {
                partition: 0,
                from: 2,
                until: Some(4)
            }])
        );
        // Live records while Kafka is read: held back, not lost, not sent early.
        hub.deliver(0, Route::Key(Some("K")), &held(0, 6), false);
        assert!(frames(&s).is_empty());
        let fetched = Fetched {
            records: vec![held(0, 2), held(0, 3)],
            covered: BTreeMap::from([(0, 2..4)]),
            gap: false,
        };
        let attached = hub.complete(
            0,
            Some("K"),
            &s,
            &want,
            from_memory,
            Some(fetched),
            100,
            confirm,
        );
        assert_eq!(
            attached,
            Attached {
                replayed: 5,
                gap: false
            }
        );
        hub.deliver(0, Route::Key(Some("K")), &held(0, 7), false);
        assert_eq!(messages(&s), at(2..8));
    }

    #[test]
    fn a_replay_filter_stops_live_duplicates_of_records_read_from_kafka() {
        // A partition not routed live yet: the consumer is behind the read.
        let hub = hub(&["{name: news, topic: t, history: 0}"]);
        let s = session(1, None);
        let want = Want::Resume(BTreeMap::from([(0, 9)]));
        let Begun::Reading {
            need,
            held: from_memory,
        } = begin(&hub, None, &s, &want)
        else {
            panic!()
        };
        assert_eq!(
            need,
            Need::Ranges(vec![Missing {
                partition: 0,
                from: 10,
                until: None
            }])
        );
        for offset in 8..12 {
            hub.deliver(0, Route::Key(None), &held(0, offset), false);
        }
        let fetched = Fetched {
            records: vec![held(0, 10), held(0, 11)],
            covered: BTreeMap::from([(0, 10..12)]),
            gap: false,
        };
        assert_eq!(
            hub.complete(0, None, &s, &want, from_memory, Some(fetched), 100, confirm)
                .replayed,
            2
        );
        for offset in 12..14 {
            hub.deliver(0, Route::Key(None), &held(0, offset), false);
        }
        assert_eq!(messages(&s), at(10..14));
    }

    #[test]
    fn a_failed_read_still_attaches_with_a_gap() {
        let hub = hub(&["{name: news, topic: t, history: 0}"]);
        let s = session(1, None);
        let want = Want::Resume(BTreeMap::from([(0, 3)]));
        let Begun::Reading {
            held: from_memory, ..
        } = begin(&hub, None, &s, &want)
        else {
            panic!()
        };
        hub.deliver(0, Route::Key(None), &held(0, 9), false);
        let attached = hub.complete(0, None, &s, &want, from_memory, None, 100, confirm);
        assert_eq!(
            attached,
            Attached {
                replayed: 1,
                gap: true
            }
        );
    }

    #[test]
    fn newest_records_come_from_memory_when_it_holds_enough() {
        let hub =
            hub(&["{name: bal, topic: t, deliver: by_key, key: {from: record_key}, history: 5}"]);
        for offset in 0..5 {
            hub.deliver(0, Route::Key(Some("K")), &held(0, offset), false);
        }
        let s = session(1, None);
        assert!(matches!(
            begin(&hub, Some("K"), &s, &Want::Newest(2)),
            Begun::Attached(Attached { replayed: 2, .. })
        ));
        assert_eq!(messages(&s), at(3..5));
        assert!(matches!(
            begin(&hub, Some("K"), &session(2, None), &Want::Newest(9)),
            Begun::Reading {
                need: Need::Tails(_),
                ..
            }
        ));
    }

    #[test]
    fn time_order_keeps_each_partition_in_offset_order() {
        let mut records = vec![held(1, 5), held(0, 2), held(0, 1), held(1, 3)];
        records[2].timestamp = 100; // partition 0, offset 1, stamped later than offset 2
        crate::state::sort_by_time(&mut records);
        let order: Vec<(i32, i64)> = records.iter().map(|h| (h.partition, h.offset)).collect();
        assert_eq!(order, [(1, 3), (1, 5), (0, 1), (0, 2)]);
    }

    #[test]
    fn snapshots_follow_tombstones_and_ignore_older_loads() {
        let hub = hub(&[
            "{name: bal, topic: t, deliver: by_key, key: {from: record_key}, snapshot: true}",
        ]);
        hub.deliver(0, Route::Key(Some("K")), &held(0, 7), false);
        hub.load_snapshot(0, "K", &held(0, 3), false);
        let s = session(1, None);
        begin(&hub, Some("K"), &s, &Want::Live);
        assert_eq!(
            frames(&s),
            ["subscribed snapshot=Some(7) replayed=0 gap=false"]
        );
        hub.deliver(0, Route::Key(Some("K")), &held(0, 8), true);
        hub.load_snapshot(0, "K", &held(0, 5), false);
        let t = session(2, None);
        begin(&hub, Some("K"), &t, &Want::Live);
        assert_eq!(
            frames(&t),
            ["subscribed snapshot=None replayed=0 gap=false"]
        );
    }

    #[test]
    fn memory_is_bounded_by_keys_and_evictions_raise_the_floor() {
        let hub = hub(&["{name: bal, topic: t, deliver: by_key, key: {from: record_key}, snapshot: true, history: 2, max_keys: 3}"]);
        for (offset, key) in ["a", "b", "c", "d", "e"].iter().enumerate() {
            hub.deliver(0, Route::Key(Some(key)), &held(0, offset as i64), false);
        }
        assert_eq!(hub.channel(0).metrics.state_keys.get(), 3);
        assert_eq!(hub.channel(0).metrics.state_evicted_keys.get(), 2);
        // `a` was dropped: resuming it from before its record needs Kafka.
        let s = session(1, None);
        let begun = begin(
            &hub,
            Some("a"),
            &s,
            &Want::Resume(BTreeMap::from([(0, -1)])),
        );
        assert!(
            matches!(
                begun,
                Begun::Reading {
                    need: Need::Ranges(_),
                    ..
                }
            ),
            "{begun:?}"
        );
    }
}
