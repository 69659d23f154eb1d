//! Channels → subscribers, and fan-out. Knows nothing of Kafka or HTTP: it routes an encoded
//! frame to the sessions subscribed to a channel (all of them, those of one key, or for reply
//! channels the session or user named by the record) and queues it on each one's [`Outbox`].
//!
//! Each channel has its own lock, held while a record is routed and while a session
//! (un)subscribes, so a subscription takes effect between two records, never during one.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;

use parking_lot::Mutex;

use crate::config::{ChannelConfig, Deliver, SlowClientPolicy};
use crate::metrics::ChannelMetrics;
use crate::outbox::{Outbox, Pushed};
use crate::protocol::Frame;

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

/// Outcome of one fan-out, for counting.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Fanout {
    pub delivered: u64,
    pub dropped: u64,
}

#[derive(Default)]
struct Subscribers {
    /// Broadcast channels: every subscriber.
    all: Vec<Arc<SessionHandle>>,
    /// By-key channels: subscribers per key. Reply channels: per session public id.
    by_key: HashMap<String, Vec<Arc<SessionHandle>>>,
    /// Reply channels: subscribers per user.
    by_user: HashMap<String, Vec<Arc<SessionHandle>>>,
}

pub struct ChannelRoutes {
    pub name: String,
    pub deliver: Deliver,
    pub policy: SlowClientPolicy,
    pub metrics: ChannelMetrics,
    subscribers: Mutex<Subscribers>,
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
                .map(|c| ChannelRoutes {
                    name: c.name.clone(),
                    deliver: c.deliver,
                    policy: c.on_slow_client,
                    metrics: metrics(&c.name),
                    subscribers: Mutex::new(Subscribers::default()),
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

    /// Adds a subscription and queues `confirmation` on the session while no record can be
    /// routed, so it precedes every message of the subscription. `key` is the key on by-key
    /// channels and ignored otherwise.
    pub fn subscribe(
        &self,
        id: ChannelId,
        key: Option<&str>,
        session: &Arc<SessionHandle>,
        confirmation: Frame,
    ) -> Change {
        let routes = self.channel(id);
        let mut subscribers = routes.subscribers.lock();
        session.outbox.push_control(confirmation);
        let list = match routes.deliver {
            Deliver::Broadcast => &mut subscribers.all,
            Deliver::ByKey => subscribers
                .by_key
                .entry(key.unwrap_or_default().to_owned())
                .or_default(),
            Deliver::Reply => {
                let by_session = subscribers
                    .by_key
                    .entry(session.public_id.clone())
                    .or_default();
                if by_session.iter().any(|s| s.id == session.id) {
                    return Change::Unchanged;
                }
                by_session.push(session.clone());
                if let Some(user) = &session.user {
                    subscribers
                        .by_user
                        .entry(user.clone())
                        .or_default()
                        .push(session.clone());
                }
                routes.metrics.subscriptions.inc();
                return Change::Changed;
            }
        };
        if list.iter().any(|s| s.id == session.id) {
            return Change::Unchanged;
        }
        list.push(session.clone());
        routes.metrics.subscriptions.inc();
        Change::Changed
    }

    /// Removes a subscription added with the same arguments.
    pub fn unsubscribe(&self, id: ChannelId, key: Option<&str>, session: &SessionHandle) -> Change {
        let routes = self.channel(id);
        let mut subscribers = routes.subscribers.lock();
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

    /// Queues `frame` on every session the route selects, under the channel's slow-client
    /// policy. Counts deliveries and drops on the channel's metrics.
    pub fn deliver(&self, id: ChannelId, route: Route<'_>, frame: &Frame) -> Fanout {
        let routes = self.channel(id);
        let key_hash = match (routes.policy, route) {
            (SlowClientPolicy::LatestPerKey, Route::Key(Some(key))) => {
                let mut hasher = self.hasher.build_hasher();
                hasher.write(key.as_bytes());
                hasher.finish()
            }
            _ => 0,
        };
        let subscribers = routes.subscribers.lock();
        let targets: &[Arc<SessionHandle>] = match (routes.deliver, route) {
            (Deliver::Broadcast, _) => &subscribers.all,
            (Deliver::ByKey, Route::Key(Some(key))) => {
                subscribers.by_key.get(key).map_or(&[], Vec::as_slice)
            }
            (Deliver::Reply, Route::Reply { session, user }) => session
                .and_then(|s| subscribers.by_key.get(s))
                .filter(|list| !list.is_empty())
                .or_else(|| user.and_then(|u| subscribers.by_user.get(u)))
                .map_or(&[], Vec::as_slice),
            _ => &[],
        };
        let mut fanout = Fanout::default();
        for session in targets {
            match session
                .outbox
                .push_message(frame, id, key_hash, routes.policy)
            {
                Pushed::Queued => fanout.delivered += 1,
                Pushed::QueuedWithDrop => {
                    fanout.delivered += 1;
                    fanout.dropped += 1;
                }
                Pushed::Dropped | Pushed::Overflow => fanout.dropped += 1,
                Pushed::Closed => {}
            }
        }
        let unrouted = targets.is_empty() && routes.deliver == Deliver::Reply;
        drop(subscribers);
        routes.metrics.delivered.inc_by(fanout.delivered);
        routes.metrics.dropped_queue_full.inc_by(fanout.dropped);
        if unrouted {
            routes.metrics.dropped_undeliverable.inc();
        }
        fanout
    }

    /// Subscribers of a channel right now (all keys), for status pages.
    pub fn subscriber_count(&self, id: ChannelId) -> usize {
        let routes = self.channel(id);
        let subscribers = routes.subscribers.lock();
        match routes.deliver {
            Deliver::Broadcast => subscribers.all.len(),
            Deliver::ByKey | Deliver::Reply => subscribers.by_key.values().map(Vec::len).sum(),
        }
    }

    pub fn channels(&self) -> impl Iterator<Item = (ChannelId, &ChannelRoutes)> {
        self.channels
            .iter()
            .enumerate()
            .map(|(i, c)| (i as ChannelId, c))
    }
}

fn remove(list: &mut Vec<Arc<SessionHandle>>, id: u64) -> bool {
    match list.iter().position(|s| s.id == id) {
        Some(i) => {
            list.swap_remove(i);
            true
        }
        None => false,
    }
}

fn remove_keyed(map: &mut HashMap<String, Vec<Arc<SessionHandle>>>, key: &str, id: u64) -> bool {
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

    fn channel(name: &str, deliver: &str) -> ChannelConfig {
        serde_yaml::from_str(&format!(
            "{{name: {name}, topic: t, deliver: {deliver}, key: {{from: record_key}}}}"
        ))
        .unwrap()
    }

    fn session(id: u64, user: Option<&str>) -> Arc<SessionHandle> {
        Arc::new(SessionHandle {
            id,
            public_id: format!("s{id}"),
            user: user.map(str::to_owned),
            outbox: Outbox::new(16),
        })
    }

    fn ok() -> Frame {
        Frame::from("{\"type\":\"subscribed\"}".to_owned())
    }

    fn queued(session: &SessionHandle) -> usize {
        session.outbox.queued_messages()
    }

    fn hub() -> Hub {
        let metrics = Metrics::new(&[], &[], &[]);
        Hub::new(
            &[
                channel("news", "broadcast"),
                channel("bal", "by_key"),
                channel("replies", "reply"),
            ],
            |name| metrics.channel(name),
        )
    }

    #[test]
    fn broadcast_reaches_every_subscriber_once() {
        let hub = hub();
        let (a, b, c) = (session(1, None), session(2, None), session(3, None));
        hub.subscribe(0, None, &a, ok());
        hub.subscribe(0, None, &b, ok());
        assert_eq!(hub.subscribe(0, None, &b, ok()), Change::Unchanged);
        let frame = Frame::from("{}".to_owned());
        assert_eq!(hub.deliver(0, Route::Key(Some("x")), &frame).delivered, 2);
        assert_eq!((queued(&a), queued(&b), queued(&c)), (1, 1, 0));
        hub.unsubscribe(0, None, &a);
        hub.deliver(0, Route::Key(None), &frame);
        assert_eq!((queued(&a), queued(&b)), (1, 2));
    }

    #[test]
    fn by_key_reaches_only_that_key() {
        let hub = hub();
        let (a, b) = (session(1, None), session(2, None));
        hub.subscribe(1, Some("C-1"), &a, ok());
        hub.subscribe(1, Some("C-2"), &b, ok());
        let frame = Frame::from("{}".to_owned());
        hub.deliver(1, Route::Key(Some("C-1")), &frame);
        assert_eq!(hub.deliver(1, Route::Key(None), &frame).delivered, 0);
        assert_eq!(hub.deliver(1, Route::Key(Some("C-3")), &frame).delivered, 0);
        assert_eq!((queued(&a), queued(&b)), (1, 0));
        assert_eq!(hub.unsubscribe(1, Some("C-1"), &a), Change::Changed);
        assert_eq!(hub.unsubscribe(1, Some("C-1"), &a), Change::Unchanged);
        assert_eq!(hub.subscriber_count(1), 1);
    }

    #[test]
    fn replies_go_to_the_session_else_the_user() {
        let hub = hub();
        let (a1, a2, b) = (
            session(1, Some("alice")),
            session(2, Some("alice")),
            session(3, Some("bob")),
        );
        for s in [&a1, &a2, &b] {
            hub.subscribe(2, None, s, ok());
        }
        let frame = Frame::from("{}".to_owned());
        hub.deliver(
            2,
            Route::Reply {
                session: Some("s1"),
                user: Some("alice"),
            },
            &frame,
        );
        assert_eq!((queued(&a1), queued(&a2), queued(&b)), (1, 0, 0));
        hub.unsubscribe(2, None, &a1);
        hub.deliver(
            2,
            Route::Reply {
                session: Some("s1"),
                user: Some("alice"),
            },
            &frame,
        );
        assert_eq!((queued(&a1), queued(&a2), queued(&b)), (1, 1, 0));
        assert_eq!(
            hub.deliver(
                2,
                Route::Reply {
                    session: Some("gone"),
                    user: Some("carol")
                },
                &frame
            )
            .delivered,
            0
        );
    }
}
