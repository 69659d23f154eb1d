//! `POST /api/v1/publish` on the client listener: `{"channel", "key", "data", "headers"}` with
//! `Authorization: Bearer <api key>`, answered `202` with where the record was written once
//! Kafka acknowledged it, or an error status with `{"error": …}`.

use std::sync::Arc;

use bytes::Bytes;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

use super::{json_error, WsContext};
use crate::inbound::{http_status, HttpRequest};
use crate::server::http::bearer;

pub(super) fn route(
    ctx: Arc<WsContext>,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let limit = ctx.core.limits.max_frame_bytes as u64;
    warp::path!("api" / "v1" / "publish")
        .and(warp::post())
        .and(warp::header::optional::<String>("authorization"))
        .and(warp::body::content_length_limit(limit))
        .and(warp::body::bytes())
        .and(warp::any().map(move || ctx.clone()))
        .then(handle)
}

async fn handle(authorization: Option<String>, body: Bytes, ctx: Arc<WsContext>) -> Response {
    let http = &ctx.http_publish;
    if !http.enabled() {
        return json_error(
            StatusCode::FORBIDDEN,
            "the publish API is off: set server.api_keys to enable it",
        );
    }
    if !http.authorized(bearer(authorization.as_deref())) {
        return json_error(
            StatusCode::UNAUTHORIZED,
            "missing or unknown API key: send Authorization: Bearer <key>",
        );
    }
    let request: HttpRequest = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(e) => return json_error(StatusCode::BAD_REQUEST, &format!("invalid request: {e}")),
    };
    match http.publish(request).await {
        Ok((topic, delivered)) => warp::reply::with_status(
            warp::reply::json(&serde_json::json!({
                "topic": topic,
                "partition": delivered.partition,
                "offset": delivered.offset,
            })),
            StatusCode::ACCEPTED,
        )
        .into_response(),
        Err(refusal) => json_error(
            StatusCode::from_u16(http_status(refusal.code))
                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            &refusal.message,
        ),
    }
}
