//! The built-in demo page (`server.demo_page: true`): one static page and the JS client it
//! imports, both compiled into the binary, plus `GET /api/v1/channels` so the page can list
//! what the config offers (channels, and where SSE and STOMP are, for its transport switch). Off by default: it reveals channel names to anyone who asks.
//!
//! For frontend work, `KAFKA_WS_BRIDGE_CLIENTS_DIR=clients` serves the files from disk instead
//! (`demo/index.html`, `js/kafka-ws-bridge.js`), read on every request.

use std::sync::Arc;

use serde::Serialize;
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

use super::WsContext;
use crate::config::Deliver;

const PAGE: &str = include_str!("../../clients/demo/index.html");
const CLIENT: &str = include_str!("../../clients/js/kafka-ws-bridge.js");

/// An asset: from `KAFKA_WS_BRIDGE_CLIENTS_DIR` when set (development), else embedded.
fn asset(relative: &str, embedded: &'static str) -> String {
    match std::env::var_os("KAFKA_WS_BRIDGE_CLIENTS_DIR") {
        Some(dir) => std::fs::read_to_string(std::path::Path::new(&dir).join(relative))
            .unwrap_or_else(|e| format!("<!-- cannot read {relative}: {e} -->")),
        None => embedded.to_owned(),
    }
}

#[derive(Serialize)]
struct ChannelInfo<'a> {
    name: &'a str,
    deliver: Deliver,
    snapshot: bool,
    history: usize,
}

/// What the page needs to speak STOMP on `ws_path` (absent when `server.stomp.enabled` is false).
#[derive(Serialize)]
struct StompInfo<'a> {
    topic_prefix: &'a str,
    user_prefix: &'a str,
    app_prefix: &'a str,
}

#[derive(Serialize)]
struct Channels<'a> {
    ws_path: &'a str,
    /// Empty when Server-Sent Events are off.
    sse_path: &'a str,
    stomp: Option<StompInfo<'a>>,
    auth: &'static str,
    channels: Vec<ChannelInfo<'a>>,
    inbound: Vec<&'a str>,
}

pub(super) fn routes(
    ctx: Arc<WsContext>,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let enabled = {
        let on = ctx.demo_page;
        warp::any()
            .and_then(move || async move {
                if on {
                    Ok(())
                } else {
                    Err(warp::reject::not_found())
                }
            })
            .untuple_one()
    };
    let page = warp::path::end().map(|| {
        warp::reply::with_header(
            warp::reply::html(asset("demo/index.html", PAGE)),
            "content-security-policy",
            "default-src 'self'; connect-src 'self' ws: wss:; style-src 'self' 'unsafe-inline'; script-src 'self' 'unsafe-inline'",
        )
        .into_response()
    });
    let client = warp::path!("client" / "kafka-ws-bridge.js").map(|| {
        warp::reply::with_header(
            asset("js/kafka-ws-bridge.js", CLIENT),
            "content-type",
            "text/javascript; charset=utf-8",
        )
        .into_response()
    });
    let channels = warp::path!("api" / "v1" / "channels").map(move || {
        let info = Channels {
            ws_path: &ctx.ws_path,
            sse_path: &ctx.sse_path,
            stomp: ctx.stomp.enabled.then(|| StompInfo {
                topic_prefix: &ctx.stomp.topic_prefix,
                user_prefix: &ctx.stomp.user_prefix,
                app_prefix: &ctx.stomp.app_prefix,
            }),
            auth: if ctx.core.auth.is_anonymous() {
                "none"
            } else {
                "jwt"
            },
            channels: ctx
                .core
                .catalogue
                .channels()
                .iter()
                .map(|c| ChannelInfo {
                    name: c.name(),
                    deliver: c.deliver(),
                    snapshot: c.spec.snapshot,
                    history: c.spec.history,
                })
                .collect(),
            inbound: ctx
                .core
                .catalogue
                .inbound_channels()
                .iter()
                .map(|c| c.name())
                .collect(),
        };
        warp::reply::json(&info).into_response()
    });
    warp::get()
        .and(enabled)
        .and(page.or(client).unify().or(channels).unify())
}
