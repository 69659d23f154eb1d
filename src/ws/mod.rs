//! The client-facing HTTP side: the WebSocket upgrade (`upgrade.rs`), one task per session
//! (`session.rs`; JSON protocol in `requests.rs`, STOMP in `stomp/`, Server-Sent Events in
//! `sse.rs`), and the warp routes of the client listener. The only module importing warp
//! besides the accept loop in `server.rs`.

mod deflate;
mod demo;
mod inflate;
mod json;
mod publish_api;
mod request;
mod socket;
mod sse;
mod stomp;
#[cfg(test)]
mod tests;
mod transport;
mod upgrade;
mod wire;

use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use warp::Filter;

use crate::auth::Identity;
use crate::config::Plan;
use crate::hub::SessionHandle;
use crate::inbound::HttpPublish;
use crate::metrics::RejectReason;
use crate::outbox::Close;
use crate::server::http::{json_error, recover};
use crate::session;

/// How a request that cannot become a session is answered: status, metric reason, message.
type Refused = (warp::http::StatusCode, RejectReason, String);

/// Everything a handshake or a transport needs, shared by all of them: the sessions' own
/// context ([`session::Context`]) and what only the client listener uses.
pub(crate) struct WsContext {
    /// What every session uses (hub, catalogue, inbound, metrics, auth, limits …).
    pub(crate) core: Arc<session::Context>,
    /// `POST /api/v1/publish`.
    pub(crate) http_publish: Arc<HttpPublish>,
    /// `auth.max_sessions_per_user` (0 = unlimited).
    pub(crate) max_sessions_per_user: usize,
    /// `auth.session_group_param`: the query parameter naming a session's group.
    pub(crate) session_group_param: Option<String>,
    pub(crate) ws_path: String,
    /// `server.sse_path`; empty: no Server-Sent Events.
    pub(crate) sse_path: String,
    /// `server.stomp`: STOMP over WebSocket on `ws_path`.
    pub(crate) stomp: crate::config::StompConfig,
    pub(crate) allowed_origins: Vec<String>,
    /// Serve the demo page and the channel list (`server.demo_page`).
    pub(crate) demo_page: bool,
    /// Cancelled when the bridge stops taking new connections.
    pub(crate) accepting: CancellationToken,
    /// Cancelled when sessions must stop reading client frames (shutdown drain).
    pub(crate) draining: CancellationToken,
    /// Session tasks, awaited on shutdown.
    pub(crate) session_tasks: TaskTracker,
    open_connections: AtomicUsize,
    next_session: AtomicU64,
}

impl WsContext {
    /// The client listener of `plan`, over the sessions' context.
    pub(crate) fn new(
        plan: &Plan,
        core: Arc<session::Context>,
        http_publish: Arc<HttpPublish>,
    ) -> Self {
        let server = &plan.config.server;
        WsContext {
            core,
            http_publish,
            max_sessions_per_user: plan.config.auth.max_sessions_per_user,
            session_group_param: plan.config.auth.session_group_param.clone(),
            ws_path: server.ws_path.clone(),
            sse_path: server.sse_path.clone(),
            stomp: server.stomp.clone(),
            allowed_origins: server.allowed_origins.clone(),
            demo_page: server.demo_page,
            accepting: CancellationToken::new(),
            draining: CancellationToken::new(),
            session_tasks: TaskTracker::new(),
            open_connections: AtomicUsize::new(0),
            next_session: AtomicU64::new(1),
        }
    }

    /// The session group a handshake's query names (`auth.session_group_param`), or why it
    /// is refused (400).
    fn session_group(&self, query: &str) -> Result<Option<String>, Refused> {
        let Some(param) = &self.session_group_param else {
            return Ok(None);
        };
        request::session_group(query, param).map_err(|message| {
            (
                warp::http::StatusCode::BAD_REQUEST,
                RejectReason::BadRequest,
                message,
            )
        })
    }

