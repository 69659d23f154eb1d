//! Logs of the real binary: `--log-format json` gives one JSON object per line, sessions log one
//! line when they open and one when they close (with the reason), nothing is coloured when
//! stderr is not a terminal. Needs no broker: a config without channels starts no Kafka client.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_have_one_line_per_session_open_and_close() {
    let dir = std::env::temp_dir().join(format!("kwb-logs-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("bridge.yaml");
    std::fs::write(
        &config,
        "instance_id: logs\nkafka: {bootstrap_servers: 'localhost:9'}\nserver: {listen: '127.0.0.1:0'}\nmetrics: {listen: '127.0.0.1:0'}\nauth: {mode: none}\n",
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_kafka-ws-bridge"))
        .args(["run", "--log-format", "json", "--config"])
        .arg(&config)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut next_json = move || -> Value {
        let line = lines.next().expect("a log line").unwrap();
        assert!(!line.contains('\u{1b}'), "no colour codes: {line:?}");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
    };
    let started = loop {
        let line = next_json();
        if line["message"] == "bridge started" {
            break line;
        }
    };
    assert_eq!(started["level"], "INFO");
    let url = started["ws"].as_str().unwrap().to_owned();
    let (ws, _) = tokio::time::timeout(
        Duration::from_secs(10),
        tokio_tungstenite::connect_async(&url),
    )
    .await
    .unwrap()
    .unwrap();
    drop(ws);
    let opened = next_json();
    assert_eq!(opened["message"], "session opened", "{opened}");
    let session = opened["session"].as_str().unwrap().to_owned();
    let closed = next_json();
    assert_eq!(closed["message"], "session closed", "{closed}");
    assert_eq!(closed["session"], session.as_str());
    assert_eq!(closed["reason"], "client_closed");
    terminate(&mut child);
}

fn terminate(child: &mut std::process::Child) {
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    let _ = child.wait();
}
