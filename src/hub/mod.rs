//! Channels → subscribers, and fan-out. Knows nothing of Kafka or HTTP: it routes a shared
//! record ([`crate::protocol::Delivery`]) to the sessions subscribed to a channel (all of them, those of one key, or for reply
//! channels the session or user named by the record) and queues it on each one's [`Outbox`].
//!
//! Each channel has its own lock, held while a record is routed and while a session
//! (un)subscribes, so a subscription takes effect between two records, never during one.

use std::hash::BuildHasher;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use parking_lot::Mutex;

use crate::catalogue::{Catalogue, Channel, ChannelId};
use crate::config::{Deliver, SlowClientPolicy};
use crate::outbox::{Outbox, Pushed};
use crate::predicate::Predicate;
use crate::protocol::Item;
use crate::state::{ChannelMemory, Held};

mod conflate;
mod filter;
mod lists;
mod replay;
#[cfg(test)]
mod tests;

use conflate::Conflation;
use filter::{RecordSubject, Sieve};
pub use lists::scope_of;
use lists::{find_subscriber, remove, remove_keyed, report_memory, KeyMap};

pub use replay::{Asked, Attached, Begun, Confirmed, Fetched, Need, Want};

/// What the hub knows of a session.
pub struct SessionHandle {
    /// Process-unique number.
    pub id: u64,
    /// Sent in `welcome` and in the `bridge-session` header.
    pub public_id: String,
    /// Authenticated user id; `None` for anonymous sessions.
    pub user: Option<String>,
    /// Claims of the session's token, for `subscribe.where` (empty when anonymous).
    pub claims: serde_json::Map<String, serde_json::Value>,
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
    /// Records replaced while held back by `max_rate` (never sent).
    pub conflated: u64,
}

impl Fanout {
    /// Blocks the calling thread (the Kafka consumer's) until every session left behind has
    /// caught up, closed or turned out slow ([`Outbox::wait_for_writer`]): a burst is paced by
    /// the sessions that take it instead of closing them. Called with no hub lock held.
    pub fn wait_for_writers(self) {
        if self.behind.is_empty() {
            return;
        }
        // Each session's grace counts the time its own socket refused bytes, whoever was waited
        // for meanwhile: sessions that stop reading together cost the consumer one grace, not
        // one each. The patience is shared the same way.
        let patience = std::time::Instant::now() + crate::outbox::WRITER_PATIENCE;
        for session in &self.behind {
            session.outbox.wait_for_writer(patience, self.shed);
        }
    }
}

/// A subscribed session, with the positions a replay already covered.
struct Subscriber {
    session: Arc<SessionHandle>,
    /// On `subscribe.where` channels: the session's claim value; only records of that scope
    /// reach it.
    scope: Option<Box<str>>,
    /// The client's `filter` (channels with `subscribe.filters`).
    filter: Option<Arc<Predicate>>,
    /// `max_rate` (the channel's, or the subscribe's when lower): records held back per key.
    rate: Option<Conflation>,
    /// Live records at or below these offsets (per partition) were sent by the replay.
    after: Option<Box<[(i32, i64)]>>,
    /// While its replay is read from Kafka, the subscription's live records wait here.
    buffer: Option<Buffer>,
}

/// What a subscribe asks for besides its channel and key.
#[derive(Default, Clone)]
pub struct Terms {
    /// The client's `filter`, parsed.
    pub filter: Option<Arc<Predicate>>,
    /// The subscribe's `max_rate`; the channel's applies when lower or when absent.
    pub max_rate: Option<u32>,
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
    /// Broadcast channels with `subscribe.where`: per claim value (`all` stays empty), so a
    /// record costs the sessions of its scope only.
    by_key: KeyMap,
    /// Reply channels: subscribers per user.
    by_user: KeyMap,
}

struct ChannelState {
    subscribers: Subscribers,
    memory: ChannelMemory,
}

pub struct Hub {
    catalogue: Arc<Catalogue>,
    /// Per channel, indexed by [`ChannelId`].
    states: Vec<Mutex<ChannelState>>,
    /// Per channel: some subscription holds records back for `max_rate` ([`Hub::flush_conflated`]).
    conflating: Vec<AtomicBool>,
    /// Hashes routing keys for `latest_per_key` shedding and `max_rate` conflation: foldhash,
    /// seeded per process, as the subscriber maps are.
    hasher: foldhash::fast::RandomState,
}

