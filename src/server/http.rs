//! HTTP helpers shared by both listeners: JSON errors, one answer for every rejection, and
//! `Authorization: Bearer` parsing.

use std::convert::Infallible;

use warp::http::StatusCode;
use warp::{Rejection, Reply};

/// A JSON error response: `{"error": message}`.
pub(crate) fn json_error(status: StatusCode, message: &str) -> warp::reply::Response {
    warp::reply::with_status(
        warp::reply::json(&serde_json::json!({ "error": message })),
        status,
    )
    .into_response()
}

/// Maps every rejection to a JSON error with a stable status.
pub async fn recover(rejection: Rejection) -> Result<warp::reply::Response, Infallible> {
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

/// The token of an `Authorization: Bearer <token>` header (the scheme in any case, as RFC 7235
/// has it); empty when absent or of another scheme.
pub(crate) fn bearer(authorization: Option<&str>) -> &str {
    authorization
        .and_then(|a| a.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map_or("", |(_, token)| token.trim())
}
