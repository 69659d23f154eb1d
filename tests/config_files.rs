//! Config files: every invalid fixture yields exactly the diagnostics it declares, every
//! example config in the repo is valid, and the CLI reports all errors with their lines.
//! No broker needed.

use std::path::{Path, PathBuf};
use std::process::Command;

use kafka_ws_bridge::config::{self, Severity};

fn fixtures() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir("tests/fixtures/invalid")
        .expect("fixture folder")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 10, "fixtures went missing: {files:?}");
    files
}

/// Loads with a fixed environment so results do not depend on the machine.
fn errors_of(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap();
    let base = path.parent().unwrap();
    let result = config::load_str(&text, &path.display().to_string(), base, |name| {
        (name == "BRIDGE_TEST_SET").then(|| "set".to_owned())
    });
    match result {
        Ok(_) => Vec::new(),
        Err(diagnostics) => diagnostics
            .into_iter()
            .filter(|d| d.severity == Severity::Error)
            .map(|d| {
                if d.path.is_empty() {
                    format!("{}: {}", d.line, d.message)
                } else {
                    format!("{}: {}: {}", d.line, d.path, d.message)
                }
            })
            .collect(),
    }
}

#[test]
fn every_invalid_fixture_reports_exactly_its_expected_errors() {
    for path in fixtures() {
        let text = std::fs::read_to_string(&path).unwrap();
        let mut expected: Vec<String> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# expect: "))
            .map(str::to_owned)
            .collect();
        assert!(
            !expected.is_empty(),
            "{} declares no `# expect:` line",
            path.display()
        );
        let mut actual = errors_of(&path);
        expected.sort();
        actual.sort();
        assert_eq!(actual, expected, "diagnostics of {}", path.display());
    }
}

/// Every YAML config shipped in the repo (outside the invalid fixtures) must be valid.
#[test]
fn every_example_config_in_the_repo_is_valid() {
    let mut configs = vec![PathBuf::from("bridge.yaml")];
    for dir in ["examples", "deploy"] {
        if let Ok(entries) = std::fs::read_dir(dir) {
            configs.extend(entries.map(|e| e.unwrap().path()).filter(|p| {
                p.extension().is_some_and(|e| e == "yaml") && !p.ends_with("docker-compose.yaml")
            }));
        }
    }
    for path in configs {
        // Variables a deployment sets (docker-compose.yml: BRIDGE_API_KEY).
        let text = std::fs::read_to_string(&path).unwrap();
        let base = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let plan = config::load_str(
            &text,
            &path.display().to_string(),
            base,
            |name| match name {
                "BRIDGE_API_KEY" => Some("example-api-key-0123456789".to_owned()),
                _ => std::env::var(name).ok(),
            },
        )
        .unwrap_or_else(|d| {
            panic!(
                "{} is invalid:\n{}",
                path.display(),
                d.iter()
                    .map(|d| d.to_string())
                    .collect::<Vec<_>>()
                    .join("\n")
            )
        });
        assert!(
            plan.warnings.is_empty(),
            "{} has warnings: {:?}",
            path.display(),
            plan.warnings
        );
    }
}

fn bridge_binary() -> Command {
    Command::new(env!("CARGO_BIN_EXE_kafka-ws-bridge"))
}

/// `kafka-ws-bridge check` on `text`, written as `bridge.yaml` in a directory of its own (`dir`
/// names it) together with `files` (name, content) that the config refers to.
fn check_text(dir: &str, text: &str, files: &[(&str, &str)]) -> std::process::Output {
    let dir = std::env::temp_dir().join(format!("kwb-{dir}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (name, content) in files {
        std::fs::write(dir.join(name), content).unwrap();
    }
    let file = dir.join("bridge.yaml");
    std::fs::write(&file, text).unwrap();
    bridge_binary()
        .args(["check", "--config"])
        .arg(&file)
        .output()
        .unwrap()
}

#[test]
fn check_prints_every_error_with_file_and_line_and_fails() {
    let output = bridge_binary()
        .args([
            "check",
            "--config",
            "tests/fixtures/invalid/keys_and_pointers.yaml",
        ])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    for line in [
        "tests/fixtures/invalid/keys_and_pointers.yaml:9: channels[0].key.from: `value` needs structured values (format json, avro, protobuf or json_schema)",
        "tests/fixtures/invalid/keys_and_pointers.yaml:12: channels[1].snapshot: needs a `key`",
        "tests/fixtures/invalid/keys_and_pointers.yaml:15: inbound[0].key.pointer:",
        "4 errors found",
    ] {
        assert!(stderr.contains(line), "missing {line:?} in:\n{stderr}");
    }
}

#[test]
fn check_accepts_the_example_config() {
    let output = bridge_binary()
        .args(["check", "--config", "bridge.yaml"])
        .env("KAFKA_BOOTSTRAP", "localhost:9092")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(String::from_utf8_lossy(&output.stdout).contains("bridge.yaml: OK"));
}

#[test]
fn check_rejects_properties_librdkafka_does_not_know() {
    let output = check_text(
        "check",
        "instance_id: a\nkafka:\n  bootstrap_servers: localhost:9092\n  consumer_properties:\n    fetch.wait.max.millis: 5\nauth: {mode: none}\ninbound: [{channel: c, topic: t, allow: anonymous}]\n",
        &[],
    );
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("bridge.yaml:5: kafka.consumer_properties.fetch.wait.max.millis: rejected by librdkafka"),
        "{stderr}"
    );
}

#[test]
fn run_refuses_an_invalid_config_with_the_same_messages() {
    let output = bridge_binary()
        .args([
            "run",
            "--config",
            "tests/fixtures/invalid/missing_topic.yaml",
        ])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("missing_topic.yaml:9: channels[1].topic: missing"),
        "{stderr}"
    );
    assert!(stderr.contains("refusing to start"), "{stderr}");
}

#[test]
fn unreadable_file_is_a_clear_error() {
    let output = bridge_binary()
        .args(["check", "--config", "no/such/bridge.yaml"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr)
        .contains("no/such/bridge.yaml:0: cannot read the file"));
}

#[test]
fn check_loads_the_jwt_public_key() {
    let output = check_text(
        "jwt",
        "instance_id: a\nkafka: {bootstrap_servers: 'localhost:9092'}\nauth:\n  mode: jwt\n  jwt:\n    algorithms: [RS256]\n    public_key_file: not-a-key.pem\ninbound: [{channel: c, topic: t}]\n",
        &[("not-a-key.pem", "hello")],
    );
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("bridge.yaml:7: auth.jwt.public_key_file:"),
        "{stderr}"
    );
    assert!(stderr.contains("not a usable RSA public key"), "{stderr}");
}

#[test]
fn version_flag_prints_the_crate_version() {
    let output = bridge_binary().arg("--version").output().unwrap();
    assert!(output.status.success());
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).trim(),
        format!("kafka-ws-bridge {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn check_rejects_a_schema_file_that_is_not_a_json_schema() {
    let output = check_text(
        "schema",
        "instance_id: a\nkafka: {bootstrap_servers: 'localhost:9092'}\nauth: {mode: none}\ninbound:\n  - {channel: c, topic: t, allow: anonymous, schema_file: command.json}\n",
        &[("command.json", r#"{"type": "objekt"}"#)],
    );
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("bridge.yaml:5: inbound[0].schema_file:")
            && stderr.contains("command.json: not a valid JSON Schema"),
        "{stderr}"
    );
}
