//! The WebSocket handshake on `server.ws_path`. Every refusal happens here, as a plain HTTP
//! answer with a JSON body, before any upgrade: not a WebSocket request (400), forbidden
//! origin (403), bad or missing token (401), too many connections or shutting down (503).
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
use super::{deflate, json_error, session, WsContext};
use crate::metrics::RejectReason;

/// Bytes read from the socket at a time (and allocated per connection for reading). Clients
/// send little (subscribes, publishes), and tungstenite zeroes this much before every read
/// attempt, so it is kept small: 1 KiB instead of 4 saved 3 KiB of RSS per idle session.
const READ_BUFFER_BYTES: usize = 1024;
/// tungstenite writes only pings, pongs and the close frame (sessions write their frames
/// themselves, see `session::write_frames`); its write buffer stays small.
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
        ctx.metrics.rejected(reason);
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
    let (identity, slot) = match ctx.admit(&headers, &query).await {
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
        .max_message_size(Some(ctx.limits.max_frame_bytes))
        .max_frame_size(Some(ctx.limits.max_frame_bytes));
    let deflate = ctx.limits.deflate_min_bytes.is_some()
        && deflate::negotiate(headers.get_all(header::SEC_WEBSOCKET_EXTENSIONS));
    let inflater = deflate.then(|| {
        Inflater::new(
            ctx.limits.max_frame_bytes,
            Some(ctx.metrics.inflated_messages.clone()),
        )
    });
    ctx.metrics.connections_accepted.inc();
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
                session::run(socket, ctx, identity, slot).await;
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

pub(super) fn origin_allowed(allowed: &[String], origin: &HeaderValue) -> bool {
    let origin = origin.to_str().unwrap_or_default();
    allowed
        .iter()
        .any(|a| a == "*" || a.eq_ignore_ascii_case(origin))
}

/// The token from `Authorization: Bearer …`, else from `?access_token=…`.
pub(super) fn bearer_token(headers: &HeaderMap, query: &str) -> Option<String> {
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        let value = value.to_str().ok()?;
        let (scheme, token) = value.split_once(' ')?;
        return scheme
            .eq_ignore_ascii_case("bearer")
            .then(|| token.trim().to_owned());
    }
    form_urlencoded_value(query, "access_token")
}

/// One value of an `application/x-www-form-urlencoded` query string.
pub(super) fn form_urlencoded_value(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == name).then(|| percent_decode(v))
    })
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = text
            .get(i + 1..i + 3)
            .filter(|hex| bytes[i] == b'%' && hex.bytes().all(|c| c.is_ascii_hexdigit()))
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match (bytes[i], escaped) {
            (_, Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (b'+', None) => {
                out.push(b' ');
                i += 1;
            }
            (other, None) => {
                out.push(other);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_from_header_or_query() {
        let mut headers = HeaderMap::new();
        assert_eq!(
            bearer_token(&headers, "a=1&access_token=abc%2Edef&b=2").as_deref(),
            Some("abc.def")
        );
        assert_eq!(bearer_token(&headers, "a=1"), None);
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer xyz"),
        );
        assert_eq!(
            bearer_token(&headers, "access_token=abc").as_deref(),
            Some("xyz")
        );
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic xyz"));
        assert_eq!(bearer_token(&headers, ""), None);
    }

    #[test]
    fn percent_decoding_tolerates_garbage() {
        assert_eq!(percent_decode("a%20b+c"), "a b c");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
    }

    #[test]
    fn origins() {
        let allowed = vec!["https://bank.example".to_owned()];
        assert!(origin_allowed(
            &allowed,
            &HeaderValue::from_static("https://bank.example")
        ));
        assert!(!origin_allowed(
            &allowed,
            &HeaderValue::from_static("https://evil.example")
        ));
        assert!(origin_allowed(
            &["*".to_owned()],
            &HeaderValue::from_static("https://x")
        ));
    }
}
