//! Server-Sent Events on `server.sse_path`: `GET /sse?channel=C[&key=K][&history=N]` opens a
//! stream with one subscription. It is a [`Session`] like a WebSocket's (same permissions,
//! replay, hub, outbox and slow-client policy); only the transport differs: each queued item
//! becomes an event named after its JSON frame's `type` with that frame as its data (a record's
//! `data:` lines are made once per record and shared), and `message` events carry an id listing
//! the positions seen so far (`partition:offset,…`), which `EventSource` sends back as
//! `Last-Event-ID` on reconnect: the stream resumes after them, without a gap or a duplicate.
//!
//! Refusals (bad query, token, permission) are plain HTTP answers before the stream starts, so
//! `EventSource` stops instead of retrying. A closed session ends the stream after a comment
//! naming the reason; `EventSource` then reconnects and resumes.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use warp::http::header::{self, HeaderMap, HeaderValue};
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

use super::request::{form_urlencoded_value, origin_allowed, parse_positions};
use super::transport::Transport;
use super::wire::record_latencies;
use super::{json_error, WsContext};
use crate::hub::Want;
use crate::metrics::{CloseReason, RejectReason, Transport as Counted};
use crate::outbox::{Close, Outbox, Outgoing};
use crate::protocol::{sse_lines, Answer, ErrorCode, Item};
use crate::session::{self, pending_read, sleep_until_option, user_label, Session, Subscribe};

/// A comment is sent when nothing else was for this long, so that proxies keep the stream
/// open and a vanished client is noticed.
const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// Events handed to the HTTP connection ahead of what it has written: small, so that a full
/// channel means the client is not taking bytes (the outbox then judges it slow).
const EVENTS_AHEAD: usize = 8;
/// Most frames taken from the outbox at a time.
const BATCH: usize = 64;
pub(super) fn route(
    ctx: Arc<WsContext>,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    super::get_at(ctx.sse_path.clone())
        .and(warp::any().map(move || ctx.clone()))
        .then(open)
}

/// What a stream asks for, from its query string and `Last-Event-ID`.
#[derive(Debug, PartialEq)]
struct Request {
    channel: String,
    key: Option<String>,
    want: Want,
}

fn parse_request(query: &str, last_event_id: Option<&str>) -> Result<Request, String> {
    let channel = form_urlencoded_value(query, "channel")
        .filter(|c| !c.is_empty())
        .ok_or("query parameter `channel` is required")?;
    let key = form_urlencoded_value(query, "key");
    let history = form_urlencoded_value(query, "history")
        .map(|n| {
            n.parse::<usize>()
                .map_err(|_| format!("`history`: expected a number of records, found \"{n}\""))
        })
        .transpose()?;
    let resume = last_event_id
        .map(str::trim)
        .filter(|id| !id.is_empty())
        .map(parse_event_id)
        .transpose()?;
    let want = match (resume, history) {
        (Some(seen), _) => Want::Resume(seen),
        (None, Some(count)) => Want::Newest(count),
        (None, None) => Want::Live,
    };
    Ok(Request { channel, key, want })
}

/// `Last-Event-ID` → positions seen.
fn parse_event_id(id: &str) -> Result<BTreeMap<i32, i64>, String> {
    parse_positions(id).map_err(|e| format!("Last-Event-ID: {e}"))
}

fn event_id(seen: &BTreeMap<i32, i64>) -> String {
    let mut id = String::with_capacity(seen.len() * 8);
    for (i, (partition, offset)) in seen.iter().enumerate() {
        if i > 0 {
            id.push(',');
        }
        id.push_str(&format!("{partition}:{offset}"));
    }
    id
}