    /// Reserves a connection slot, or `None` when `max_connections` are open.
    fn try_reserve_connection(self: &Arc<Self>) -> Option<ConnectionSlot> {
        let open = self.open_connections.fetch_add(1, Ordering::AcqRel);
        if open >= self.core.limits.max_connections {
            self.open_connections.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        Some(ConnectionSlot(self.clone()))
    }

    /// Authenticates a new session's request (WebSocket or SSE) and reserves its connection
    /// slot, or says how to refuse it.
    async fn admit(
        self: &Arc<Self>,
        headers: &warp::http::HeaderMap,
        query: &str,
    ) -> Result<(Identity, ConnectionSlot), Refused> {
        let identity = self
            .authenticate(request::bearer_token(headers, query))
            .await?;
        Ok((identity, self.reserve()?))
    }

    /// As [`Self::admit`] for a STOMP handshake, whose token may come later, in its CONNECT
    /// frame: one in the handshake is verified now, its absence is no refusal.
    async fn admit_stomp(
        self: &Arc<Self>,
        headers: &warp::http::HeaderMap,
        query: &str,
    ) -> Result<(Option<Identity>, ConnectionSlot), Refused> {
        let identity = match request::bearer_token(headers, query) {
            Some(token) => Some(self.authenticate(Some(token)).await?),
            None => None,
        };
        Ok((identity, self.reserve()?))
    }

    async fn authenticate(&self, token: Option<String>) -> Result<Identity, Refused> {
        self.core.auth.authenticate(token).await.map_err(|reason| {
            (
                warp::http::StatusCode::UNAUTHORIZED,
                RejectReason::Unauthorized,
                reason.to_string(),
            )
        })
    }

    fn reserve(self: &Arc<Self>) -> Result<ConnectionSlot, Refused> {
        self.try_reserve_connection().ok_or_else(|| {
            (
                warp::http::StatusCode::SERVICE_UNAVAILABLE,
                RejectReason::TooManyConnections,
                "too many connections (server.max_connections)".to_owned(),
            )
        })
    }

    /// The hub's handle of a new session of `identity`.
    fn new_handle(&self, identity: &Identity) -> Arc<SessionHandle> {
        Arc::new(SessionHandle {
            id: self.next_session.fetch_add(1, Ordering::Relaxed),
            public_id: uuid::Uuid::new_v4().simple().to_string(),
            user: identity.user.clone(),
            claims: identity.claims.clone(),
            outbox: crate::outbox::Outbox::new(self.core.limits.send_queue),
        })
    }

    /// Stops the client side in order, giving up at `deadline`: stop accepting → stop reading
    /// client frames → answer every in-flight publish → close sessions with 1001 (queued
    /// frames first).
    pub(crate) async fn stop(&self, deadline: std::time::Instant) {
        self.accepting.cancel();
        self.draining.cancel();
        self.core.publishes.close();
        if tokio::time::timeout_at(deadline.into(), self.core.publishes.wait())
            .await
            .is_err()
        {
            tracing::warn!("shutdown deadline reached with publishes still waiting for kafka");
        }
        self.core.sessions.close_all(Close::Shutdown);
        self.session_tasks.close();
        if tokio::time::timeout_at(deadline.into(), self.session_tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                sessions = self.core.sessions.len(),
                "shutdown deadline reached with sessions still closing"
            );
        }
    }
}

/// One of `max_connections`, released on drop.
struct ConnectionSlot(Arc<WsContext>);

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.0.open_connections.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Routes of the client listener.
pub(crate) fn routes(
    ctx: Arc<WsContext>,
) -> impl Filter<Extract = (warp::reply::Response,), Error = Infallible> + Clone {
    upgrade::route(ctx.clone())
        .or(sse::route(ctx.clone()))
        .unify()
        .or(publish_api::route(ctx.clone()))
        .unify()
        .or(demo::routes(ctx))
        .unify()
        .recover(recover)
        .unify()
}

/// A GET at exactly `path` (never, when `path` is empty), with its headers and raw query
/// string (empty when there is none): how both the WebSocket upgrade and SSE streams start.
fn get_at(
    path: String,
) -> impl Filter<Extract = (warp::http::HeaderMap, String), Error = warp::Rejection> + Clone {
    warp::get()
        .and(warp::path::full())
        .and_then(move |full: warp::filters::path::FullPath| {
            let matches = !path.is_empty() && full.as_str() == path;
            async move {
                if matches {
                    Ok(())
                } else {
                    Err(warp::reject::not_found())
                }
            }
        })
        .untuple_one()
        .and(warp::header::headers_cloned())
        .and(warp::query::raw().or(warp::any().map(String::new)).unify())
}
