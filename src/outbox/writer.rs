//! The writer's side of the queue: the session's task takes batches to write, tells the queue
//! whether its socket takes bytes (what makes a session slow), and reads client frames only
//! while its answers have room.

use std::sync::atomic::Ordering;
use std::time::Instant;

use super::{size, Close, Kind, Outbox, Outgoing, Queued, CONTROL_LIMIT};

impl<T: Queued> Outbox<T> {
    /// Called by the writer around each write to the socket: `true` when the kernel would
    /// block (the client is not taking bytes), `false` once the socket may take bytes again
    /// (called from the waker, before the writer runs again: see `ws::wire::Watched`).
    pub fn set_socket_blocked(&self, blocked: bool) {
        if self.blocked.load(Ordering::Relaxed) == blocked {
            return;
        }
        let mut state = self.state.lock();
        if self.blocked.load(Ordering::Relaxed) == blocked {
            return;
        }
        let now = Instant::now();
        if blocked {
            state.blocked_since = Some(now);
        } else if let Some(since) = state.blocked_since.take() {
            state.blocked_total += now.saturating_duration_since(since);
        }
        self.blocked.store(blocked, Ordering::Release);
        // A waiting pusher re-reads its grace, or (a shedding channel) stops waiting.
        if state.waiters > 0 {
            self.caught_up.notify_all();
        }
    }

    /// Whether the writer's current write waits for the kernel.
    pub fn socket_blocked(&self) -> bool {
        self.blocked.load(Ordering::Acquire)
    }

    /// Whether the session may read another client frame: it could produce a control frame
    /// or a replay, so both must have room.
    pub fn has_control_room(&self) -> bool {
        let state = self.state.lock();
        (state.controls < CONTROL_LIMIT && state.replays == 0) || state.close.is_some()
    }

    /// Waits until [`Self::has_control_room`].
    pub async fn control_room(&self) {
        loop {
            let notified = self.room.notified();
            if self.has_control_room() {
                return;
            }
            notified.await;
        }
    }

    /// Waits for frames and moves up to `max` of them into `out` (handed back). The close
    /// comes back once the queue holds nothing more to write before it.
    pub async fn next_batch(
        &self,
        mut out: Vec<Outgoing<T>>,
        max: usize,
    ) -> (Vec<Outgoing<T>>, Option<Close>) {
        loop {
            let notified = self.wake.notified();
            if let Some(close) = self.take(&mut out, max) {
                return (out, Some(close));
            }
            if !out.is_empty() {
                return (out, None);
            }
            notified.await;
        }
    }

    /// Resolves once the session is closing without draining (e.g. overflow): a write under
    /// way is then pointless and may be abandoned. Graceful closes never resolve this.
    pub async fn aborted(&self) -> Close {
        loop {
            let notified = self.room.notified();
            if let Some(close) = self.closing().filter(|c| !c.drain()) {
                return close;
            }
            notified.await;
        }
    }

    /// Non-blocking part of [`Self::next_batch`].
    pub fn take(&self, out: &mut Vec<Outgoing<T>>, max: usize) -> Option<Close> {
        let mut state = self.state.lock();
        let blocked_before = state.controls >= CONTROL_LIMIT || state.replays > 0;
        while out.len() < max {
            let Some(entry) = state.queue.pop_front() else {
                break;
            };
            let stamp = match entry.kind {
                Kind::Message(channel, _) => {
                    state.messages -= 1;
                    state.bytes -= size(&entry.item);
                    (entry.timestamp > 0).then_some((channel, entry.timestamp))
                }
                Kind::Control => {
                    state.controls -= 1;
                    None
                }
                Kind::Replay => {
                    state.replays -= 1;
                    None
                }
            };
            out.push(Outgoing {
                item: entry.item,
                stamp,
            });
        }
        let freed_room = blocked_before && state.controls < CONTROL_LIMIT && state.replays == 0;
        let close = state.close.filter(|_| state.queue.is_empty());
        if state.drained(self.bounds) {
            state.behind = None;
            state.starved = false;
        }
        if state.waiters > 0 && state.within(self.bounds) {
            self.caught_up.notify_all();
        }
        drop(state);
        if freed_room {
            self.room.notify_waiters();
        }
        close
    }
}
