//! Taking back what a subscription had queued when the server ends it (a refreshed token no
//! longer allows it): those records must not reach the client.

use super::{size, Kind, Outbox, Queued};

impl<T: Queued> Outbox<T> {
    /// Drops the live records of `channel` still queued; returns how many.
    pub fn discard_channel(&self, channel: u32) -> usize {
        let mut state = self.state.lock();
        let (mut removed, mut bytes) = (0, 0);
        state.queue.retain(|entry| {
            let drop = matches!(entry.kind, Kind::Message(c, _) if c == channel);
            if drop {
                removed += 1;
                bytes += size(&entry.item);
            }
            !drop
        });
        state.messages -= removed;
        state.bytes -= bytes;
        if state.within(self.bounds) {
            state.starved = false;
            if state.waiters > 0 {
                self.caught_up.notify_all();
            }
        }
        removed
    }
}
