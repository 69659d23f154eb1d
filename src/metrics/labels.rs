//! The closed sets metric labels come from: an enum per label, so a value that can be counted
//! is one that is pre-created, and none is created that can never be counted.

use crate::protocol::ErrorCode;

/// Defines a closed set of label values: an enum whose variants are the only values its label
/// can take, `ALL` to pre-create them, and `as_str` for the label text.
macro_rules! labels {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident => $text:literal,)* }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum $name {
            $($(#[$vdoc])* $variant,)*
        }

        impl $name {
            // Sets whose handles are resolved one by one (`DropReason`) do not iterate it.
            #[allow(dead_code)]
            pub const ALL: &[$name] = &[$($name::$variant,)*];

            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)*
                }
            }
        }
    };
}

labels! {
    /// Why a session ended (label `reason` of `sessions_closed_total`).
    CloseReason {
        /// The client closed the connection or it dropped.
        ClientClosed => "client_closed",
        /// The session did not take its records in time (close code 4001).
        SlowClient => "slow_client",
        /// A newer session of the same user replaced it (4000).
        Replaced => "replaced",
        /// The token expired (4002).
        TokenExpired => "token_expired",
        /// A frame over `max_frame_bytes` (1009).
        FrameTooLarge => "frame_too_large",
        /// A protocol violation such as a binary frame or invalid UTF-8 (1008 / 1007).
        Policy => "policy",
        /// The peer stopped answering pings.
        IdleTimeout => "idle_timeout",
        /// The bridge is shutting down (1001).
        Shutdown => "shutdown",
        /// A transport error.
        Error => "error",
        /// The session's task panicked (a bug): released all the same, counted here.
        Panic => "panic",
    }
}

labels! {
    /// How a session reaches its client (label `transport` of `sessions_open` and
    /// `sessions_closed_total`).
    Transport {
        /// The JSON protocol over WebSocket.
        WebSocket => "websocket",
        /// STOMP over WebSocket (subprotocol `v12.stomp` and older).
        Stomp => "stomp",
        /// A Server-Sent Events stream.
        Sse => "sse",
    }
}

labels! {
    /// Why a connection was refused before becoming a session (label `reason`).
    RejectReason {
        Unauthorized => "unauthorized",
        ForbiddenOrigin => "forbidden_origin",
        TooManyConnections => "too_many_connections",
        BadRequest => "bad_request",
        ShuttingDown => "shutting_down",
    }
}

labels! {
    /// Why a record or message was not delivered (label `reason`).
    DropReason {
        /// The record's value does not decode in the channel's format.
        Undecodable => "undecodable",
        /// A `by_key` record without a routing key.
        NoKey => "no_key",
        /// Shed by the slow-client policy, or queued behind a closing session.
        QueueFull => "queue_full",
        /// A reply for a session and user with no subscription here.
        Undeliverable => "undeliverable",
        /// Read again after the consumer went back to its last commit; already routed.
        Redelivered => "redelivered",
        /// Dropped by a `filter` (or `extract`) step of the channel's `transforms`.
        Filtered => "filtered",
        /// A `subscribe.where` channel's record without the value its rule points at.
        NotEntitled => "not_entitled",
        /// Replaced by a newer record of its key while held back by `max_rate`.
        Conflated => "conflated",
    }
}

labels! {
    /// Where a replayed record was read from (label `source` of `replayed_messages_total`).
    ReplaySource {
        /// The channel's in-memory history or snapshot.
        Memory => "memory",
        /// The topic itself, for what memory no longer holds.
        Kafka => "kafka",
    }
}

labels! {
    /// Outcome of one fetch of the identity provider's signing keys (label `result` of
    /// `jwks_fetches_total`).
    JwksFetch {
        Ok => "ok",
        Failed => "failed",
    }
}

labels! {
    /// What a record read from the session registry topic was (label `result` of
    /// `session_registry_records_total`).
    SessionRegistryRecord {
        /// A session opened on some instance.
        Opened => "opened",
        /// A tombstone: a session closed.
        Closed => "closed",
        /// Not a bridge's record.
        Ignored => "ignored",
    }
}

labels! {
    /// Outcome of one request to the schema registry (label `result` of
    /// `schema_registry_requests_total`); each attempt counts, retries too.
    RegistryRequest {
        Ok => "ok",
        NotFound => "not_found",
        Error => "error",
        Timeout => "timeout",
    }
}

labels! {
    /// Outcomes of `POST /api/v1/publish` (label `result`). A request for a channel that does
    /// not exist is answered 404 and counted nowhere: the channel label would come from the
    /// caller.
    HttpResult {
        Ok => "ok",
        BadRequest => "bad_request",
        TooLarge => "too_large",
        Unavailable => "unavailable",
        Internal => "internal",
    }
}

impl From<ErrorCode> for HttpResult {
    fn from(code: ErrorCode) -> Self {
        match code {
            ErrorCode::TooLarge => HttpResult::TooLarge,
            ErrorCode::Unavailable => HttpResult::Unavailable,
            ErrorCode::Internal => HttpResult::Internal,
            ErrorCode::BadRequest
            | ErrorCode::Invalid
            | ErrorCode::Forbidden
            | ErrorCode::Unauthorized
            | ErrorCode::RateLimited
            | ErrorCode::UnknownChannel => HttpResult::BadRequest,
        }
    }
}

/// Outcome of an inbound publish (label `result`): `ok` or the error code sent to the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PublishResult {
    Ok,
    Refused(ErrorCode),
}

impl PublishResult {
    /// Every counted outcome. `unknown_channel` is not one: it has no channel to count on.
    const ALL: [PublishResult; 8] = [
        PublishResult::Ok,
        PublishResult::Refused(ErrorCode::BadRequest),
        PublishResult::Refused(ErrorCode::Forbidden),
        PublishResult::Refused(ErrorCode::Invalid),
        PublishResult::Refused(ErrorCode::TooLarge),
        PublishResult::Refused(ErrorCode::RateLimited),
        PublishResult::Refused(ErrorCode::Unavailable),
        PublishResult::Refused(ErrorCode::Internal),
    ];

    pub fn all() -> impl Iterator<Item = PublishResult> {
        PublishResult::ALL.into_iter()
    }

    /// Position in [`Self::all`]; `unknown_channel` counts as `bad_request` (never reached:
    /// a publish on an unknown channel has no channel to count on).
    pub fn index(self) -> usize {
        PublishResult::ALL
            .iter()
            .position(|r| *r == self)
            .unwrap_or(1)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            PublishResult::Ok => "ok",
            PublishResult::Refused(code) => code.as_str(),
        }
    }
}

/// Error codes sent to clients (label `code`).
pub(super) const ERROR_CODES: [ErrorCode; 9] = [
    ErrorCode::BadRequest,
    ErrorCode::UnknownChannel,
    ErrorCode::Forbidden,
    ErrorCode::Unauthorized,
    ErrorCode::TooLarge,
    ErrorCode::RateLimited,
    ErrorCode::Invalid,
    ErrorCode::Unavailable,
    ErrorCode::Internal,
];
