use super::*;
use rdkafka::types::RDKafkaErrorCode as Code;

fn status() -> KafkaStatus {
    KafkaStatus::new(Arc::new(Metrics::new(&[], &[], &[])))
}

#[test]
fn a_failing_connection_is_logged_once_and_readiness_keeps_its_cause() {
    let status = status();
    let auth = KafkaError::Global(Code::Authentication);
    let down = KafkaError::Global(Code::AllBrokersDown);
    let reason = |ms: u32| {
        format!("SASL authentication error: Authentication failed (after {ms}ms in state AUTH_REQ)")
    };
    // The first attempt, by either client, is logged; the next ones (other timings) are not.
    assert!(status.record_error(Role::Producer, &auth, Some(&reason(406))));
    assert!(status.record_error(Role::Producer, &down, Some("1/1 brokers are down")));
    assert!(!status.record_error(Role::Consumer, &auth, Some(&reason(395))));
    // The consumer's copy of an error already logged with its reason is not logged.
    assert!(!status.record_error(
        Role::Consumer,
        &KafkaError::MessageConsumption(Code::Authentication),
        None
    ));
    assert!(!status.record_error(Role::Consumer, &down, Some("1/1 brokers are down")));
    assert!(!status.record_error(Role::Producer, &auth, Some(&reason(351))));
    // Readiness shows the cause, not the summary that came after it.
    status.record_error(Role::Consumer, &down, Some("1/1 brokers are down"));
    status.record_error(
        Role::Consumer,
        &KafkaError::MessageConsumption(Code::AllBrokersDown),
        None,
    );
    let shown = status.last_error().unwrap();
    assert!(
        shown.contains("Authentication failed (after 351ms"),
        "{shown}"
    );
    // A consumer error of another kind, reported only by the poll, is logged.
    assert!(status.record_error(
        Role::Consumer,
        &KafkaError::MessageConsumption(Code::UnknownTopicOrPartition),
        None
    ));
}
