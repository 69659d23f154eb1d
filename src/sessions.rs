//! Every open session of the instance: to close them all on shutdown, to count them for the
//! status page, and to enforce `auth.max_sessions_per_user` (the oldest session of a user is
//! replaced by a newer one).

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;
use tokio_util::sync::CancellationToken;

use crate::hub::SessionHandle;
use crate::outbox::Close;

/// An open session as the registry holds it.
#[derive(Clone)]
pub struct Entry {
    pub handle: Arc<SessionHandle>,
    /// Cancelled once the session's task has finished (its connection is closed).
    pub finished: CancellationToken,
}

/// Every open session: to close them all on shutdown, and to enforce
/// `auth.max_sessions_per_user`.
#[derive(Default)]
pub struct Sessions {
    inner: Mutex<Registry>,
}

#[derive(Default)]
struct Registry {
    by_id: HashMap<u64, Entry>,
    /// Session ids per user, oldest first.
    by_user: HashMap<String, Vec<u64>>,
}

impl Sessions {
    /// Registers a session; returns the sessions of the same user it replaces (oldest first)
    /// when the user now has more than `max_per_user` (0 = unlimited).
    pub fn insert(
        &self,
        handle: &Arc<SessionHandle>,
        finished: CancellationToken,
        max_per_user: usize,
    ) -> Vec<Entry> {
        let mut registry = self.inner.lock();
        registry.by_id.insert(
            handle.id,
            Entry {
                handle: handle.clone(),
                finished,
            },
        );
        let Some(user) = &handle.user else {
            return Vec::new();
        };
        let ids = registry.by_user.entry(user.clone()).or_default();
        ids.push(handle.id);
        if max_per_user == 0 || ids.len() <= max_per_user {
            return Vec::new();
        }
        let excess = ids.len() - max_per_user;
        let replaced: Vec<u64> = ids.drain(..excess).collect();
        replaced
            .iter()
            .filter_map(|id| registry.by_id.get(id).cloned())
            .collect()
    }

    /// Registers a session that does not count towards `auth.max_sessions_per_user` (a
    /// Server-Sent Events stream: replacing it would only make its `EventSource` reconnect,
    /// and replace the user's WebSocket session in turn). Closed on shutdown like the others.
    pub fn insert_uncounted(&self, handle: &Arc<SessionHandle>, finished: CancellationToken) {
        self.inner.lock().by_id.insert(
            handle.id,
            Entry {
                handle: handle.clone(),
                finished,
            },
        );
    }

    pub fn remove(&self, handle: &SessionHandle) {
        let mut registry = self.inner.lock();
        registry.by_id.remove(&handle.id);
        if let Some(user) = &handle.user {
            if let Some(ids) = registry.by_user.get_mut(user) {
                ids.retain(|id| *id != handle.id);
                if ids.is_empty() {
                    registry.by_user.remove(user);
                }
            }
        }
    }

    /// Starts closing every session with `close`.
    pub fn close_all(&self, close: Close) {
        for entry in self.inner.lock().by_id.values() {
            entry.handle.outbox.close(close);
        }
    }

    pub fn len(&self) -> usize {
        self.inner.lock().by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
