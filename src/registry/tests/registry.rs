//! The registry's fetch state machine against sockets that refuse or never answer: one fetch
//! however many ask, a retry on a new connection, backoff, status. (Answers of a live
//! registry are tested elsewhere, against a real one.)

use std::time::{Duration, Instant};

use crate::metrics::Metrics;
use crate::registry::{Lookup, Registry, RegistryError, RegistrySettings};

fn registry(url: String, timeout: Duration) -> (Registry, Metrics) {
    let metrics = Metrics::new(&[], &[], &[]);
    let mut settings = RegistrySettings::new(url);
    settings.timeout = timeout;
    let registry = Registry::new(
        settings,
        metrics.schema_registry(),
        tokio::runtime::Handle::current(),
    )
    .unwrap();
    (registry, metrics)
}

fn requests(metrics: &Metrics, result: &str) -> u64 {
    metrics
        .schema_registry_requests
        .with_label_values(&[result])
        .get()
}

/// A local port nothing listens on.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

async fn wait_for(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_fetch_however_many_ask_then_backoff_while_unreachable() {
    let (registry, metrics) = registry(
        format!("http://127.0.0.1:{}/api", closed_port()),
        Duration::from_secs(2),
    );
    assert!(registry.status().reachable, "nothing failed yet");
    for _ in 0..1000 {
        assert!(matches!(registry.lookup(5), Lookup::Pending));
    }
    let err = registry.schema(5).await.unwrap_err();
    assert!(
        matches!(&err, RegistryError::Unavailable(e) if e.contains("schema 5")),
        "{err}"
    );
    assert_eq!(requests(&metrics, "error"), 2, "one attempt and one retry");
    // Backing off: callers wait, nothing is asked of the registry.
    for _ in 0..1000 {
        assert!(matches!(registry.lookup(5), Lookup::Pending));
    }
    assert!(matches!(
        registry.schema(5).await,
        Err(RegistryError::Unavailable(_))
    ));
    assert_eq!(requests(&metrics, "error"), 2);
    let status = registry.status();
    assert!(!status.reachable);
    assert_eq!((status.cached, status.waiting), (0, 1));
    assert!(status.last_error.unwrap().contains("/api/schemas/ids/5"));
    assert!(status.last_error_at.is_some());
    // After the backoff (200 ms), the fetch is tried again by itself.
    wait_for("a second try", || requests(&metrics, "error") >= 4).await;
    assert_eq!(
        requests(&metrics, "ok") + requests(&metrics, "not_found"),
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registry_that_never_answers_times_out_and_is_tried_once_more() {
    // Connections are accepted by the kernel into the backlog; nothing ever answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", silent.local_addr().unwrap());
    let (registry, metrics) = registry(url, Duration::from_millis(200));
    let started = Instant::now();
    let err = registry
        .subject("orders-value", crate::registry::SchemaVersion::Latest)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, RegistryError::Unavailable(e) if e.contains("subject \"orders-value\"")),
        "{err}"
    );
    assert_eq!(requests(&metrics, "timeout"), 2);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    drop(silent);
}

#[tokio::test]
async fn settings_are_checked_up_front() {
    let metrics = Metrics::new(&[], &[], &[]).schema_registry();
    let handle = tokio::runtime::Handle::current();
    let new = |settings: RegistrySettings| Registry::new(settings, metrics.clone(), handle.clone());
    let err = new(RegistrySettings::new("registry:8081")).err().unwrap();
    assert!(
        err.to_string()
            .starts_with("schema_registry.url: expected an http(s) URL"),
        "{err}"
    );
    let mut settings = RegistrySettings::new("https://registry:8081");
    settings.ca_file = Some("/nonexistent/ca.pem".into());
    let err = new(settings.clone()).err().unwrap();
    assert!(
        err.to_string()
            .contains("ca_file: cannot read /nonexistent/ca.pem"),
        "{err}"
    );
    let dir = std::env::temp_dir().join(format!("registry-ca-{}", std::process::id()));
    std::fs::write(&dir, "not a certificate").unwrap();
    settings.ca_file = Some(dir.clone());
    let err = new(settings.clone()).err().unwrap();
    assert!(
        err.to_string().contains("expected PEM certificates"),
        "{err}"
    );
    let certificate = rcgen::generate_simple_self_signed(vec!["registry".into()]).unwrap();
    std::fs::write(&dir, certificate.cert.pem()).unwrap();
    settings.ca_file = Some(dir.clone());
    assert!(new(settings).is_ok());
    std::fs::remove_file(dir).unwrap();
}

#[tokio::test]
async fn a_cached_schema_is_ready_without_a_request() {
    let (registry, metrics) = registry(
        format!("http://127.0.0.1:{}", closed_port()),
        Duration::from_secs(1),
    );
    let schema =
        crate::registry::Schema::compile(crate::registry::SchemaKind::Avro, "\"long\"", &[], 100);
    registry
        .inner
        .cache
        .insert(9, std::sync::Arc::new(schema.unwrap()));
    for _ in 0..100 {
        assert!(matches!(registry.lookup(9), Lookup::Ready(_)));
    }
    assert!(registry.schema(9).await.is_ok());
    let status = registry.status();
    assert_eq!(
        (status.cached, status.waiting, status.reachable),
        (1, 0, true)
    );
    let requests: u64 = ["ok", "not_found", "error", "timeout"]
        .iter()
        .map(|r| requests(&metrics, r))
        .sum();
    assert_eq!(requests, 0);
}

#[test]
fn the_registry_and_its_schemas_can_be_shared_across_threads() {
    fn shared<T: Send + Sync>() {}
    shared::<Registry>();
    shared::<crate::registry::Schema>();
    shared::<Lookup>();
}
