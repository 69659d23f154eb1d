//! The WebSocket handshake on `server.ws_path`. Every refusal happens here, as a plain HTTP
//! answer with a JSON body, before any upgrade: not a WebSocket request (400), forbidden
//! origin (403), a bad session group (400, `auth.session_group_param`), bad or missing token
//! (401), too many connections or shutting down (503).
//! A handshake asking for a STOMP subprotocol gets it in the answer and becomes a STOMP
//! session (`stomp/`); its token may also come later, in the CONNECT frame, so only a bad
//! token in the handshake is refused here.
//!
//! permessage-deflate is negotiated here (`deflate.rs`); a session that has it reads through
//! an [`Inflating`] connection.
//!
//! The upgrade itself is done with tokio-tungstenite directly rather than warp's `ws()` filter
//! so that the connection's buffers can be sized: tungstenite's defaults allocate 128 KiB per
//! connection for reading alone.

use std::sync::Arc;

use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::WebSocketStream;
use warp::http::header::{self, HeaderMap, HeaderValue};
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Rejection};

use super::inflate::{Inflater, Inflating};
use super::json::Json;
use super::request::origin_allowed;
use super::{deflate, json_error, socket, stomp, WsContext};
use crate::metrics::RejectReason;
use crate::metrics::Transport as Counted;

/// Bytes read from the socket at a time (and allocated per connection for reading). Clients
/// send little (subscribes, publishes), and tungstenite zeroes this much before every read
/// attempt, so it is kept small: 1 KiB instead of 4 saved 3 KiB of RSS per idle session.
const READ_BUFFER_BYTES: usize = 1024;
/// tungstenite writes only pings, pongs and the close frame (sessions write their frames
/// themselves, see `wire::write_frames`); its write buffer stays small.
const WRITE_BUFFER_BYTES: usize = 64 * 1024;
/// Hard cap of the bytes tungstenite buffers for one connection.
const MAX_WRITE_BUFFER_BYTES: usize = 4 * 1024 * 1024;

pub(super) fn route(
    ctx: Arc<WsContext>,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    super::get_at(ctx.ws_path.clone())
        .and(warp::ext::optional::<OnUpgrade>())
        .and(warp::any().map(move || ctx.clone()))
        .then(handshake)
}

async fn handshake(
    headers: HeaderMap,
    query: String,
    on_upgrade: Option<OnUpgrade>,
    ctx: Arc<WsContext>,
) -> Response {
    let refuse = |status: StatusCode, reason: RejectReason, message: &str| {
        ctx.core.metrics.rejected(reason);
        json_error(status, message)
    };
    if ctx.accepting.is_cancelled() {
        return refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            RejectReason::ShuttingDown,
            "the bridge is shutting down; reconnect to another instance",
        );
    }
    let key = match websocket_key(&headers) {
        Ok(key) => key,
        Err(message) => return refuse(StatusCode::BAD_REQUEST, RejectReason::BadRequest, message),
    };
    if let Some(origin) = headers.get(header::ORIGIN) {
        if !origin_allowed(&ctx.allowed_origins, origin) {
            return refuse(
                StatusCode::FORBIDDEN,
                RejectReason::ForbiddenOrigin,
                "origin not allowed (server.allowed_origins)",
            );
        }
    }
    let group = match ctx.session_group(&query) {
        Ok(group) => group,
        Err((status, reason, message)) => return refuse(status, reason, &message),
    };
    let subprotocol = ctx
        .stomp
        .enabled
        .then(|| stomp::dialect::subprotocol(&headers))
        .flatten();
    let admitted = match subprotocol {
        Some(_) => ctx.admit_stomp(&headers, &query).await,
        None => ctx
            .admit(&headers, &query)
            .await
            .map(|(identity, slot)| (Some(identity), slot)),
    };
    let (identity, slot) = match admitted {
        Ok(admitted) => admitted,
        Err((status, reason, message)) => return refuse(status, reason, &message),
    };
    let Some(on_upgrade) = on_upgrade else {
        return refuse(
            StatusCode::BAD_REQUEST,
            RejectReason::BadRequest,
            "this connection cannot be upgraded (HTTP/1.1 required)",
        );
    };
    let config = WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER_BYTES)
        .write_buffer_size(WRITE_BUFFER_BYTES)
        .max_write_buffer_size(MAX_WRITE_BUFFER_BYTES)
        .max_message_size(Some(ctx.core.limits.max_frame_bytes))
        .max_frame_size(Some(ctx.core.limits.max_frame_bytes));
    let deflate = ctx.core.limits.deflate_min_bytes.is_some()
        && deflate::negotiate(headers.get_all(header::SEC_WEBSOCKET_EXTENSIONS));
    let inflater = deflate.then(|| {
        Inflater::new(
            ctx.core.limits.max_frame_bytes,
            Some(ctx.core.metrics.inflated_messages.clone()),
        )
    });
    ctx.core.metrics.connections_accepted.inc();
    let tracker = ctx.session_tasks.clone();
    tracker.spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => {
                let socket = WebSocketStream::from_raw_socket(
                    Inflating::new(TokioIo::new(upgraded), inflater),
                    Role::Server,
                    Some(config),
                )
                .await;
                match (subprotocol, identity) {
                    (None, Some(identity)) => {
                        socket::run(socket, ctx, identity, group, slot, Json, Counted::WebSocket)
                            .await
                    }
                    (_, identity) => stomp::run(socket, ctx, identity, group, slot).await,
                }
            }
            Err(e) => tracing::debug!(error = %e, "websocket upgrade failed"),
        }
    });
    let mut response = Response::default();
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = response.headers_mut();
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(
        header::SEC_WEBSOCKET_ACCEPT,
        HeaderValue::from_str(&derive_accept_key(key.as_bytes()))
            .expect("base64 is a valid header"),
    );
    if let Some(subprotocol) = subprotocol {
        headers.insert(
            header::SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static(subprotocol),
        );
    }
    if deflate {
        headers.insert(
            header::SEC_WEBSOCKET_EXTENSIONS,
            HeaderValue::from_static(deflate::ACCEPTED),
        );
    }
    response
}

/// The `Sec-WebSocket-Key` of a valid upgrade request.
fn websocket_key(headers: &HeaderMap) -> Result<String, &'static str> {
    let has_token = |name: header::HeaderName, token: &str| {
        headers.get_all(name).iter().any(|value| {
            value
                .to_str()
                .unwrap_or_default()
                .split(',')
                .any(|part| part.trim().eq_ignore_ascii_case(token))
        })
    };
    if !has_token(header::UPGRADE, "websocket") || !has_token(header::CONNECTION, "upgrade") {
        return Err("expected a WebSocket upgrade request (Upgrade: websocket)");
    }
    if headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .is_none_or(|v| v.as_bytes() != b"13")
    {
        return Err("unsupported WebSocket version (Sec-WebSocket-Version: 13 required)");
    }
    headers
        .get(header::SEC_WEBSOCKET_KEY)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .ok_or("missing Sec-WebSocket-Key")
}
