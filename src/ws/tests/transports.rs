//! Each transport driven in process: client frames in through `on_message`, the session's
//! queue out through the transport's encoding, records handed to the hub as the consumer
//! would — the same shared record for every session and dialect.

use std::sync::Arc;

use super::context;
use crate::auth::Identity;
use crate::hub::Route;
use crate::metrics::Transport as Counted;
use crate::protocol::{Delivery, Frame, Item, Parts};
use crate::session::Session;
use crate::state::Held;
use crate::ws::json::Json;
use crate::ws::stomp::codec::StompFrame;
use crate::ws::stomp::dialect::Stomp;
use crate::ws::transport::{Incoming, SocketTransport, Transport};
use crate::ws::WsContext;

const CHANNELS: &str = "  - {name: feed, topic: t, subscribe: {allow: anonymous}}\n  - {name: notes, topic: n, format: text, subscribe: {allow: anonymous}}\n";

fn open(ctx: &Arc<WsContext>, counted: Counted) -> Session {
    let identity = Identity::anonymous();
    let handle = ctx.new_handle(&identity);
    let mut session = Session::new(ctx.core.clone(), handle, identity);
    session.opened(counted);
    session
}

/// What the transport writes for everything queued on the session now.
fn written<T: Transport<Wire = Frame>>(session: &Session, transport: &mut T) -> Vec<String> {
    let mut batch = Vec::new();
    session.handle.outbox.take(&mut batch, usize::MAX);
    let mut frames = Vec::new();
    transport.encode(&batch, &mut frames);
    frames.iter().map(|f| f.as_str().to_owned()).collect()
}

/// A record of `channel` at `offset`, handed to the hub as the consumer does; the record
/// every receiving session shares.
fn deliver(ctx: &WsContext, channel: &str, data: &str, offset: i64) -> Arc<Delivery> {
    let id = ctx.core.catalogue.channel_id(channel).expect("channel");
    let record = Arc::new(Delivery::new(Parts {
        channel: id,
        prefix: &ctx.core.catalogue.channel(id).prefix,
        key: Some("k1"),
        data,
        partition: 0,
        offset,
        timestamp: Some(1_000),
        headers: &[("h", Some(b"v"))],
        schema_id: None,
        value: None,
    }));
    let held = Held {
        record: record.clone(),
        partition: 0,
        offset,
        timestamp: 1_000,
        scope: None,
    };
    ctx.core
        .hub
        .deliver(id, Route::Key(Some("k1")), &held, false)
        .wait_for_writers();
    record
}

