//! The fast tier: sessions and their transports in process, without a broker — a context built
//! from a config text, whose Kafka reads fail and whose publishes have no producer; records
//! are handed to the hub as the consumer would. `transports.rs` drives each dialect through
//! its client frames and its encoding of the queue.

use std::sync::Arc;

use super::WsContext;
use crate::auth::{Authenticator, Identity};
use crate::catalogue::Catalogue;
use crate::hub::{Hub, Need, Want};
use crate::inbound::{HttpPublish, Inbound};
use crate::metrics::{CloseReason, Metrics, Transport};
use crate::outbound::{RangeRead, ReadFuture, Replayer};
use crate::session::{Request, Session, Subscribe};
use crate::sessions::Sessions;

mod transports;

/// A reader for contexts that never replay from Kafka.
struct NoKafka;

impl RangeRead for NoKafka {
    fn read(&self, _topic: &str, _need: Need, _limit: usize) -> ReadFuture {
        Box::pin(async { Err("no kafka in this test".to_owned()) })
    }
}

/// A client listener's context for `channels` (YAML of the `channels:` list), `auth.mode: none`.
pub(super) fn context(channels: &str) -> Arc<WsContext> {
    let text = format!(
        "instance_id: t\nkafka: {{bootstrap_servers: 'k:9092'}}\nauth: {{mode: none}}\nchannels:\n{channels}"
    );
    let plan = crate::config::load_str(&text, "test.yaml", std::path::Path::new("."), |_| None)
        .expect("valid test config");
    let names: Vec<&str> = plan
        .config
        .channels
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    let topics: Vec<&str> = plan
        .config
        .channels
        .iter()
        .map(|c| c.topic.as_str())
        .collect();
    let metrics = Arc::new(Metrics::new(&names, &topics, &[]));
    let catalogue = Arc::new(Catalogue::from_plan(&plan, &metrics).expect("catalogue"));
    let hub = Arc::new(Hub::new(catalogue.clone()));
    let core = Arc::new(crate::session::Context {
        catalogue: catalogue.clone(),
        hub,
        replayer: Arc::new(Replayer::new(catalogue.clone(), Arc::new(NoKafka), None)),
        inbound: Arc::new(Inbound::new(catalogue.clone(), None, None)),
        metrics,
        auth: Authenticator::from_plan(&plan).expect("auth"),
        limits: crate::session::Limits::from_plan(&plan),
        sessions: Arc::new(Sessions::default()),
        publishes: tokio_util::task::TaskTracker::new(),
    });
    Arc::new(WsContext::new(
        &plan,
        core,
        Arc::new(HttpPublish::new(catalogue, &[], None, None)),
    ))
}

fn gauge(ctx: &WsContext, transport: Transport) -> i64 {
    ctx.core
        .metrics
        .sessions_open
        .with_label_values(&[transport.as_str()])
        .get()
}

#[tokio::test]
async fn a_session_whose_task_panics_is_released_and_counted() {
    let ctx = context("  - {name: feed, topic: t, subscribe: {allow: anonymous}}\n");
    let channel = ctx.core.catalogue.channel_id("feed").expect("channel");
    for round in 1..=3u64 {
        let identity = Identity::anonymous();
        let handle = ctx.new_handle(&identity);
        ctx.core
            .sessions
            .insert_uncounted(&handle, tokio_util::sync::CancellationToken::new());
        let mut session = Session::new(ctx.core.clone(), handle, identity);
        session.opened(Transport::WebSocket);
        session
            .request(Request::Subscribe(Subscribe {
                id: None,
                channel: "feed".to_owned(),
                key: None,
                want: Want::Live,
                filter: None,
                max_rate: None,
            }))
            .expect("subscribed");
        assert_eq!(gauge(&ctx, Transport::WebSocket), 1);
        assert_eq!(ctx.core.hub.subscriber_count(channel), 1);
        let task = tokio::spawn(async move {
            let _session = session;
            panic!("a bug in a session");
        });
        assert!(task.await.unwrap_err().is_panic());
        assert_eq!(gauge(&ctx, Transport::WebSocket), 0, "round {round}");
        assert_eq!(ctx.core.hub.subscriber_count(channel), 0);
        assert_eq!(ctx.core.sessions.len(), 0);
        let panics = ctx
            .core
            .metrics
            .sessions_closed
            .with_label_values(&[Transport::WebSocket.as_str(), CloseReason::Panic.as_str()])
            .get();
        assert_eq!(panics, round);
    }
}

#[tokio::test]
async fn a_finished_session_is_released_once() {
    let ctx = context("  - {name: feed, topic: t, subscribe: {allow: anonymous}}\n");
    let identity = Identity::anonymous();
    let handle = ctx.new_handle(&identity);
    let mut session = Session::new(ctx.core.clone(), handle, identity);
    session.opened(Transport::Sse);
    session.finish(CloseReason::ClientClosed);
    drop(session);
    assert_eq!(gauge(&ctx, Transport::Sse), 0);
    let closed = |reason: CloseReason| {
        ctx.core
            .metrics
            .sessions_closed
            .with_label_values(&[Transport::Sse.as_str(), reason.as_str()])
            .get()
    };
    assert_eq!(
        (
            closed(CloseReason::ClientClosed),
            closed(CloseReason::Error)
        ),
        (1, 0)
    );
    // A session never counted open (refused before it started) is not counted closed.
    let identity = Identity::anonymous();
    drop(Session::new(
        ctx.core.clone(),
        ctx.new_handle(&identity),
        identity,
    ));
    assert_eq!(gauge(&ctx, Transport::Sse), 0);
}