async fn open(headers: HeaderMap, query: String, ctx: Arc<WsContext>) -> Response {
    let refuse = |status: StatusCode, reason: RejectReason, message: &str| {
        ctx.core.metrics.rejected(reason);
        json_error(status, message)
    };
    if ctx.accepting.is_cancelled() {
        return refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            RejectReason::ShuttingDown,
            "the bridge is shutting down; reconnect to another instance",
        );
    }
    let origin = headers.get(header::ORIGIN).cloned();
    if let Some(origin) = &origin {
        if !origin_allowed(&ctx.allowed_origins, origin) {
            return refuse(
                StatusCode::FORBIDDEN,
                RejectReason::ForbiddenOrigin,
                "origin not allowed (server.allowed_origins)",
            );
        }
    }
    let last_event_id = headers.get("last-event-id").and_then(|v| v.to_str().ok());
    let request = match parse_request(&query, last_event_id) {
        Ok(request) => request,
        Err(message) => return refuse(StatusCode::BAD_REQUEST, RejectReason::BadRequest, &message),
    };
    // Checked like a WebSocket's, though a stream is never counted.
    if let Err((status, reason, message)) = ctx.session_group(&query) {
        return refuse(status, reason, &message);
    }
    let (identity, slot) = match ctx.admit(&headers, &query).await {
        Ok(admitted) => admitted,
        Err((status, reason, message)) => return refuse(status, reason, &message),
    };
    let handle = ctx.new_handle(&identity);
    let mut session = Session::new(ctx.core.clone(), handle.clone(), identity);
    let seen = match &request.want {
        Want::Resume(seen) => seen.clone(),
        _ => BTreeMap::new(),
    };
    let channel = request.channel.clone();
    let subscribe = Subscribe {
        id: None,
        channel: request.channel,
        key: request.key,
        want: request.want,
        filter: None,
        max_rate: None,
    };
    if let Err(refusal) = session.request(session::Request::Subscribe(subscribe)) {
        let status = match refusal.code {
            ErrorCode::Forbidden => StatusCode::FORBIDDEN,
            ErrorCode::UnknownChannel => StatusCode::NOT_FOUND,
            _ => StatusCode::BAD_REQUEST,
        };
        ctx.core
            .metrics
            .client_errors
            .with_label_values(&[refusal.code.as_str()])
            .inc();
        return json_error(status, &refusal.message);
    }
    let finished = CancellationToken::new();
    ctx.core
        .sessions
        .insert_uncounted(&handle, finished.clone());
    session.opened(Counted::Sse);
    ctx.core.metrics.connections_accepted.inc();
    tracing::info!(session = %handle.public_id, user = user_label(&session.identity), channel = %channel, "sse stream opened");
    let (events, receiver) = mpsc::channel(EVENTS_AHEAD);
    ctx.session_tasks.spawn(async move {
        let _finished = finished.drop_guard();
        let mut writer = Writer {
            events,
            ids: Ids { seen, replay: None },
        };
        let reason = writer.serve(&mut session).await;
        session.finish(reason);
        drop(slot);
    });
    let mut response = warp::reply::stream(Events(receiver)).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    // Proxies (nginx) buffer responses unless told not to.
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    if let Some(origin) = origin {
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        headers.insert(header::VARY, HeaderValue::from_static("origin"));
    }
    response
}

/// The events of a stream, as the HTTP connection takes them (each event one chunk).
struct Events(mpsc::Receiver<Bytes>);

impl futures_util::Stream for Events {
    type Item = Result<Bytes, std::convert::Infallible>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Self::Item>> {
        self.0.poll_recv(cx).map(|event| event.map(Ok))
    }
}

/// The writer's side of a stream.
struct Writer {
    events: mpsc::Sender<Bytes>,
    ids: Ids,
}

/// The ids of a stream's `message` events.
struct Ids {
    /// Last offset seen per partition: the id of the latest `message` event.
    seen: BTreeMap<i32, i64>,
    /// While the replay announced by `subscribed` is written: the records left, and the
    /// positions live delivery continues from (counted as seen once the replay is out).
    replay: Option<(usize, BTreeMap<i32, i64>)>,
}

/// The stream ended: the reason it counts as.
struct Ended(CloseReason);

/// A comment line as an event (keep-alives, the reason a stream ends).
fn comment(text: &str) -> Bytes {
    Bytes::from(format!(":{text}\n\n"))
}

impl Writer {
    async fn serve(&mut self, session: &mut Session) -> CloseReason {
        let handle = session.handle.clone();
        let outbox = &handle.outbox;
        let mut batch: Vec<Outgoing> = Vec::with_capacity(16);
        let mut events: Vec<Bytes> = Vec::with_capacity(16);
        let expiry = session.clock.expiry;
        let mut keep_alive =
            tokio::time::interval_at(tokio::time::Instant::now() + KEEP_ALIVE, KEEP_ALIVE);
        loop {
            tokio::select! {
                biased;
                (taken, close) = outbox.next_batch(std::mem::take(&mut batch), BATCH) => {
                    batch = taken;
                    events.clear();
                    self.ids.encode(&batch, &mut events);
                    let mut bytes = 0;
                    for event in events.drain(..) {
                        bytes += event.len();
                        session.ctx.metrics.socket_writes.inc();
                        if let Err(Ended(reason)) = self.send(event, outbox).await {
                            return reason;
                        }
                    }
                    if !batch.is_empty() {
                        keep_alive.reset();
                        session.ctx.metrics.bytes_sent.inc_by(bytes as u64);
                        record_latencies(&mut batch, &session.ctx.hub);
                    }
                    if let Some(close) = close {
                        let _ = self.events.try_send(comment(&format!(" closed: {} ({})", close.reason(), close.code())));
                        return close.counted_as();
                    }
                }
                read = pending_read(&mut session.pending), if session.pending.is_some() => {
                    session.on_fetched(read);
                }
                _ = keep_alive.tick() => {
                    if let Err(Ended(reason)) = self.send(comment(""), outbox).await {
                        return reason;
                    }
                }
                _ = self.events.closed() => return CloseReason::ClientClosed,
                _ = sleep_until_option(expiry), if expiry.is_some() && outbox.closing().is_none() => {
                    outbox.close(Close::TokenExpired);
                }
            }
        }
    }

