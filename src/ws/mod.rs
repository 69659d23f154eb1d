//! The client-facing HTTP side: the WebSocket upgrade (`upgrade.rs`), one task per session
//! (`session.rs`), and the warp routes of the client listener. The only module importing warp
//! besides the accept loop in `server.rs`.

mod demo;
mod publish_api;
mod session;
mod upgrade;

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use warp::http::StatusCode;
use warp::{Filter, Rejection, Reply};

use crate::auth::{Authenticator, Identity};
use crate::config::{ChannelConfig, Plan};
use crate::hub::{Hub, SessionHandle};
use crate::inbound::{HttpPublish, Inbound};
use crate::kafka::RangeReader;
use crate::metrics::Metrics;
use crate::outbound::Outbound;
use crate::outbox::Close;

/// Limits from `server.*`, copied once.
#[derive(Debug, Clone)]
pub struct Limits {
    pub replay_max_records: usize,
    pub publish_rate: crate::config::PublishRate,
    /// How often sessions are pinged; `None`: never.
    pub ping_interval: Option<std::time::Duration>,
    /// A session silent this long is closed; `None`: never.
    pub idle_timeout: Option<std::time::Duration>,
    pub max_frame_bytes: usize,
    pub max_connections: usize,
    pub max_subscriptions: usize,
    /// Bounds of each session's outbound queue.
    pub send_queue: crate::outbox::Bounds,
    pub max_inflight_publishes: usize,
}

/// Everything a session or handshake needs, shared by all of them.
pub struct WsContext {
    pub hub: Arc<Hub>,
    /// Encodes records read from Kafka for replays.
    pub outbound: Arc<Outbound>,
    /// Reads what memory no longer holds, for replays.
    pub reader: Arc<RangeReader>,
    pub inbound: Arc<Inbound>,
    /// `POST /api/v1/publish`.
    pub http_publish: Arc<HttpPublish>,
    /// The config's channels, indexed like the hub's channel ids.
    pub channels: Vec<ChannelConfig>,
    pub metrics: Arc<Metrics>,
    pub auth: Authenticator,
    pub limits: Limits,
    /// `auth.max_sessions_per_user` (0 = unlimited).
    pub max_sessions_per_user: usize,
    pub ws_path: String,
    pub allowed_origins: Vec<String>,
    /// Serve the demo page and the channel list (`server.demo_page`).
    pub demo_page: bool,
    /// Names of the inbound channels, for the channel list.
    pub inbound_channels: Vec<String>,
    pub sessions: Sessions,
    /// Cancelled when the bridge stops taking new connections.
    pub accepting: CancellationToken,
    /// Cancelled when sessions must stop reading client frames (shutdown drain).
    pub draining: CancellationToken,
    /// In-flight publishes, awaited on shutdown.
    pub publishes: TaskTracker,
    /// Session tasks, awaited on shutdown.
    pub session_tasks: TaskTracker,
    open_connections: AtomicUsize,
    next_session: AtomicU64,
}

impl WsContext {
    pub fn new(
        plan: &Plan,
        hub: Arc<Hub>,
        outbound: Arc<Outbound>,
        inbound: Arc<Inbound>,
        http_publish: Arc<HttpPublish>,
        metrics: Arc<Metrics>,
        auth: Authenticator,
    ) -> Self {
        let server = &plan.config.server;
        WsContext {
            hub,
            outbound,
            reader: Arc::new(RangeReader::new(plan)),
            inbound,
            http_publish,
            channels: plan.config.channels.clone(),
            metrics,
            auth,
            limits: Limits {
                replay_max_records: server.replay_max_records,
                publish_rate: server.publish_rate,
                ping_interval: (server.ping_interval_ms > 0)
                    .then(|| std::time::Duration::from_millis(server.ping_interval_ms)),
                idle_timeout: (server.idle_timeout_ms > 0)
                    .then(|| std::time::Duration::from_millis(server.idle_timeout_ms)),
                max_frame_bytes: server.max_frame_bytes,
                max_connections: server.max_connections,
                max_subscriptions: server.max_subscriptions_per_session,
                send_queue: crate::outbox::Bounds {
                    messages: server.send_queue_messages,
                    bytes: server.send_queue_bytes,
                },
                max_inflight_publishes: server.max_inflight_publishes,
            },
            max_sessions_per_user: plan.config.auth.max_sessions_per_user,
            ws_path: server.ws_path.clone(),
            allowed_origins: server.allowed_origins.clone(),
            demo_page: server.demo_page,
            inbound_channels: plan
                .config
                .inbound
                .iter()
                .map(|i| i.channel.clone())
                .collect(),
            sessions: Sessions::default(),
            accepting: CancellationToken::new(),
            draining: CancellationToken::new(),
            publishes: TaskTracker::new(),
            session_tasks: TaskTracker::new(),
            open_connections: AtomicUsize::new(0),
            next_session: AtomicU64::new(1),
        }
    }

    /// Reserves a connection slot, or `None` when `max_connections` are open.
    fn try_reserve_connection(self: &Arc<Self>) -> Option<ConnectionSlot> {
        let open = self.open_connections.fetch_add(1, Ordering::AcqRel);
        if open >= self.limits.max_connections {
            self.open_connections.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        Some(ConnectionSlot(self.clone()))
    }

    /// Sessions currently open.
    pub fn open_connections(&self) -> usize {
        self.open_connections.load(Ordering::Acquire)
    }
}

/// One of `max_connections`, released on drop.
struct ConnectionSlot(Arc<WsContext>);

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.0.open_connections.fetch_sub(1, Ordering::AcqRel);
    }
}

/// An open session as the registry holds it.
#[derive(Clone)]
struct Entry {
    handle: Arc<SessionHandle>,
    /// Cancelled once the session's task has finished (its connection is closed).
    finished: CancellationToken,
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
    fn insert(
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

    fn remove(&self, handle: &SessionHandle) {
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

/// Routes of the client listener.
pub fn routes(
    ctx: Arc<WsContext>,
) -> impl Filter<Extract = (warp::reply::Response,), Error = Infallible> + Clone {
    upgrade::route(ctx.clone())
        .or(publish_api::route(ctx.clone()))
        .unify()
        .or(demo::routes(ctx))
        .unify()
        .recover(recover)
        .unify()
}

/// A JSON error response: `{"error": message}`.
pub fn json_error(status: StatusCode, message: &str) -> warp::reply::Response {
    warp::reply::with_status(
        warp::reply::json(&serde_json::json!({ "error": message })),
        status,
    )
    .into_response()
}

/// Maps every rejection to a JSON error with a stable status.
async fn recover(rejection: Rejection) -> Result<warp::reply::Response, Infallible> {
    let (status, message) = if rejection.is_not_found() {
        (StatusCode::NOT_FOUND, "not found")
    } else if rejection.find::<warp::reject::PayloadTooLarge>().is_some() {
        (
            StatusCode::PAYLOAD_TOO_LARGE,
            "request body larger than server.max_frame_bytes",
        )
    } else if rejection.find::<warp::reject::LengthRequired>().is_some() {
        (StatusCode::LENGTH_REQUIRED, "Content-Length required")
    } else if rejection.find::<warp::reject::MethodNotAllowed>().is_some() {
        (StatusCode::METHOD_NOT_ALLOWED, "method not allowed")
    } else {
        (StatusCode::BAD_REQUEST, "bad request")
    };
    Ok(json_error(status, message))
}

/// A session's identity as used in logs: never the token, only the user id.
fn user_label(identity: &Identity) -> &str {
    identity.user.as_deref().unwrap_or("-")
}
