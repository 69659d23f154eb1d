//! Client protocol v1, the wire format between the bridge and its WebSocket clients.
//!
//! Layout: `frame.rs` holds an encoded server [`Frame`] as the complete WebSocket frame;
//! `decode.rs` turns client text into a [`ClientFrame`] (with errors precise enough to send
//! back); `encode.rs` writes server frames: control frames with serde, the per-record `message`
//! frame by hand (it is on the hot path, see the measurement there); `codec.rs` converts record
//! values to and from the JSON `data` of frames per the channel's `format`, for the Kafka →
//! client and the HTTP → Kafka directions alike. Outbound `message` frames are encoded once per
//! record and shared, as they are, by every receiving session.

mod codec;
mod decode;
mod delivery;
mod encode;
mod frame;
mod item;

#[cfg(test)]
mod bench;

use serde_json::value::RawValue;

pub use codec::{decode_data, encode_data, key_at_pointer, DataError, DataJson};
pub use decode::{decode_client, ClientFrame, DecodeError, MAX_DATA_DEPTH};
pub use delivery::{sse_lines, Delivery, Parts};
pub use encode::{
    ack, answer, error, message, pong, push_json_str, refreshed, session_replaced, subscribed,
    token_expiring, unsubscribed, unsubscribed_because, welcome, MessageParts, MessagePrefix,
    SnapshotValue,
};
pub use frame::Frame;
pub use item::{Answer, Item, Subscribed, Unsubscribed};

/// Header naming the session a reply is for (set by the bridge on inbound records).
pub const SESSION_HEADER: &str = "bridge-session";
/// Header naming the user a reply is for (set by the bridge on inbound records).
pub const USER_HEADER: &str = "bridge-user";
/// Header carrying the client's publish id.
pub const CORRELATION_HEADER: &str = "correlation-id";
/// Header carrying the publisher's roles, comma-separated (`identity_headers: [roles]`).
pub const ROLES_HEADER: &str = "bridge-roles";
/// Prefix of the headers carrying claims of the publisher's token (`identity_headers`).
pub const CLAIM_HEADER_PREFIX: &str = "bridge-claim-";
/// Headers only the bridge sets; a publish that carries one (or a `bridge-claim-*` header) is
/// refused.
pub const RESERVED_HEADERS: &[&str] = &[
    USER_HEADER,
    SESSION_HEADER,
    CORRELATION_HEADER,
    ROLES_HEADER,
];

/// Whether only the bridge may set header `name` (compared case-insensitively).
pub fn is_reserved_header(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    RESERVED_HEADERS.contains(&name.as_str()) || name.starts_with(CLAIM_HEADER_PREFIX)
}

/// Error codes of `error` frames (protocol v1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    BadRequest,
    UnknownChannel,
    Forbidden,
    /// A `refresh` whose token does not verify.
    Unauthorized,
    TooLarge,
    RateLimited,
    Invalid,
    Unavailable,
    Internal,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::UnknownChannel => "unknown_channel",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::TooLarge => "too_large",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::Invalid => "invalid",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::Internal => "internal",
        }
    }
}

/// On the wire as its [`ErrorCode::as_str`] name, the same one the metrics use.
impl serde::Serialize for ErrorCode {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// A request refused: the code and a message for the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub code: ErrorCode,
    pub message: String,
}

impl Refusal {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Refusal {
            code,
            message: message.into(),
        }
    }
}

/// The client's request id, echoed in the answer. Any JSON string or number.
pub type RequestId = Option<Box<RawValue>>;
