//! Every way the bridge ends a session, as one closed set: the WebSocket close code sent, its
//! reason text, whether queued frames are written first, and the `reason` label it counts under.

use crate::metrics::CloseReason;

/// How a session's connection ends (protocol v1 close codes; docs/protocol.md lists them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Close {
    /// 1000 after no answer to pings within `server.idle_timeout_ms`.
    IdleTimeout,
    /// 1000: the session's task is ending (its connection failed or closed); records stop
    /// queueing. Never sent as such: the connection is already going.
    Stopped,
    /// 1001: the bridge is shutting down; queued frames are written first.
    Shutdown,
    /// 1002: the client broke the WebSocket protocol.
    ProtocolError,
    /// 1007: a text frame that is not UTF-8.
    InvalidUtf8,
    /// 1009: a frame over `server.max_frame_bytes`.
    FrameTooLarge,
    /// 4000: a newer session of the same user replaced it (`auth.max_sessions_per_user`);
    /// queued frames, `session_replaced` last, are written first.
    Replaced,
    /// 4001: the session did not take its records in time (`on_slow_client: disconnect`).
    SlowClient,
    /// 4002: the session's token expired.
    TokenExpired,
    /// 1002 after a STOMP ERROR frame (STOMP closes the connection after every ERROR); queued
    /// frames, the ERROR last, are written first.
    StompError,
    /// 1000 after a STOMP DISCONNECT; queued frames, its RECEIPT last, are written first.
    StompDisconnect,
}

impl Close {
    pub fn code(self) -> u16 {
        match self {
            Close::IdleTimeout | Close::Stopped => 1000,
            Close::Shutdown => 1001,
            Close::ProtocolError => 1002,
            Close::InvalidUtf8 => 1007,
            Close::FrameTooLarge => 1009,
            Close::Replaced => 4000,
            Close::SlowClient => 4001,
            Close::TokenExpired => 4002,
            Close::StompError => 1002,
            Close::StompDisconnect => 1000,
        }
    }

    /// The close frame's reason text.
    pub fn reason(self) -> &'static str {
        match self {
            Close::IdleTimeout => "idle timeout: no answer to pings",
            Close::Stopped => "closed",
            Close::Shutdown => "server shutting down",
            Close::ProtocolError => "protocol error",
            Close::InvalidUtf8 => "text frame is not valid UTF-8",
            Close::FrameTooLarge => "frame too large",
            Close::Replaced => "replaced by a newer session",
            Close::SlowClient => "too slow: send queue overflow",
            Close::TokenExpired => "token expired",
            Close::StompError => "closed after a STOMP ERROR frame",
            Close::StompDisconnect => "disconnected",
        }
    }

    /// Write what is queued before the close frame (graceful), or discard it.
    pub fn drain(self) -> bool {
        matches!(
            self,
            Close::Shutdown | Close::Replaced | Close::StompError | Close::StompDisconnect
        )
    }

    /// What the session's end counts as in `sessions_closed_total`.
    pub fn counted_as(self) -> CloseReason {
        match self {
            Close::IdleTimeout => CloseReason::IdleTimeout,
            Close::Stopped => CloseReason::Error,
            Close::Shutdown => CloseReason::Shutdown,
            Close::ProtocolError | Close::InvalidUtf8 => CloseReason::Policy,
            Close::FrameTooLarge => CloseReason::FrameTooLarge,
            Close::Replaced => CloseReason::Replaced,
            Close::SlowClient => CloseReason::SlowClient,
            Close::TokenExpired => CloseReason::TokenExpired,
            Close::StompError => CloseReason::Policy,
            Close::StompDisconnect => CloseReason::ClientClosed,
        }
    }
}
