//! From file text to a validated [`Plan`], collecting *every* problem: environment references,
//! YAML syntax, structure (unknown, missing and mistyped keys, `schema.rs`) and meaning
//! (duplicate channels, `by_key` without a key, missing files, …, `rules.rs`). Each diagnostic
//! names the file, line and key path.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use super::diagnostic::{Diagnostic, Report, Severity};
use super::partial::Partial;
use super::plan::{index_lines, path_at_line, Plan};
use super::rules::Semantic;
use super::schema::{config_schema, Checker};
use super::source::{expand_env, parse_yaml, NodeKind};
use super::Config;

/// Loads and checks a config file, expanding variables from the process environment.
pub fn load(path: &Path) -> Result<Plan, Vec<Diagnostic>> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| {
        vec![Diagnostic {
            severity: Severity::Error,
            file: file.clone(),
            line: 0,
            path: String::new(),
            message: format!("cannot read the file: {e}"),
        }]
    })?;
    let base_dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf();
    load_str(&text, &file, &base_dir, |name| std::env::var(name).ok())
}

/// Loads and checks config text; `env` answers `${VAR}` references.
pub fn load_str(
    text: &str,
    file: &str,
    base_dir: &Path,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Plan, Vec<Diagnostic>> {
    let mut report = Report::new(file);
    let (expanded, env_errors) = expand_env(text, env);
    let tree = match parse_yaml(&expanded) {
        Ok(tree) => tree,
        Err(e) => {
            for error in env_errors {
                report.error_at(error.line, "", error.message);
            }
            report.error_at(e.line, "", e.message);
            return Err(report.finish());
        }
    };
    let mut lines = HashMap::new();
    index_lines(&tree, "", &mut lines);
    // An unset variable became an empty value; its type error would only repeat the problem.
    let env_lines: HashSet<usize> = env_errors.iter().map(|e| e.line).collect();
    for error in env_errors {
        let path = path_at_line(&tree, "", error.line).unwrap_or_default();
        report.error_at(error.line, &path, error.message);
    }
    if !matches!(tree.kind, NodeKind::Map(_)) {
        report.error_at(
            tree.line,
            "",
            format!(
                "expected a mapping at the top level, found {}",
                tree.type_name()
            ),
        );
        return Err(report.finish());
    }
    let structural = Checker::new(config_schema()).check(&tree);
    let broken: Vec<String> = structural.iter().map(|f| f.path.clone()).collect();
    for found in structural {
        if !env_lines.contains(&found.line) {
            report.error_at(found.line, &found.path, found.message);
        }
    }
    // Check the meaning of every part that is structurally sound, even when others are not,
    // so that one run reports every error.
    let partial = Partial::load(&tree, &broken);
    let mut semantic = Semantic::new(&mut report, &lines, base_dir);
    let (listen, metrics_listen) = semantic.check(&partial);
    if report.has_errors() || !broken.is_empty() {
        return Err(report.finish());
    }
    let config: Config = match serde_yaml::from_value(tree.to_yaml_value()) {
        Ok(config) => config,
        Err(e) => {
            // The schema check should have caught it; report rather than panic if it did not.
            report.error_at(1, "", format!("cannot load the config: {e}"));
            return Err(report.finish());
        }
    };
    let (Some(listen), Some(metrics_listen)) = (listen, metrics_listen) else {
        unreachable!("addresses are checked above");
    };
    Ok(Plan {
        config,
        file: file.to_owned(),
        base_dir: base_dir.to_path_buf(),
        listen,
        metrics_listen,
        warnings: report.finish(),
        lines,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_text(text: &str) -> Result<Plan, Vec<Diagnostic>> {
        load_str(text, "bridge.yaml", Path::new("."), |name| {
            (name == "SET").then(|| "value-from-env".to_owned())
        })
    }

    /// The errors only (no warnings), as printed.
    fn errors(text: &str) -> Vec<String> {
        messages(text)
            .into_iter()
            .filter(|m| !m.starts_with("warning"))
            .collect()
    }

    fn messages(text: &str) -> Vec<String> {
        match load_text(text) {
            Ok(plan) => plan.warnings.iter().map(ToString::to_string).collect(),
            Err(diagnostics) => diagnostics.iter().map(ToString::to_string).collect(),
        }
    }

    const BASE: &str = "instance_id: a\nkafka: {bootstrap_servers: 'k:9092'}\nauth: {mode: none}\n";

    #[test]
    fn minimal_config_loads_with_defaults() {
        let plan = load_text(BASE).unwrap();
        assert_eq!(plan.listen, "0.0.0.0:8080".parse().unwrap());
        assert_eq!(plan.config.server.send_queue_messages, 8192);
        assert_eq!(plan.group_id(), "kafka-ws-bridge.a");
        let warnings: Vec<String> = plan.warnings.iter().map(ToString::to_string).collect();
        assert_eq!(
            warnings,
            ["warning: bridge.yaml:1: no `channels` and no `inbound`: the bridge will not move anything"]
        );
    }

    #[test]
    fn unset_variable_names_the_variable_and_key() {
        let text = "instance_id: ${NOPE}\nkafka: {bootstrap_servers: 'k:9092'}\nauth: {mode: none}\ninbound: [{channel: c, topic: t, allow: anonymous}]\n";
        assert_eq!(
            messages(text),
            ["bridge.yaml:1: instance_id: environment variable NOPE is not set and `${NOPE}` has no default (write `${NOPE:-default}` to give one)"]
        );
    }

    #[test]
    fn semantic_errors_point_at_their_keys() {
        let text = format!(
            "{BASE}channels:\n  - name: a\n    topic: t\n    deliver: by_key\n  - name: a\n    topic: 'bad topic'\n"
        );
        assert_eq!(
            errors(&text),
            [
                "bridge.yaml:5: channels[0].key: missing (required for deliver: by_key): e.g. {from: record_key}",
                "bridge.yaml:8: channels[1].name: \"a\" is used twice in channels",
                "bridge.yaml:9: channels[1].topic: \"bad topic\" is not a valid Kafka topic name (1-249 of letters, digits, `.`, `_`, `-`)",
            ]
        );
    }

    #[test]
    fn structural_and_semantic_errors_are_reported_together() {
        let text = format!(
            "{BASE}server: {{max_frame_bytes: lots}}\nchannels:\n  - name: a\n    topic: t\n    deliver: by_key\n  - name: a\n    topic: t\n    format: xml\n  - name: a\n    topic: u\n"
        );
        assert_eq!(
            errors(&text),
            [
                "bridge.yaml:4: server.max_frame_bytes: expected a non-negative integer, found \"lots\"",
                "bridge.yaml:6: channels[0].key: missing (required for deliver: by_key): e.g. {from: record_key}",
                "bridge.yaml:11: channels[1].format: expected `json`, `text`, `base64`, `avro`, `protobuf` or `json_schema`, found \"xml\"",
                "bridge.yaml:12: channels[2].name: \"a\" is used twice in channels",
            ]
        );
    }

    #[test]
    fn inbound_key_rules_and_identity_headers_are_checked() {
        let jwt = "instance_id: a\nkafka: {bootstrap_servers: 'k:9092'}\nauth:\n  mode: jwt\n  jwt: {secret: 0123456789abcdef0123456789abcdef}\n";
        let good = format!(
            "{jwt}inbound:\n  - {{channel: c, topic: t, key: {{pointer: /customer}}, keys: {{claim: customers}}, any_key_roles: [supervisor], identity_headers: [roles, customers]}}\n"
        );
        assert_eq!(messages(&good), Vec::<String>::new());
        let bad = format!(
            "{jwt}inbound:\n  - {{channel: c, topic: t, keys: own}}\n  - {{channel: d, topic: t, key: user, keys: {{claim: ''}}, identity_headers: [roles, '', roles]}}\n  - {{channel: e, topic: t, any_key_roles: [staff]}}\n"
        );
        assert_eq!(
            messages(&bad),
            [
                "bridge.yaml:7: inbound[0].keys: needs a record key to check: with key none records have none (set key: user or key: {pointer: ...})",
                "bridge.yaml:8: inbound[1].keys.claim: must not be empty",
                "bridge.yaml:8: inbound[1].identity_headers[1]: \"\" is not a claim name: `roles`, or a token claim such as customers",
                "bridge.yaml:8: inbound[1].identity_headers[2]: \"roles\" is listed twice",
                "warning: bridge.yaml:9: inbound[2].any_key_roles: ignored: keys is any, so every key is allowed already",
            ]
        );
        let anonymous = format!(
            "{BASE}inbound:\n  - {{channel: c, topic: t, allow: anonymous, key: {{pointer: /k}}, keys: own, identity_headers: [roles]}}\n"
        );
        assert_eq!(
            messages(&anonymous),
            [
                "warning: bridge.yaml:5: inbound[0].keys: no session can publish: auth.mode is none, and anonymous sessions have no own key and no claims",
                "warning: bridge.yaml:5: inbound[0].identity_headers: ignored: with auth.mode none every session is anonymous, without roles or claims",
            ]
        );
    }

    #[test]
    fn session_group_param_is_checked() {
        let jwt = |auth: &str| {
            format!("instance_id: a\nkafka: {{bootstrap_servers: 'k:9092'}}\nauth:\n  mode: jwt\n  jwt: {{secret: 0123456789abcdef0123456789abcdef}}\n{auth}inbound: [{{channel: c, topic: t}}]\n")
        };
        let good = jwt("  max_sessions_per_user: 1\n  session_group_param: app\n");
        assert_eq!(messages(&good), Vec::<String>::new());
        for (param, message) in [
            ("''", "bridge.yaml:7: auth.session_group_param: expected a query parameter name of 1 to 64 characters, found 0 characters"),
            ("'a b'", "bridge.yaml:7: auth.session_group_param: expected letters, digits, `.`, `_`, `~` or `-`, found \"a b\""),
            ("access_token", "bridge.yaml:7: auth.session_group_param: `access_token` is a query parameter the bridge reads already (one of access_token, channel, key, history)"),
        ] {
            let text = jwt(&format!("  max_sessions_per_user: 1\n  session_group_param: {param}\n"));
            assert_eq!(messages(&text), [message], "{param}");
        }
        assert_eq!(
            messages(&jwt("  session_group_param: app\n")),
            ["warning: bridge.yaml:6: auth.session_group_param: ignored: auth.max_sessions_per_user is 0 (unlimited), so no group is counted"]
        );
    }

    #[test]
    fn session_registry_is_checked() {
        let jwt = |auth: &str| {
            format!("instance_id: a\nkafka: {{bootstrap_servers: 'k:9092'}}\nauth:\n  mode: jwt\n  jwt: {{secret: 0123456789abcdef0123456789abcdef}}\n{auth}inbound: [{{channel: c, topic: t}}]\n")
        };
        let good =
            jwt("  max_sessions_per_user: 1\n  session_registry: {topic: bridge-sessions}\n");
        let plan = load_text(&good).unwrap();
        assert!(plan.warnings.is_empty(), "{:?}", plan.warnings);
        assert_eq!(plan.session_registry_topic(), Some("bridge-sessions"));
        assert_eq!(
            messages(&jwt("  max_sessions_per_user: 1\n  session_registry: {topic: t}\n")),
            ["bridge.yaml:7: auth.session_registry.topic: \"t\" is also inbound[0].topic: the session registry needs a topic of its own"]
        );
        assert_eq!(
            messages(&jwt("  max_sessions_per_user: 1\n  session_registry: {topic: 'a b'}\n")),
            ["bridge.yaml:7: auth.session_registry.topic: \"a b\" is not a valid Kafka topic name (1-249 of letters, digits, `.`, `_`, `-`)"]
        );
        assert_eq!(
            messages(&jwt("  session_registry: {topic: s}\n")),
            ["warning: bridge.yaml:6: auth.session_registry: ignored: auth.max_sessions_per_user is 0 (unlimited), so there is no limit to share"]
        );
        let unlimited = load_text(&jwt("  session_registry: {topic: s}\n")).unwrap();
        assert_eq!(unlimited.session_registry_topic(), None);
        assert_eq!(
            messages(&jwt(
                "  max_sessions_per_user: 1\n  session_registry: {topic: s, partitions: 3}\n"
            ))[0],
            "bridge.yaml:7: auth.session_registry.partitions: unknown key; expected one of: topic"
        );
    }

    #[test]
    fn secrets_are_not_printed() {
        let text = "instance_id: a\nkafka: {bootstrap_servers: 'k:9092'}\nauth:\n  mode: jwt\n  jwt: {secret: short-secret}\n";
        let out = messages(text).join("\n");
        assert!(
            out.contains("auth.jwt.secret: must be at least 32 bytes"),
            "{out}"
        );
        assert!(!out.contains("short-secret"), "{out}");
    }
}
