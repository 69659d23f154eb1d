//! Every open session of the instance: to close them all on shutdown, to count them for the
//! status page, and to enforce `auth.max_sessions_per_user` (the oldest session of a user, or
//! of a user and session group with `auth.session_group_param`, is replaced by a newer one).

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;
use tokio_util::sync::CancellationToken;

use crate::hub::SessionHandle;
use crate::outbox::Close;

/// What `auth.max_sessions_per_user` counts sessions by: their user, and their group (the
/// value of `auth.session_group_param`; `None` without it, or when a handshake did not name
/// one).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GroupKey {
    pub user: String,
    pub group: Option<String>,
}

/// An open session as the registry holds it.
#[derive(Clone)]
pub struct Entry {
    pub handle: Arc<SessionHandle>,
    /// Cancelled once the session's task has finished (its connection is closed).
    pub finished: CancellationToken,
    /// What it counts towards; `None`: not counted (anonymous, Server-Sent Events).
    pub counted: Option<GroupKey>,
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
    /// Session ids per user and group, oldest first.
    by_group: HashMap<GroupKey, Vec<u64>>,
}

impl Sessions {
    /// Registers a session of `group` (the value of `auth.session_group_param`); returns the
    /// sessions of the same user and group it replaces (oldest first) when they now number
    /// more than `max_per_user` (0 = unlimited). Anonymous sessions are never counted.
    pub fn insert(
        &self,
        handle: &Arc<SessionHandle>,
        group: Option<String>,
        finished: CancellationToken,
        max_per_user: usize,
    ) -> Vec<Entry> {
        let counted = handle.user.clone().map(|user| GroupKey { user, group });
        let mut registry = self.inner.lock();
        registry.by_id.insert(
            handle.id,
            Entry {
                handle: handle.clone(),
                finished,
                counted: counted.clone(),
            },
        );
        let Some(key) = counted else {
            return Vec::new();
        };
        let ids = registry.by_group.entry(key).or_default();
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
                counted: None,
            },
        );
    }

    pub fn remove(&self, handle: &SessionHandle) {
        let mut registry = self.inner.lock();
        let Some(entry) = registry.by_id.remove(&handle.id) else {
            return;
        };
        if let Some(key) = &entry.counted {
            if let Some(ids) = registry.by_group.get_mut(key) {
                ids.retain(|id| *id != handle.id);
                if ids.is_empty() {
                    registry.by_group.remove(key);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn handle(id: u64, user: Option<&str>) -> Arc<SessionHandle> {
        Arc::new(SessionHandle {
            id,
            public_id: format!("s{id}"),
            user: user.map(str::to_owned),
            claims: serde_json::Map::new(),
            outbox: crate::outbox::Outbox::new(crate::outbox::Bounds {
                messages: 8,
                bytes: 1024,
                grace: std::time::Duration::from_secs(1),
            }),
        })
    }

    fn ids(replaced: Vec<Entry>) -> Vec<u64> {
        replaced.iter().map(|e| e.handle.id).collect()
    }

    #[test]
    fn the_limit_counts_per_user_and_group() {
        let sessions = Sessions::default();
        let app = |name: &str| Some(name.to_owned());
        let insert = |id, user, group| {
            ids(sessions.insert(&handle(id, user), group, CancellationToken::new(), 1))
        };
        assert_eq!(insert(1, Some("alice"), app("teller")), Vec::<u64>::new());
        assert_eq!(insert(2, Some("alice"), app("advisor")), Vec::<u64>::new());
        assert_eq!(insert(3, Some("alice"), None), Vec::<u64>::new());
        assert_eq!(insert(4, Some("bob"), app("teller")), Vec::<u64>::new());
        assert_eq!(insert(5, None, app("teller")), Vec::<u64>::new());
        assert_eq!(
            insert(6, None, app("teller")),
            Vec::<u64>::new(),
            "anonymous: uncounted"
        );
        assert_eq!(insert(7, Some("alice"), app("teller")), [1]);
        assert_eq!(insert(8, Some("alice"), None), [3]);
        // Removing a replaced session (its task ends) leaves the newer ones counted.
        sessions.remove(&handle(1, Some("alice")));
        assert_eq!(insert(9, Some("alice"), app("teller")), [7]);
        assert_eq!(sessions.len(), 8);
    }
}
