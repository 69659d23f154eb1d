//! A session's bounded outbound queue. The Kafka side pushes shared records, the session its
//! answers; the session's writer drains everything queued in one go, encodes it for its
//! transport and writes it as one batch. The queue does not know what it holds beyond its size
//! ([`Queued`]): the sessions queue [`crate::protocol::Item`]s.
//!
//! A session is slow only when its socket stops taking bytes. A push that finds the queue over a
//! bound (`messages`, `bytes`) is queued anyway ([`Pushed::Behind`]) and the pusher then waits
//! for the session ([`Outbox::wait_for_writer`]) before routing more: a burst is paced by the
//! sessions that take it instead of closing them, and the queue stays within a message of its
//! bounds. From that push until the queue has drained to half its bounds the session is
//! *behind*; once its socket has refused bytes for [`Bounds::grace`] in all while behind, it is
//! slow, and the channel's `on_slow_client` policy applies to it (close with 4001, drop the
//! channel's oldest queued message, or keep only the newest per key) until it has drained. Time
//! in which the socket takes bytes but the session's task has not written them yet does not
//! count: that is the bridge being busy, not the client. A client that reads, but slower than
//! the records come, keeps its socket blocked most of the time and so is slow after about the
//! grace, however little it reads between blocks: it cannot pace the consumer for longer. A
//! single wait never lasts longer than [`WRITER_PATIENCE`] (a writer that is stuck elsewhere). Channels that shed (`drop_oldest`, `latest_per_key`) do not wait for a
//! socket that stopped taking bytes (the writer's last write is parked on a full kernel send
//! buffer): they shed at once, as their users chose; they wait only while the socket drains and
//! the session's task has not caught up yet.
//!
//! Control frames (acks, errors, pongs) are bounded apart: the session only produces them while
//! it has room for them ([`Outbox::has_control_room`]).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};
use tokio::sync::Notify;

use crate::config::SlowClientPolicy;
use crate::protocol::{Frame, Item};

mod close;
mod discard;
mod writer;

pub use close::Close;

/// Control frames one session may have queued before it stops reading client frames.
pub const CONTROL_LIMIT: usize = 256;

/// The longest a pusher waits for one session to bring its queue back within bounds, whether or
/// not its socket takes bytes: a session whose writer does not run for that long (stuck in
/// something else than writing its queue) counts as slow.
pub const WRITER_PATIENCE: Duration = Duration::from_secs(10);

/// What a queue holds: cheap to clone (shared), with a size in bytes for the bounds.
pub trait Queued: Clone {
    /// Bytes the entry counts for in [`Bounds::bytes`].
    fn size(&self) -> usize;
}

impl Queued for Frame {
    /// The frame as written, header included.
    fn size(&self) -> usize {
        self.wire().len()
    }
}

impl Queued for Item {
    fn size(&self) -> usize {
        Item::size(self)
    }
}

/// The bounds of a session's queue of live messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    /// `server.send_queue_messages`.
    pub messages: usize,
    /// `server.send_queue_bytes` (frames as written, headers included). A single frame larger
    /// than this is still queued when nothing else is.
    pub bytes: usize,
    /// `server.slow_client_grace_ms`: how long the socket of a session that is behind may
    /// refuse bytes, in all, before the session is slow.
    pub grace: Duration,
}

/// What happened to a pushed message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    Queued,
    /// Queued over the bounds while the socket takes bytes: the writer is behind, not the
    /// client. The pusher should [`Outbox::wait_for_writer`] before routing more.
    Behind,
    /// Queued after dropping (or replacing) an older message of the channel.
    QueuedWithDrop,
    /// The new message itself was dropped (queue full of other channels' messages).
    Dropped,
    /// The queue was full and the session is now closing with 4001.
    Overflow,
    /// The session is already closing; nothing was queued.
    Closed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Answers: ack, error, pong, subscribed …
    Control,
    /// Records replayed for a subscription: sent in full, never dropped by a policy.
    Replay,
    /// A live record of a channel, with a hash of its key (0 when none).
    Message(u32, u64),
}

struct Entry<T> {
    item: T,
    kind: Kind,
    /// Kafka timestamp (ms) of a live record, for the delivery latency; 0 when none.
    timestamp: i64,
}

/// An entry taken for writing.
#[derive(Debug, Clone)]
pub struct Outgoing<T = Item> {
    pub item: T,
    /// For live records: the channel and the record's Kafka timestamp (ms), to measure the
    /// delivery latency once written.
    pub stamp: Option<(u32, i64)>,
}