#[tokio::test]
async fn the_json_protocol_answers_each_request_and_carries_on() {
    let ctx = context(CHANNELS);
    let mut session = open(&ctx, Counted::WebSocket);
    let mut json = Json;
    session.answer_item(json.greeting(&session));
    for text in [
        r#"{"type":"ping","id":1}"#,
        r#"{"type":"subscribe","id":"s","channel":"feed"}"#,
        r#"{"type":"subscribe","id":"x","channel":"nope"}"#,
        "not json",
    ] {
        json.on_message(&mut session, Incoming::Text(text));
    }
    json.on_message(&mut session, Incoming::Binary(b"\x00"));
    let answers = written(&session, &mut json);
    let public_id = &session.handle.public_id;
    assert_eq!(
        answers[..3],
        [
            format!(r#"{{"type":"welcome","session":"{public_id}","user":null,"protocol":1}}"#),
            r#"{"type":"pong","id":1}"#.to_owned(),
            r#"{"type":"subscribed","id":"s","channel":"feed","snapshot":null,"replayed":0,"gap":false,"positions":{}}"#.to_owned(),
        ]
    );
    assert!(
        answers[3].starts_with(r#"{"type":"error","id":"x","code":"unknown_channel""#),
        "{}",
        answers[3]
    );
    assert!(
        answers[4].starts_with(r#"{"type":"error","code":"bad_request""#),
        "{}",
        answers[4]
    );
    assert!(
        answers[5].contains("binary frames are not supported"),
        "{}",
        answers[5]
    );
    assert_eq!(answers.len(), 6);
    // A record: its shared `message` frame, as it is.
    let record = deliver(&ctx, "feed", r#"{"a":1}"#, 7);
    let sent = written(&session, &mut json);
    assert_eq!(
        sent,
        [
            r#"{"type":"message","channel":"feed","key":"k1","data":{"a":1},"partition":0,"offset":7,"timestamp":1000,"headers":{"h":"v"}}"#
        ]
    );
    assert_eq!(record.json().as_str(), sent[0]);
    json.on_message(
        &mut session,
        Incoming::Text(r#"{"type":"unsubscribe","id":"u","channel":"feed"}"#),
    );
    deliver(&ctx, "feed", "2", 8);
    assert_eq!(
        written(&session, &mut json),
        [r#"{"type":"unsubscribed","id":"u","channel":"feed"}"#]
    );
    session.finish(crate::metrics::CloseReason::ClientClosed);
}

fn stomp(ctx: &WsContext) -> Stomp {
    let connect = StompFrame::new("CONNECT").with("accept-version", "1.2");
    crate::ws::stomp::negotiate(&connect, ctx).expect("negotiated")
}

fn frame(command: &str, headers: &[(&str, &str)]) -> String {
    let mut frame = StompFrame::new(command);
    for (name, value) in headers {
        frame = frame.with(name, *value);
    }
    String::from_utf8(frame.encode()).unwrap()
}

#[tokio::test]
async fn stomp_wraps_the_shared_record_in_this_sessions_headers() {
    let ctx = context(CHANNELS);
    let mut session = open(&ctx, Counted::Stomp);
    let mut stomp = stomp(&ctx);
    let subscribe = |id: &str, destination: &str, receipt: &str| {
        frame(
            "SUBSCRIBE",
            &[
                ("id", id),
                ("destination", destination),
                ("receipt", receipt),
            ],
        )
    };
    for text in [
        subscribe("sub:1", "/topic/feed", "r1"),
        subscribe("2", "/topic/notes", "r2"),
    ] {
        stomp.on_message(&mut session, Incoming::Text(&text));
    }
    assert_eq!(
        written(&session, &mut stomp),
        [
            "RECEIPT\nreceipt-id:r1\n\n\0",
            "RECEIPT\nreceipt-id:r2\n\n\0"
        ]
    );
    deliver(&ctx, "feed", r#"{"a":"b:c"}"#, 3);
    assert_eq!(
        written(&session, &mut stomp),
        ["MESSAGE\nsubscription:sub\\c1\nmessage-id:feed-0-3\ndestination:/topic/feed\ncontent-type:application/json\nkafka-partition:0\nkafka-offset:3\nkafka-key:k1\ncontent-length:11\n\n{\"a\":\"b:c\"}\0"]
    );
    // A text channel's value goes as its text.
    deliver(&ctx, "notes", r#""line\none""#, 4);
    assert_eq!(
        written(&session, &mut stomp),
        ["MESSAGE\nsubscription:2\nmessage-id:notes-0-4\ndestination:/topic/notes\ncontent-type:text/plain;charset=utf-8\nkafka-partition:0\nkafka-offset:4\nkafka-key:k1\ncontent-length:8\n\nline\none\0"]
    );
    // A refused SUBSCRIBE is an ERROR naming its receipt, and the session reads no more.
    stomp.on_message(
        &mut session,
        Incoming::Text(&subscribe("3", "/topic/nope", "r3")),
    );
    let error = written(&session, &mut stomp);
    assert!(error[0].starts_with("ERROR\n"), "{error:?}");
    assert!(error[0].contains("receipt-id:r3\n"), "{error:?}");
    assert!(!SocketTransport::reading(&stomp));
    session.finish(crate::metrics::CloseReason::ClientClosed);
}

#[tokio::test]
async fn every_session_and_dialect_shares_one_record() {
    let ctx = context(CHANNELS);
    let mut a = open(&ctx, Counted::WebSocket);
    let mut b = open(&ctx, Counted::Stomp);
    let mut stomp = stomp(&ctx);
    Json.on_message(
        &mut a,
        Incoming::Text(r#"{"type":"subscribe","channel":"feed"}"#),
    );
    stomp.on_message(
        &mut b,
        Incoming::Text(&frame(
            "SUBSCRIBE",
            &[("id", "1"), ("destination", "/topic/feed")],
        )),
    );
    let (mut queued_a, mut queued_b) = (Vec::new(), Vec::new());
    a.handle.outbox.take(&mut queued_a, usize::MAX);
    b.handle.outbox.take(&mut queued_b, usize::MAX);
    let record = deliver(&ctx, "feed", "1", 0);
    queued_a.clear();
    queued_b.clear();
    a.handle.outbox.take(&mut queued_a, usize::MAX);
    b.handle.outbox.take(&mut queued_b, usize::MAX);
    for queued in [&queued_a, &queued_b] {
        match &queued[..] {
            [one] => match &one.item {
                Item::Record(shared) => assert!(Arc::ptr_eq(shared, &record)),
                other => panic!("{other:?}"),
            },
            other => panic!("{} queued", other.len()),
        }
    }
    a.finish(crate::metrics::CloseReason::ClientClosed);
    b.finish(crate::metrics::CloseReason::ClientClosed);
}
