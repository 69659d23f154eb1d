//! What a dialect of the client listener does, beside the transport-neutral [`Session`]: it
//! encodes what the session's outbox holds (shared records, typed answers) for its wire, and —
//! over a WebSocket — decodes client messages into the session's requests. The JSON protocol
//! (`json.rs`) and STOMP (`stomp/`) run over a WebSocket in `socket.rs`; Server-Sent Events
//! (`sse.rs`) write events to an HTTP response and read nothing.

use std::time::Duration;

use crate::outbox::Outgoing;
use crate::protocol::{Frame, Item};
use crate::session::Session;

/// Encoding a session's queue for one dialect's wire.
pub(super) trait Transport {
    /// What one encoded item is on this wire.
    type Wire;

    /// Encodes a batch taken from the outbox into `out`, in order (an item the dialect does not
    /// send is left out). Returns whether the session must close once they are written (a
    /// STOMP ERROR).
    fn encode(&mut self, batch: &[Outgoing], out: &mut Vec<Self::Wire>) -> bool;
}

/// A client message read from a WebSocket.
pub(super) enum Incoming<'a> {
    Text(&'a str),
    Binary(&'a [u8]),
}

/// A dialect spoken over a WebSocket (`socket.rs` runs it).
pub(super) trait SocketTransport: Transport<Wire = Frame> + Send {
    /// The queued items are written as they are, each its own frame (after
    /// [`SocketTransport::prepare`]): records as their shared frames, borrowed rather than
    /// encoded into a batch of their own (the JSON protocol).
    const WRITES_ITEMS: bool = false;

    /// With [`SocketTransport::WRITES_ITEMS`]: turns the items that are not a frame yet (answers)
    /// into frames, in place.
    fn prepare(&mut self, _batch: &mut [Outgoing]) {}

    /// The session's first frame (`welcome`, STOMP's CONNECTED).
    fn greeting(&self, session: &Session) -> Item;

    /// One client message: decoded into the session's requests; refusals answered.
    fn on_message(&mut self, session: &mut Session, message: Incoming<'_>);

    /// Whether the transport reads further client messages (STOMP stops after an ERROR or a
    /// DISCONNECT).
    fn reading(&self) -> bool {
        true
    }

    /// The interval of the transport's own heart-beats (STOMP), sent as an empty line.
    fn heart_beat(&self) -> Option<Duration> {
        None
    }

    /// Whether the transport waits for the session's publishes to be answered before it ends
    /// (STOMP's DISCONNECT), then calls [`SocketTransport::disconnected`].
    fn disconnecting(&self) -> bool {
        false
    }

    fn disconnected(&mut self, _session: &mut Session) {}
}