struct State<T> {
    queue: VecDeque<Entry<T>>,
    /// Live messages queued, and their bytes on the wire (bounded by `bounds`).
    messages: usize,
    bytes: usize,
    controls: usize,
    replays: usize,
    close: Option<Close>,
    /// Pushers waiting in [`Outbox::wait_for_writer`].
    waiters: usize,
    /// While the session is behind (a push found the queue over its bounds, and it has not
    /// drained to half of them since): when that began, and the socket's blocked time then.
    behind: Option<(Instant, Duration)>,
    /// The socket refused bytes for the grace while behind; until the queue has drained to half
    /// its bounds, the session is treated as slow.
    starved: bool,
    /// How long the socket refused bytes: finished spans, and the start of the current one.
    blocked_total: Duration,
    blocked_since: Option<Instant>,
}

impl<T> State<T> {
    fn within(&self, bounds: Bounds) -> bool {
        self.messages < bounds.messages && (self.messages == 0 || self.bytes < bounds.bytes)
    }

    /// Drained far enough to stop being behind: half the bounds (hysteresis, so that a client
    /// that takes a batch now and then is not "caught up" at every batch).
    fn drained(&self, bounds: Bounds) -> bool {
        self.messages <= bounds.messages / 2 && self.bytes <= bounds.bytes / 2
    }

    /// Total time the socket refused bytes, up to `now`.
    fn blocked_time(&self, now: Instant) -> Duration {
        self.blocked_total
            + self
                .blocked_since
                .map_or(Duration::ZERO, |since| now.saturating_duration_since(since))
    }
}

pub struct Outbox<T = Item> {
    state: Mutex<State<T>>,
    /// Wakes the writer: the queue became non-empty, or the session is closing.
    wake: Notify,
    /// Wakes the reader: control frames fell below the limit (or the session is closing).
    room: Notify,
    /// Wakes pushers waiting for the writer: the queue is back within bounds, the socket
    /// blocked, or the session is closing.
    caught_up: Condvar,
    /// The writer's current write waits for the kernel (the socket's send buffer is full): the
    /// client is not taking bytes.
    blocked: AtomicBool,
    bounds: Bounds,
}

fn clear<T>(state: &mut State<T>) {
    state.queue.clear();
    state.messages = 0;
    state.bytes = 0;
    state.controls = 0;
    state.replays = 0;
}

/// Bytes a queued message counts for.
fn size<T: Queued>(item: &T) -> usize {
    item.size()
}

impl<T: Queued> Outbox<T> {
    pub fn new(bounds: Bounds) -> Self {
        Outbox {
            state: Mutex::new(State {
                queue: VecDeque::new(),
                messages: 0,
                bytes: 0,
                controls: 0,
                replays: 0,
                close: None,
                waiters: 0,
                behind: None,
                starved: false,
                blocked_total: Duration::ZERO,
                blocked_since: None,
            }),
            wake: Notify::new(),
            room: Notify::new(),
            caught_up: Condvar::new(),
            blocked: AtomicBool::new(false),
            bounds,
        }
    }

    /// Queues a live record of `channel` (key hash `key`, 0 when none). Over the bounds, the
    /// channel's slow-client policy applies only when the socket does not drain (see the module
    /// docs); otherwise the frame is queued and [`Pushed::Behind`] asks the caller to wait for
    /// the writer. Never waits itself.
    pub fn push_message(
        &self,
        item: &T,
        channel: u32,
        key: u64,
        timestamp: i64,
        policy: SlowClientPolicy,
    ) -> Pushed {
        let mut state = self.state.lock();
        if state.close.is_some() {
            return Pushed::Closed;
        }
        let entry = Entry {
            item: item.clone(),
            kind: Kind::Message(channel, key),
            timestamp,
        };
        let within = state.within(self.bounds);
        // Over the bounds, a disconnect channel paces the consumer while the session may still
        // catch up; shedding channels shed as soon as the socket stops taking bytes.
        let pace = !state.starved
            && (policy == SlowClientPolicy::Disconnect || !self.blocked.load(Ordering::Acquire));
        if !within && state.behind.is_none() {
            let now = Instant::now();
            state.behind = Some((now, state.blocked_time(now)));
        }
        if within || pace {
            state.messages += 1;
            state.bytes += size(item);
            self.enqueue(&mut state, entry);
            return if within {
                Pushed::Queued
            } else {
                Pushed::Behind
            };
        }
        match policy {
            SlowClientPolicy::Disconnect => {
                clear(&mut state);
                state.close = Some(Close::SlowClient);
                drop(state);
                self.closing_now();
                Pushed::Overflow
            }
            SlowClientPolicy::LatestPerKey => {
                // Every queued message of this key goes; the new one joins the tail, so the
                // key's last frame written is always its newest record.
                let mut removed = 0;
                let mut removed_bytes = 0;
                state.queue.retain(|e| {
                    let same = e.kind == Kind::Message(channel, key);
                    if same {
                        removed += 1;
                        removed_bytes += size(&e.item);
                    }
                    !same
                });
                if removed == 0 {
                    return Self::replace_oldest(&mut state, channel, entry);
                }
                state.messages = state.messages + 1 - removed;
                state.bytes = state.bytes + size(&entry.item) - removed_bytes;
                state.queue.push_back(entry);
                Pushed::QueuedWithDrop
            }
            SlowClientPolicy::DropOldest => Self::replace_oldest(&mut state, channel, entry),
        }
    }

