//! Every open session of the instance: to close them all on shutdown, to count them for the
//! status page, and to enforce `auth.max_sessions_per_user` (the oldest session of a user, or
//! of a user and session group with `auth.session_group_param`, is replaced by a newer one) —
//! on this instance, and with `auth.session_registry` across instances (`shared.rs`).

mod shared;

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;
use tokio_util::sync::CancellationToken;

use crate::hub::SessionHandle;
use crate::outbox::Close;

pub use shared::{Loading, RegistryLog, Shared, SharedMetrics};

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
    /// `auth.session_registry`: the limit across instances.
    shared: Option<Shared>,
}

#[derive(Default)]
struct Registry {
    by_id: HashMap<u64, Entry>,
    /// Session ids per user and group, oldest first.
    by_group: HashMap<GroupKey, Vec<u64>>,
    /// Counted sessions by public id, for the records of the shared registry.
    by_public: HashMap<String, u64>,
}

/// Tells a session it was replaced, and closes it with 4000 (its queued frames first).
pub fn replace(handle: &SessionHandle) {
    handle
        .outbox
        .push_control(crate::protocol::Answer::SessionReplaced);
    handle.outbox.close(Close::Replaced);
}

impl Sessions {
    /// Sessions whose limit also holds across instances, through `shared`.
    pub fn with_registry(shared: Shared) -> Self {
        Sessions {
            inner: Mutex::default(),
            shared: Some(shared),
        }
    }

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
        let replaced = {
            let mut registry = self.inner.lock();
            registry.by_id.insert(
                handle.id,
                Entry {
                    handle: handle.clone(),
                    finished,
                    counted: counted.clone(),
                },
            );
            let Some(key) = &counted else {
                return Vec::new();
            };
            registry
                .by_public
                .insert(handle.public_id.clone(), handle.id);
            let ids = registry.by_group.entry(key.clone()).or_default();
            ids.push(handle.id);
            let excess = match max_per_user {
                0 => 0,
                max => ids.len().saturating_sub(max),
            };
            let replaced: Vec<u64> = ids.drain(..excess).collect();
            replaced
                .iter()
                .filter_map(|id| registry.by_id.get(id).cloned())
                .collect()
        };
        if let (Some(shared), Some(key)) = (&self.shared, &counted) {
            shared.opened(key, &handle.public_id);
        }
        replaced
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
        let counted = {
            let mut registry = self.inner.lock();
            let Some(entry) = registry.by_id.remove(&handle.id) else {
                return;
            };
            let Some(key) = entry.counted else {
                return;
            };
            registry.by_public.remove(&handle.public_id);
            if let Some(ids) = registry.by_group.get_mut(&key) {
                ids.retain(|id| *id != handle.id);
                if ids.is_empty() {
                    registry.by_group.remove(&key);
                }
            }
            key
        };
        if let Some(shared) = &self.shared {
            shared.closed(&counted, &handle.public_id);
        }
    }

    /// Applies one record of the shared registry's topic (`key`, `value`; `None` value: a
    /// tombstone): sessions of this instance it pushes out of the newest N of their user and
    /// group are replaced (4000). A record that is not a bridge's is counted and ignored.
    pub fn apply_registry_record(&self, key: Option<&[u8]>, value: Option<&[u8]>) {
        let Some(shared) = &self.shared else {
            return;
        };
        let mut state = shared.state.lock();
        let pushed_out = match shared::decode(key, value, shared::now_ms()) {
            Err(why) => {
                shared.ignore(&mut state, &why);
                return;
            }
            Ok(shared::Record::Close { key, session }) => {
                shared.metrics.closed.inc();
                state.directory.close(&key, &session);
                state.previous.remove(&(key, session));
                return;
            }
            Ok(shared::Record::Open { key, opened }) => {
                shared.metrics.opened.inc();
                let previous_start = opened.order.instance == shared.instance
                    && opened.boot != shared.boot
                    && state.loading != Loading::Loaded;
                if previous_start {
                    // Gone with that start's process: tombstoned once the topic is read.
                    state.previous.insert((key, opened.session));
                    return;
                }
                state.directory.open(key, opened)
            }
        };
        drop(state);
        let registry = self.inner.lock();
        for opened in pushed_out.iter().filter(|o| shared.is_mine(o)) {
            let entry = registry
                .by_public
                .get(&opened.session)
                .and_then(|id| registry.by_id.get(id));
            if let Some(entry) = entry {
                tracing::info!(session = %opened.session, "session replaced by a newer one (auth.session_registry)");
                replace(&entry.handle);
            }
        }
    }

    /// The registry topic has been read up to where it was at start: the sessions a previous
    /// start of this instance left open are closed in it (tombstones).
    pub fn registry_loaded(&self) {
        let Some(shared) = &self.shared else {
            return;
        };
        let previous = {
            let mut state = shared.state.lock();
            state.loading = Loading::Loaded;
            std::mem::take(&mut state.previous)
        };
        tracing::info!(
            sessions = shared.state.lock().directory.open_sessions(),
            closed_from_previous_start = previous.len(),
            "session registry read"
        );
        for (key, session) in previous {
            shared.closed(&key, &session);
        }
    }

    /// Why the registry topic cannot be read yet (readiness says so until it is).
    pub fn registry_unavailable(&self, why: String) {
        if let Some(shared) = &self.shared {
            let mut state = shared.state.lock();
            if state.loading != Loading::Loaded {
                state.loading = Loading::Reading(Some(why));
            }
        }
    }

    /// How far the shared registry is read; `None` without `auth.session_registry`.
    pub fn registry_loading(&self) -> Option<Loading> {
        self.shared
            .as_ref()
            .map(|shared| shared.state.lock().loading.clone())
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
mod tests;
