//! What a session's queue holds: records ([`Delivery`], shared) and answers to the client
//! ([`Answer`], typed). Each transport encodes them in its own dialect when it writes them —
//! the JSON protocol with [`super::answer`] and [`Delivery::json`], STOMP and SSE their own
//! way — so nothing is encoded for one dialect and read back for another.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::{Delivery, Frame, Refusal, RequestId};

/// One entry of a session's queue.
#[derive(Debug, Clone)]
pub enum Item {
    /// A record, live or replayed.
    Record(Arc<Delivery>),
    /// A record sent in place of `.1` others that `max_rate` held back and replaced.
    Conflated(Arc<Delivery>, u64),
    /// An answer or notice to the client.
    Answer(Arc<Answer>),
    /// A frame a transport made in its own dialect (a STOMP CONNECTED or RECEIPT).
    Native(Frame),
}

impl Item {
    /// Bytes the item counts for in the session's queue bounds (records only count).
    pub fn size(&self) -> usize {
        match self {
            Item::Record(d) | Item::Conflated(d, _) => d.size(),
            Item::Answer(_) => 64,
            Item::Native(frame) => frame.wire().len(),
        }
    }
}

impl Item {
    /// The item as a frame of the JSON protocol: a record as its shared `message` frame (made
    /// by the first JSON session that sends it), an answer encoded for this session.
    pub fn json(&self) -> Frame {
        match self {
            Item::Record(record) => record.json().clone(),
            Item::Conflated(record, skipped) => record.json_conflated(*skipped),
            Item::Answer(answer) => super::answer(answer),
            Item::Native(frame) => frame.clone(),
        }
    }
}

impl Item {
    /// The item's frame when it is one already: a record's shared JSON frame (made on first
    /// use), a transport's own frame.
    pub fn as_frame(&self) -> Option<&Frame> {
        match self {
            Item::Record(record) => Some(record.json()),
            Item::Native(frame) => Some(frame),
            Item::Conflated(..) | Item::Answer(_) => None,
        }
    }
}

impl From<Frame> for Item {
    fn from(frame: Frame) -> Self {
        Item::Native(frame)
    }
}

impl From<Answer> for Item {
    fn from(answer: Answer) -> Self {
        Item::Answer(Arc::new(answer))
    }
}

/// Everything the bridge says to a client besides records, whatever its dialect.
#[derive(Debug)]
pub enum Answer {
    Welcome {
        session: String,
        user: Option<String>,
    },
    /// A request refused (or a publish Kafka refused).
    Error {
        id: RequestId,
        refusal: Refusal,
    },
    Pong {
        id: RequestId,
    },
    /// A publish written by Kafka (`offset` unknown with `acks: 0`).
    Ack {
        id: RequestId,
        topic: String,
        partition: i32,
        offset: Option<i64>,
    },
    Subscribed(Subscribed),
    Unsubscribed(Unsubscribed),
    /// The session is closed because a newer one of its user took its place.
    SessionReplaced,
    /// The session runs on a new token, valid until `expires_at` (ms since the epoch).
    Refreshed {
        id: RequestId,
        expires_at: Option<u64>,
    },
    /// The token runs out at `expires_at` (ms since the epoch): refresh before.
    TokenExpiring {
        expires_at: u64,
    },
}

/// A subscription confirmed: its snapshot, how many records its replay holds (they follow
/// it in the queue), whether part of what it asked is gone, and where live records continue.
#[derive(Debug)]
pub struct Subscribed {
    pub id: RequestId,
    pub channel: u32,
    pub name: String,
    pub key: Option<String>,
    pub snapshot: Option<Arc<Delivery>>,
    pub replayed: usize,
    pub gap: bool,
    pub positions: BTreeMap<i32, i64>,
}

/// A subscription ended: asked by the client, or by the server with a `reason`.
#[derive(Debug)]
pub struct Unsubscribed {
    pub id: RequestId,
    pub channel: u32,
    pub name: String,
    pub key: Option<String>,
    /// Why the server ended it (`forbidden` after a refresh); `None` when the client asked.
    pub reason: Option<&'static str>,
}