    fn replace_oldest(state: &mut State<T>, channel: u32, entry: Entry<T>) -> Pushed {
        match state
            .queue
            .iter()
            .position(|e| matches!(e.kind, Kind::Message(c, _) if c == channel))
        {
            Some(oldest) => {
                let old = state
                    .queue
                    .remove(oldest)
                    .expect("position is in the queue");
                state.bytes = state.bytes + size(&entry.item) - size(&old.item);
                state.queue.push_back(entry);
                Pushed::QueuedWithDrop
            }
            None => Pushed::Dropped,
        }
    }

    /// Waits (blocking the calling thread) until the writer has brought the queue back within
    /// its bounds or the session is closing — or, with `shed` (a channel that drops rather than
    /// waits), until the socket stops taking bytes. Called by the Kafka consumer after a
    /// [`Pushed::Behind`], outside any hub lock. The wait ends early when the socket has refused
    /// bytes for the grace since the session fell behind, or at `patience`: the session is then
    /// slow until it has drained.
    pub fn wait_for_writer(&self, patience: Instant, shed: bool) {
        let mut state = self.state.lock();
        state.waiters += 1;
        while !(state.close.is_some()
            || state.within(self.bounds)
            || (shed && self.blocked.load(Ordering::Acquire)))
        {
            let now = Instant::now();
            let blocked_now = state.blocked_time(now);
            let (since, blocked_then) = *state.behind.get_or_insert((now, blocked_now));
            let blocked = blocked_now.saturating_sub(blocked_then);
            if blocked >= self.bounds.grace || now >= patience {
                state.starved = true;
                tracing::warn!(
                    messages = state.messages,
                    bytes = state.bytes,
                    behind_ms = now.duration_since(since).as_millis() as u64,
                    socket_blocked_ms = blocked.as_millis() as u64,
                    "a session's socket stopped taking its records: slow"
                );
                break;
            }
            // The grace runs only while the socket refuses bytes; a change wakes this wait.
            let until = if self.blocked.load(Ordering::Acquire) {
                patience.min(now + (self.bounds.grace - blocked))
            } else {
                patience
            };
            self.caught_up.wait_until(&mut state, until);
        }
        state.waiters -= 1;
    }

    /// Queues a control entry (ack, error, pong, subscribed …). Returns false when closing.
    pub fn push_control(&self, item: impl Into<T>) -> bool {
        let mut state = self.state.lock();
        if state.close.is_some() {
            return false;
        }
        state.controls += 1;
        self.enqueue(
            &mut state,
            Entry {
                item: item.into(),
                kind: Kind::Control,
                timestamp: 0,
            },
        );
        true
    }

    /// Queues replayed records. They do not count against the live bounds (a replay is
    /// bounded by `server.replay_max_records`), but the session reads no further client frames
    /// until they are written ([`Self::has_control_room`]).
    pub fn push_replay(&self, items: impl IntoIterator<Item = T>) {
        let mut state = self.state.lock();
        if state.close.is_some() {
            return;
        }
        for item in items {
            state.replays += 1;
            self.enqueue(
                &mut state,
                Entry {
                    item,
                    kind: Kind::Replay,
                    timestamp: 0,
                },
            );
        }
    }

    fn enqueue(&self, state: &mut State<T>, entry: Entry<T>) {
        let was_empty = state.queue.is_empty();
        state.queue.push_back(entry);
        if was_empty {
            self.wake.notify_one();
        }
    }

    /// Starts closing the session; the first close wins.
    pub fn close(&self, close: Close) {
        let mut state = self.state.lock();
        if state.close.is_some() {
            return;
        }
        if !close.drain() {
            clear(&mut state);
        }
        state.close = Some(close);
        drop(state);
        self.closing_now();
    }

    /// Wakes everyone who waits on the session: it is closing.
    fn closing_now(&self) {
        self.wake.notify_one();
        self.room.notify_waiters();
        self.caught_up.notify_all();
    }

    /// The close under way, if any.
    pub fn closing(&self) -> Option<Close> {
        self.state.lock().close
    }

    /// Marks the session slow, as a wait that ran out does.
    #[cfg(test)]
    fn starve(&self) {
        self.state.lock().starved = true;
    }

    /// Whether the session is behind (over its bounds and not yet drained to half).
    #[cfg(test)]
    fn is_behind(&self) -> bool {
        self.state.lock().behind.is_some()
    }

    /// Live messages queued, for tests and status.
    pub fn queued_messages(&self) -> usize {
        self.state.lock().messages
    }
}

#[cfg(test)]
mod tests;