/// Result of a subscribe or unsubscribe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Changed,
    Unchanged,
}

impl Hub {
    pub fn new(catalogue: Arc<Catalogue>) -> Self {
        Hub {
            states: catalogue
                .channels()
                .iter()
                .map(|c| {
                    Mutex::new(ChannelState {
                        subscribers: Subscribers::default(),
                        memory: ChannelMemory::new(c.limits),
                    })
                })
                .collect(),
            conflating: catalogue
                .channels()
                .iter()
                .map(|_| AtomicBool::new(false))
                .collect(),
            catalogue,
            hasher: Default::default(),
        }
    }

    pub fn catalogue(&self) -> &Catalogue {
        &self.catalogue
    }

    pub fn catalogue_handle(&self) -> Arc<Catalogue> {
        self.catalogue.clone()
    }

    /// Subscribes for live records only, queueing `confirmation` first (see [`Self::attach`]).
    pub fn subscribe(
        &self,
        id: ChannelId,
        key: Option<&str>,
        session: &Arc<SessionHandle>,
        confirmation: impl Into<Item>,
    ) -> Change {
        let channel = self.catalogue.channel(id);
        let mut state = self.states[id as usize].lock();
        session.outbox.push_control(confirmation);
        add_subscriber(
            channel,
            &mut state.subscribers,
            key,
            session,
            None,
            None,
            Terms::default(),
        )
    }

    /// Removes a subscription added with the same arguments.
    pub fn unsubscribe(&self, id: ChannelId, key: Option<&str>, session: &SessionHandle) -> Change {
        let channel = self.catalogue.channel(id);
        let mut state = self.states[id as usize].lock();
        let subscribers = &mut state.subscribers;
        let removed = match channel.deliver() {
            Deliver::Broadcast if channel.spec.subscribe.where_.is_some() => remove_keyed(
                &mut subscribers.by_key,
                &scope_of(channel, session).unwrap_or_default(),
                session.id,
            ),
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
            channel.metrics.subscriptions.dec();
            Change::Changed
        } else {
            Change::Unchanged
        }
    }