    /// Hands an event to the connection; while the connection does not take it, the outbox
    /// knows the client is not reading (as a WebSocket's full socket buffer).
    async fn send(&self, event: Bytes, outbox: &Outbox) -> Result<(), Ended> {
        let event = match self.events.try_send(event) {
            Ok(()) => return Ok(()),
            Err(mpsc::error::TrySendError::Closed(_)) => {
                return Err(Ended(CloseReason::ClientClosed))
            }
            Err(mpsc::error::TrySendError::Full(event)) => event,
        };
        outbox.set_socket_blocked(true);
        let result = tokio::select! {
            sent = self.events.send(event) => sent.map_err(|_| Ended(CloseReason::ClientClosed)),
            close = outbox.aborted() => Err(Ended(close.counted_as())),
        };
        outbox.set_socket_blocked(false);
        result
    }
}

impl Transport for Ids {
    type Wire = Bytes;

    fn encode(&mut self, batch: &[Outgoing], out: &mut Vec<Bytes>) -> bool {
        out.extend(batch.iter().map(|o| self.event(&o.item)));
        false
    }
}

impl Ids {
    /// The event of a queued item: named after its JSON frame's `type`, its data that frame; a
    /// `message` carries the positions seen so far as its id.
    fn event(&mut self, item: &Item) -> Bytes {
        let mut advanced = false;
        let (name, data) = match item {
            Item::Record(record) | Item::Conflated(record, _) => {
                let last = self.seen.entry(record.partition).or_insert(record.offset);
                *last = (*last).max(record.offset);
                advanced = true;
                if let Some((left, positions)) = &mut self.replay {
                    *left -= 1;
                    if *left == 0 {
                        merge(&mut self.seen, positions);
                        self.replay = None;
                    }
                }
                let data = match item {
                    Item::Conflated(record, skipped) => {
                        sse_lines(record.json_conflated(*skipped).as_str())
                    }
                    _ => record.sse_data().clone(),
                };
                ("message", data)
            }
            Item::Answer(answer) => {
                if let Answer::Subscribed(subscribed) = &**answer {
                    match subscribed.replayed {
                        0 => advanced = merge(&mut self.seen, &subscribed.positions),
                        left => self.replay = Some((left, subscribed.positions.clone())),
                    }
                    // Even with nothing seen yet, an id on `subscribed` keeps a previous one
                    // from being sent back after a resume that found nothing.
                    advanced |= !self.seen.is_empty();
                }
                let frame = crate::protocol::answer(answer);
                (answer_name(answer), sse_lines(frame.as_str()))
            }
            Item::Native(frame) => ("message", sse_lines(frame.as_str())),
        };
        let id = advanced.then(|| event_id(&self.seen));
        let mut event = Vec::with_capacity(
            16 + name.len() + data.len() + id.as_ref().map_or(0, |id| id.len() + 4),
        );
        event.extend_from_slice(b"event:");
        event.extend_from_slice(name.as_bytes());
        event.push(b'\n');
        event.extend_from_slice(&data);
        if let Some(id) = id {
            event.extend_from_slice(b"id:");
            event.extend_from_slice(id.as_bytes());
            event.push(b'\n');
        }
        event.push(b'\n');
        event.into()
    }
}

/// The `type` of an answer's JSON frame, which names its event.
fn answer_name(answer: &Answer) -> &'static str {
    match answer {
        Answer::Welcome { .. } => "welcome",
        Answer::Error { .. } => "error",
        Answer::Pong { .. } => "pong",
        Answer::Ack { .. } => "ack",
        Answer::Subscribed(_) => "subscribed",
        Answer::Unsubscribed(_) => "unsubscribed",
        Answer::SessionReplaced => "session_replaced",
        Answer::Refreshed { .. } => "refreshed",
        Answer::TokenExpiring { .. } => "token_expiring",
    }
}

/// Counts `positions` as seen; whether anything changed.
fn merge(seen: &mut BTreeMap<i32, i64>, positions: &BTreeMap<i32, i64>) -> bool {
    let mut changed = false;
    for (&partition, &offset) in positions {
        let last = seen.entry(partition).or_insert(i64::MIN);
        if offset > *last {
            *last = offset;
            changed = true;
        }
    }
    changed
}

#[cfg(test)]
mod tests;
