use super::*;
use crate::config::documented_keys;
use crate::config::source::parse_yaml;

fn check(yaml: &str) -> Vec<String> {
    let node = parse_yaml(yaml).unwrap();
    Checker::new(config_schema())
        .check(&node)
        .into_iter()
        .map(|f| format!("{}: {}: {}", f.line, f.path, f.message))
        .collect()
}

const MINIMAL: &str = "instance_id: a\nkafka: {bootstrap_servers: 'k:9092'}\nauth: {mode: none}\n";

#[test]
fn minimal_config_passes() {
    assert_eq!(check(MINIMAL), Vec::<String>::new());
}

#[test]
fn reports_every_problem_with_its_line() {
    let yaml = "instance_id: a\nkafka: {bootstrap_servers: k}\nauth: {mode: none}\nserver:\n  max_frame_bytes: big\n  listn: x\nchannels:\n  - name: a\n    topic: t\n  - name: b\n    format: xml\n";
    let found = check(yaml);
    assert_eq!(found.len(), 4, "{found:?}");
    assert_eq!(
        found[0],
        "5: server.max_frame_bytes: expected a non-negative integer, found \"big\""
    );
    assert!(
        found[1].starts_with("6: server.listn: unknown key (did you mean `listen`?); expected one of: allowed_origins, api_keys, compression, demo_page, handshake_timeout_ms,"),
        "{}",
        found[1]
    );
    assert_eq!(
        found[2],
        "11: channels[1].format: expected `json`, `text`, `base64`, `avro`, `protobuf` or `json_schema`, found \"xml\""
    );
    assert_eq!(found[3], "10: channels[1].topic: missing");
}

#[test]
fn tagged_enums_report_the_meant_variant() {
    let base = format!("{MINIMAL}channels:\n  - name: a\n    topic: t\n");
    assert_eq!(
        check(&format!("{base}    key: {{from: header}}\n")),
        ["7: channels[0].key.name: missing"]
    );
    assert_eq!(
        check(&format!("{base}    key: {{from: body}}\n")),
        ["7: channels[0].key.from: expected one of `record_key`, `header`, `value`, found \"body\""]
    );
    assert_eq!(
        check(&format!("{base}    key: {{name: x}}\n")),
        ["7: channels[0].key.from: missing (one of `record_key`, `header`, `value`)"]
    );
}

#[test]
fn untagged_enums_list_their_forms() {
    let base = format!("{MINIMAL}channels:\n  - name: a\n    topic: t\n    subscribe:\n");
    assert_eq!(
        check(&format!("{base}      allow: everyone\n")),
        ["8: channels[0].subscribe.allow: expected `anonymous` or `authenticated` or a mapping with `roles`, found \"everyone\""]
    );
    assert_eq!(
        check(&format!("{base}      allow: {{roles: ops}}\n")),
        ["8: channels[0].subscribe.allow.roles: expected a list, found \"ops\""]
    );
    assert_eq!(
        check(&format!("{base}      allow: {{role: [ops]}}\n")),
        ["8: channels[0].subscribe.allow.role: unknown key (did you mean `roles`?); expected one of: roles", "8: channels[0].subscribe.allow.roles: missing"]
    );
}

#[test]
fn null_and_negative_values() {
    let yaml = "instance_id:\nkafka: {bootstrap_servers: k}\nauth: {mode: none}\nserver: {send_queue_messages: -1}\n";
    assert_eq!(
        check(yaml),
        [
            "1: instance_id: expected a string, found nothing (null)",
            "4: server.send_queue_messages: expected an integer of at least 0, found -1",
        ]
    );
}

#[test]
fn properties_accept_any_scalar() {
    let yaml = "instance_id: a\nkafka:\n  bootstrap_servers: k\n  properties: {linger.ms: 5, client.id: x, enable.idempotence: true}\nauth: {mode: none}\n";
    assert_eq!(check(yaml), Vec::<String>::new());
}

#[test]
fn documented_keys_cover_nested_forms() {
    let keys: Vec<String> = documented_keys().into_iter().map(|k| k.path).collect();
    for expected in [
        "instance_id",
        "kafka.properties",
        "server.tls.cert_file",
        "auth.jwt.secret",
        "channels[].key.from",
        "channels[].key.pointer",
        "channels[].subscribe.allow.roles",
        "channels[].subscribe.keys.claim",
        "inbound[].key.pointer",
    ] {
        assert!(
            keys.contains(&expected.to_owned()),
            "{expected} in {keys:?}"
        );
    }
}