    /// Routes a live record: remembers it (snapshot, history) and queues it on every
    /// session the route selects, under the channel's slow-client policy. The caller waits for
    /// the sessions the result lists as behind ([`Fanout::wait_for_writers`]).
    pub fn deliver(&self, id: ChannelId, route: Route<'_>, held: &Held, tombstone: bool) -> Fanout {
        let channel = self.catalogue.channel(id);
        // The key's hash, for latest_per_key shedding and max_rate conflation: made once, when
        // one of them applies (a subscription may ask for a rate on a channel without one).
        let hash_key = || match route {
            Route::Key(Some(key)) => self.hasher.hash_one(key),
            _ => 0,
        };
        let mut key_hash =
            (channel.spec.on_slow_client == SlowClientPolicy::LatestPerKey).then(hash_key);
        let mut state = self.states[id as usize].lock();
        if state
            .memory
            .live_next(held.partition)
            .is_some_and(|next| held.offset < next)
        {
            // Routed before: the consumer went back to its last commit (a rebalance, a group
            // coordinator that moved) and reads again what live sessions already have.
            drop(state);
            channel.metrics.dropped_redelivered.inc();
            return Fanout::default();
        }
        state.memory.advance(held.partition, held.offset);
        if channel.limits.keeps_anything() {
            let key = match route {
                Route::Key(key) => key,
                Route::Reply { .. } => None,
            };
            let before = state.memory.stats();
            state.memory.remember(key, held, tombstone);
            report_memory(channel, before, state.memory.stats());
        }
        let subscribers = &mut state.subscribers;
        let targets: &mut [Subscriber] = match (channel.deliver(), route) {
            (Deliver::Broadcast, _) if channel.spec.subscribe.where_.is_some() => held
                .scope
                .as_deref()
                .and_then(|scope| subscribers.by_key.get_mut(scope))
                .map_or(&mut [], Vec::as_mut_slice),
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
        let unrouted = targets.is_empty() && channel.deliver() == Deliver::Reply;
        let mut fanout = Fanout {
            shed: channel.spec.on_slow_client != SlowClientPolicy::Disconnect,
            ..Fanout::default()
        };
        let subject = RecordSubject(&held.record);
        let item = Item::Record(held.record.clone());
        let mut now = None;
        let mut held_back = false;
        for subscriber in targets.iter_mut() {
            if subscriber.scope.as_deref() != held.scope.as_deref() {
                // By-key channels with `where`: a subscriber of the key in another scope.
                continue;
            }
            if subscriber
                .filter
                .as_ref()
                .is_some_and(|filter| !filter.matches(&subject))
            {
                continue;
            }
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
            if let Some(rate) = &mut subscriber.rate {
                let now = *now.get_or_insert_with(Instant::now);
                let key_hash = *key_hash.get_or_insert_with(hash_key);
                if let Err(replaced) = rate.offer(key_hash, held, now) {
                    fanout.conflated += replaced;
                    held_back = true;
                    continue;
                }
            }
            match subscriber.session.outbox.push_message(
                &item,
                id,
                // Only latest_per_key reads it, and it was made above for that policy.
                key_hash.unwrap_or(0),
                held.timestamp,
                channel.spec.on_slow_client,
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
        if held_back {
            self.conflating[id as usize].store(true, Ordering::Release);
        }
        channel.metrics.delivered.inc_by(fanout.delivered);
        channel.metrics.dropped_queue_full.inc_by(fanout.dropped);
        channel.metrics.dropped_conflated.inc_by(fanout.conflated);
        if unrouted {
            channel.metrics.dropped_undeliverable.inc();
        }
        fanout
    }

    /// A record of the channel's topic was consumed but not routed (undecodable, no key): the
    /// live position still moves past it.
    pub fn skip(&self, id: ChannelId, partition: i32, offset: i64) {
        self.states[id as usize]
            .lock()
            .memory
            .advance(partition, offset);
    }

    /// A record read while rebuilding snapshots at start.
    pub fn load_snapshot(&self, id: ChannelId, key: &str, held: &Held, tombstone: bool) {
        let channel = self.catalogue.channel(id);
        let mut state = self.states[id as usize].lock();
        let before = state.memory.stats();
        state.memory.load_snapshot(key, held, tombstone);
        report_memory(channel, before, state.memory.stats());
    }

    /// Subscribers of a channel right now (all keys), for status pages.
    pub fn subscriber_count(&self, id: ChannelId) -> usize {
        let channel = self.catalogue.channel(id);
        let state = self.states[id as usize].lock();
        match channel.deliver() {
            Deliver::Broadcast if channel.spec.subscribe.where_.is_none() => {
                state.subscribers.all.len()
            }
            Deliver::Broadcast | Deliver::ByKey | Deliver::Reply => {
                state.subscribers.by_key.values().map(Vec::len).sum()
            }
        }
    }
}

fn add_subscriber(
    channel: &Channel,
    subscribers: &mut Subscribers,
    key: Option<&str>,
    session: &Arc<SessionHandle>,
    after: Option<Box<[(i32, i64)]>>,
    buffer: Option<Buffer>,
    terms: Terms,
) -> Change {
    let rate = match (channel.spec.max_rate, terms.max_rate) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    let filter = terms.filter;
    if let Some(existing) = find_subscriber(channel, subscribers, key, session) {
        // Subscribing again (e.g. with a new resume point or filter) replaces its state.
        existing.after = after;
        existing.buffer = buffer;
        existing.filter = filter;
        existing.rate = rate.map(Conflation::new);
        return Change::Unchanged;
    }
    let scope = scope_of(channel, session);
    let subscriber = Subscriber {
        session: session.clone(),
        scope: scope.as_deref().map(Into::into),
        filter,
        rate: rate.map(Conflation::new),
        after,
        buffer,
    };
    match channel.deliver() {
        Deliver::Broadcast if channel.spec.subscribe.where_.is_some() => subscribers
            .by_key
            .entry(scope.unwrap_or_default())
            .or_default()
            .push(subscriber),
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
                        scope: None,
                        filter: None,
                        rate: None,
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
    channel.metrics.subscriptions.inc();
    Change::Changed
}
