//! Logs of the real binary: `--log-format json` gives one JSON object per line, sessions log one
//! line when they open and one when they close (with the reason), nothing is coloured when
//! stderr is not a terminal. Needs no broker: a config without channels starts no Kafka client.

mod common;

use std::time::Duration;

use common::BridgeProcess;
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_have_one_line_per_session_open_and_close() {
    let mut process = BridgeProcess::spawn(
        "instance_id: logs\nkafka: {bootstrap_servers: 'localhost:9'}\nserver: {listen: '127.0.0.1:0'}\nmetrics: {listen: '127.0.0.1:0'}\nauth: {mode: none}\n",
    );
    let json = |line: &str| -> Value {
        assert!(!line.contains('\u{1b}'), "no colour codes: {line:?}");
        serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
    };
    // Every line up to `bridge started` is JSON too.
    for line in &process.log_lines()[..=process.started_line] {
        json(line);
    }
    let started = &process.started;
    assert_eq!(started["level"], "INFO");
    let (ws, _) = tokio::time::timeout(
        Duration::from_secs(10),
        tokio_tungstenite::connect_async(&process.ws_url),
    )
    .await
    .unwrap()
    .unwrap();
    drop(ws);
    let mut cursor = process.started_line + 1;
    let opened = json(&process.next_log_line(&mut cursor).await);
    assert_eq!(opened["message"], "session opened", "{opened}");
    let session = opened["session"].as_str().unwrap().to_owned();
    let closed = json(&process.next_log_line(&mut cursor).await);
    assert_eq!(closed["message"], "session closed", "{closed}");
    assert_eq!(closed["session"], session.as_str());
    assert_eq!(closed["reason"], "client_closed");
    process.terminate(common::DEADLINE);
}
