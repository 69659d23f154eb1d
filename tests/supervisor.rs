//! The supervisor (docs/operations.md, "Failures"): a part that cannot recover on its own stops
//! the whole bridge in order, and the process exits 1 for its orchestrator to restart it.

mod common;

use std::time::Duration;

use common::{create_topic, BridgeProcess, Client, Event, DEADLINE};

/// A fatal librdkafka error from a real broker: a second consumer joins the group with the same
/// static `group.instance.id` and the broker fences the first (`FENCED_INSTANCE_ID`, fatal to
/// librdkafka under the classic protocol). The fenced instance can no longer consume: it closes
/// its sessions with 1001 (the ordered shutdown) and exits 1, and the newer instance serves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fatal_kafka_error_shuts_the_bridge_down_in_order_and_exits_1() {
    if !common::apache_kafka("a_fatal_kafka_error_shuts_the_bridge_down_in_order_and_exits_1") {
        return;
    }
    let topic = create_topic("fenced", 1).await;
    let id = format!("fenced-{}", common::random_suffix());
    let text = format!(
        "instance_id: {id}\n\
         kafka:\n  bootstrap_servers: '{bootstrap}'\n  consumer_properties: {{group.instance.id: {id}}}\n\
         metrics: {{listen: '127.0.0.1:0'}}\nserver: {{listen: '127.0.0.1:0'}}\nauth: {{mode: none}}\n\
         channels:\n  - {{name: c, topic: {topic}, subscribe: {{allow: anonymous}}}}\n",
        bootstrap = common::bootstrap(),
    );
    let mut first = BridgeProcess::spawn(&text);
    first.wait_ready().await;
    let mut client = Client::connect(&first.ws_url).await;
    client.subscribe("c", None).await;

    let second = BridgeProcess::spawn(&text);
    let code = tokio::task::block_in_place(|| first.wait_exit(Duration::from_secs(60)));
    let logs = first.logs();
    assert_eq!(
        code,
        Some(1),
        "exit code of the fenced instance; logs:\n{logs}"
    );
    assert!(
        logs.contains("a part of the bridge failed") && logs.contains("fatal kafka client error"),
        "{logs}"
    );
    assert!(logs.contains("shutdown complete"), "{logs}");
    match client.next_event(DEADLINE).await {
        Event::Closed(Some(frame)) => assert_eq!(u16::from(frame.code), 1001, "{frame:?}"),
        other => panic!("expected the session closed with 1001, got {other:?}"),
    }
    // The instance that fenced it took over the group.
    second.wait_ready().await;
    let mut client = Client::connect(&second.ws_url).await;
    client.subscribe("c", None).await;
    common::TestProducer::new()
        .send(&topic, None, None, b"{\"n\": 1}", &[])
        .await;
    assert_eq!(client.expect("message").await["data"]["n"], 1);
}
