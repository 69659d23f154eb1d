//! The JSON protocol over a WebSocket: client text frames decoded into the session's requests
//! (every refusal answered with an `error` frame, the session carrying on), and the queue
//! written as JSON frames — records as their shared `message` frame, encoded once per record.

use super::transport::{Incoming, SocketTransport, Transport};
use crate::hub::Want;
use crate::outbox::Outgoing;
use crate::protocol::{self, Answer, ClientFrame, ErrorCode, Frame, Item, Refusal};
use crate::session::{Request, Session, Subscribe};

/// The JSON protocol's side of a session.
pub(super) struct Json;

impl Transport for Json {
    type Wire = Frame;

    fn encode(&mut self, batch: &[Outgoing], out: &mut Vec<Frame>) -> bool {
        out.extend(batch.iter().map(|o| o.item.json()));
        false
    }
}

impl SocketTransport for Json {
    const WRITES_ITEMS: bool = true;

    fn prepare(&mut self, batch: &mut [Outgoing]) {
        for outgoing in batch {
            if outgoing.item.as_frame().is_none() {
                outgoing.item = Item::Native(outgoing.item.json());
            }
        }
    }

    fn greeting(&self, session: &Session) -> Item {
        Answer::Welcome {
            session: session.handle.public_id.clone(),
            user: session.identity.user.clone(),
        }
        .into()
    }

    fn on_message(&mut self, session: &mut Session, message: Incoming<'_>) {
        let Incoming::Text(text) = message else {
            return session.refuse(
                &None,
                Refusal::new(
                    ErrorCode::BadRequest,
                    "binary frames are not supported: send JSON text frames",
                ),
            );
        };
        let frame = match protocol::decode_client(text) {
            Ok(frame) => frame,
            Err(error) => {
                return session.refuse(
                    &error.id,
                    Refusal::new(ErrorCode::BadRequest, error.message),
                )
            }
        };
        let (id, request) = match frame {
            ClientFrame::Refresh { id, token } => (None, Request::Refresh { id, token }),
            ClientFrame::Ping { id } => (None, Request::Ping { id }),
            ClientFrame::Subscribe {
                id,
                channel,
                key,
                resume,
                history,
                filter,
                max_rate,
            } => {
                let want = match (resume, history) {
                    (Some(seen), _) => Want::Resume(seen),
                    (None, Some(count)) => Want::Newest(count),
                    (None, None) => Want::Live,
                };
                let subscribe = Subscribe {
                    id: id.clone(),
                    channel,
                    key,
                    want,
                    filter,
                    max_rate,
                };
                (Some(id), Request::Subscribe(subscribe))
            }
            ClientFrame::Unsubscribe { id, channel, key } => {
                let request = Request::Unsubscribe {
                    id: id.clone(),
                    channel,
                    key,
                };
                (Some(id), request)
            }
            ClientFrame::Publish {
                id,
                channel,
                data,
                headers,
            } => {
                let request = Request::Publish {
                    id,
                    channel: &channel,
                    data,
                    headers: &headers,
                };
                let _ = session.request(request);
                return;
            }
        };
        if let Err(refusal) = session.request(request) {
            session.refuse(&id.flatten(), refusal);
        }
    }
}
