//! Structural checking of the YAML tree against the JSON schema derived from the config structs,
//! collecting every error (unknown key, missing key, wrong type, value not allowed) with its
//! line. The same schema lists every documented key, so the docs can be checked against it.
//!
//! Only the schema subset `schemars` emits for our structs is understood: `$ref`, `type`,
//! `properties`, `required`, `additionalProperties`, `items`, `const`, `enum`, `minimum`,
//! `anyOf`/`oneOf`, `default`, `description`. An object schema with `properties` and no
//! `additionalProperties` is treated as closed: every mapping in `bridge.yaml` is.

use serde_json::Value;

use super::source::{Node, NodeKind};

/// The JSON schema of [`super::Config`].
pub fn config_schema() -> Value {
    serde_json::to_value(schemars::schema_for!(super::Config)).expect("schema serializes")
}

/// A problem found by the structural check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub line: usize,
    pub path: String,
    pub message: String,
}

/// Walks a tree against the schema.
pub struct Checker {
    root: Value,
}

impl Checker {
    pub fn new(root: Value) -> Self {
        Checker { root }
    }

    /// Every structural problem of `node`, in file order.
    pub fn check(&self, node: &Node) -> Vec<Found> {
        let mut found = Vec::new();
        self.check_node(node, &self.root, "", &mut found);
        found
    }

    fn resolve<'a>(&'a self, mut schema: &'a Value) -> &'a Value {
        while let Some(reference) = schema.get("$ref").and_then(Value::as_str) {
            let name = reference.trim_start_matches("#/$defs/");
            schema = &self.root["$defs"][name];
        }
        schema
    }

    fn branches<'a>(&'a self, schema: &'a Value) -> Option<Vec<&'a Value>> {
        let list = schema.get("anyOf").or_else(|| schema.get("oneOf"))?;
        Some(
            list.as_array()?
                .iter()
                .map(|branch| self.resolve(branch))
                .collect(),
        )
    }

    fn check_node(&self, node: &Node, schema: &Value, path: &str, found: &mut Vec<Found>) {
        let schema = self.resolve(schema);
        if let Some(branches) = self.branches(schema) {
            self.check_alternatives(node, &branches, path, found);
            return;
        }
        let error = |message: String| Found {
            line: node.line,
            path: path.to_owned(),
            message,
        };
        if let Some(expected) = schema.get("const") {
            if !scalar_equals(node, expected) {
                found.push(error(format!(
                    "expected {}, found {}",
                    self.describe(schema),
                    show(node)
                )));
            }
            return;
        }
        if let Some(values) = schema.get("enum").and_then(Value::as_array) {
            if !values.iter().any(|v| scalar_equals(node, v)) {
                found.push(error(format!(
                    "expected {}, found {}",
                    self.describe(schema),
                    show(node)
                )));
            }
            return;
        }
        if !type_matches(node, schema) {
            found.push(error(format!(
                "expected {}, found {}",
                self.describe(schema),
                show(node)
            )));
            return;
        }
        if let (NodeKind::Int(i), Some(min)) =
            (&node.kind, schema.get("minimum").and_then(Value::as_i64))
        {
            if *i < min {
                found.push(error(format!(
                    "expected an integer of at least {min}, found {i}"
                )));
            }
        }
        match &node.kind {
            NodeKind::Map(entries) => self.check_map(node, entries, schema, path, found),
            NodeKind::Seq(items) => {
                if let Some(item_schema) = schema.get("items") {
                    for (i, item) in items.iter().enumerate() {
                        self.check_node(item, item_schema, &format!("{path}[{i}]"), found);
                    }
                }
            }
            _ => {}
        }
    }

    fn check_map(
        &self,
        node: &Node,
        entries: &[(String, usize, Node)],
        schema: &Value,
        path: &str,
        found: &mut Vec<Found>,
    ) {
        let properties = schema.get("properties").and_then(Value::as_object);
        let extra = schema.get("additionalProperties").filter(|v| v.is_object());
        for (key, key_line, value) in entries {
            let key_path = join(path, key);
            if let Some(property) = properties.and_then(|p| p.get(key)) {
                self.check_node(value, property, &key_path, found);
            } else if let Some(extra) = extra {
                self.check_node(value, extra, &key_path, found);
            } else {
                let known: Vec<&str> = properties
                    .map(|p| p.keys().map(String::as_str).collect())
                    .unwrap_or_default();
                let mut message = "unknown key".to_owned();
                if let Some(close) = closest(key, &known) {
                    message.push_str(&format!(" (did you mean `{close}`?)"));
                }
                if !known.is_empty() {
                    message.push_str(&format!("; expected one of: {}", known.join(", ")));
                }
                found.push(Found {
                    line: *key_line,
                    path: key_path,
                    message,
                });
            }
        }
        for required in schema
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
        {
            if !entries.iter().any(|(k, _, _)| k == required) {
                found.push(Found {
                    line: node.line,
                    path: join(path, required),
                    message: "missing".into(),
                });
            }
        }
    }

    /// `anyOf`/`oneOf`: accepted if one branch accepts. Otherwise report the errors of the branch
    /// the user evidently meant (same shape, matching discriminator), or list the accepted forms.
    fn check_alternatives(
        &self,
        node: &Node,
        branches: &[&Value],
        path: &str,
        found: &mut Vec<Found>,
    ) {
        let mut candidates: Vec<(Vec<Found>, &Value)> = Vec::new();
        for branch in branches {
            let mut branch_found = Vec::new();
            self.check_node(node, branch, path, &mut branch_found);
            if branch_found.is_empty() {
                return;
            }
            if self.shape_matches(node, branch) {
                candidates.push((branch_found, branch));
            }
        }
        if let NodeKind::Map(entries) = &node.kind {
            // Internally tagged enums: a `const` property is the discriminator.
            if let Some(tag) = discriminator(&candidates) {
                let matching: Vec<_> = candidates
                    .iter()
                    .filter(|(_, b)| {
                        entries.iter().any(|(k, _, v)| {
                            *k == tag && scalar_equals(v, &b["properties"][tag.as_str()]["const"])
                        })
                    })
                    .collect();
                if let Some((branch_found, _)) = matching.first() {
                    found.extend(branch_found.iter().cloned());
                    return;
                }
                let allowed: Vec<String> = candidates
                    .iter()
                    .filter_map(|(_, b)| b["properties"][tag.as_str()]["const"].as_str())
                    .map(|s| format!("`{s}`"))
                    .collect();
                let (line, message) = match entries.iter().find(|(k, _, _)| *k == tag) {
                    Some((_, line, value)) => (
                        *line,
                        format!(
                            "expected one of {}, found {}",
                            allowed.join(", "),
                            show(value)
                        ),
                    ),
                    None => (
                        node.line,
                        format!("missing (one of {})", allowed.join(", ")),
                    ),
                };
                found.push(Found {
                    line,
                    path: join(path, &tag),
                    message,
                });
                return;
            }
        }
        // For a mapping or list, the errors inside the branch of that shape are the useful ones;
        // for a scalar, listing the accepted forms says more than any one branch's complaint.
        if matches!(node.kind, NodeKind::Map(_) | NodeKind::Seq(_)) {
            if let Some((branch_found, _)) = candidates.iter().min_by_key(|(f, _)| f.len()) {
                found.extend(branch_found.iter().cloned());
                return;
            }
        }
        let forms: Vec<String> = branches.iter().map(|b| self.describe(b)).collect();
        found.push(Found {
            line: node.line,
            path: path.to_owned(),
            message: format!("expected {}, found {}", join_or(&forms), show(node)),
        });
    }

    /// Whether a branch is of the same broad kind as the node (mapping vs list vs scalar), so
    /// that its errors are the ones worth reporting.
    fn shape_matches(&self, node: &Node, branch: &Value) -> bool {
        let branch = self.resolve(branch);
        if let Some(nested) = self.branches(branch) {
            return nested.iter().any(|b| self.shape_matches(node, b));
        }
        let kind = branch.get("type").and_then(Value::as_str);
        match &node.kind {
            NodeKind::Map(_) => kind == Some("object"),
            NodeKind::Seq(_) => kind == Some("array"),
            NodeKind::Null => kind == Some("null"),
            _ => !matches!(kind, Some("object" | "array" | "null")),
        }
    }

    /// A short human description of what a schema accepts.
    fn describe(&self, schema: &Value) -> String {
        let schema = self.resolve(schema);
        if let Some(branches) = self.branches(schema) {
            let forms: Vec<String> = branches
                .iter()
                .filter(|b| b.get("type").and_then(Value::as_str) != Some("null"))
                .map(|b| self.describe(b))
                .collect();
            return join_or(&forms);
        }
        if let Some(value) = schema.get("const") {
            return format!(
                "`{}`",
                value.as_str().map_or(value.to_string(), str::to_owned)
            );
        }
        if let Some(values) = schema.get("enum").and_then(Value::as_array) {
            let forms: Vec<String> = values
                .iter()
                .map(|v| format!("`{}`", v.as_str().map_or(v.to_string(), str::to_owned)))
                .collect();
            return join_or(&forms);
        }
        if let Some(form) = tagged_form(schema) {
            return form;
        }
        match schema.get("type") {
            Some(Value::String(t)) => match t.as_str() {
                "object" => match schema.get("properties").and_then(Value::as_object) {
                    Some(_) if schema.get("required").is_some() => {
                        let required: Vec<String> = schema["required"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .filter_map(Value::as_str)
                            .map(|k| format!("`{k}`"))
                            .collect();
                        if required.is_empty() {
                            "a mapping".into()
                        } else {
                            format!("a mapping with {}", required.join(", "))
                        }
                    }
                    _ => "a mapping".into(),
                },
                "array" => "a list".into(),
                "string" => "a string".into(),
                "integer" => match schema.get("minimum").and_then(Value::as_i64) {
                    Some(0) => "a non-negative integer".into(),
                    _ => "an integer".into(),
                },
                "number" => "a number".into(),
                "boolean" => "`true` or `false`".into(),
                "null" => "nothing".into(),
                other => other.to_owned(),
            },
            Some(Value::Array(types)) => {
                let forms: Vec<String> = types
                    .iter()
                    .filter(|t| t.as_str() != Some("null"))
                    .map(|t| self.describe(&serde_json::json!({ "type": t })))
                    .collect();
                join_or(&forms)
            }
            _ => "a value".into(),
        }
    }
}

/// `{from: header, name: …}` for an object pinned by a `const` property (a serde tag).
fn tagged_form(schema: &Value) -> Option<String> {
    let properties = schema.get("properties")?.as_object()?;
    let (tag, value) = properties
        .iter()
        .find_map(|(k, p)| Some((k, p.get("const")?.as_str()?)))?;
    let mut parts = vec![format!("{tag}: {value}")];
    for required in schema
        .get("required")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .filter(|r| *r != tag)
    {
        parts.push(format!("{required}: …"));
    }
    Some(format!("`{{{}}}`", parts.join(", ")))
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

fn join_or(forms: &[String]) -> String {
    match forms {
        [] => "nothing".into(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} or {}", init.join(", "), last),
    }
}

/// The node for messages: its type, and its value when it is a short scalar.
fn show(node: &Node) -> String {
    match &node.kind {
        NodeKind::Str(s) if s.chars().count() <= 40 => format!("\"{s}\""),
        NodeKind::Int(i) => i.to_string(),
        NodeKind::Float(f) => f.to_string(),
        NodeKind::Bool(b) => b.to_string(),
        _ => node.type_name().to_owned(),
    }
}

fn scalar_equals(node: &Node, value: &Value) -> bool {
    match (&node.kind, value) {
        (NodeKind::Str(s), Value::String(v)) => s == v,
        (NodeKind::Bool(b), Value::Bool(v)) => b == v,
        (NodeKind::Int(i), Value::Number(n)) => n.as_i64() == Some(*i),
        (NodeKind::Null, Value::Null) => true,
        _ => false,
    }
}

fn type_matches(node: &Node, schema: &Value) -> bool {
    let accepts = |t: &str| {
        matches!(
            (t, &node.kind),
            ("object", NodeKind::Map(_))
                | ("array", NodeKind::Seq(_))
                | ("string", NodeKind::Str(_))
                | ("integer", NodeKind::Int(_))
                | ("number", NodeKind::Int(_) | NodeKind::Float(_))
                | ("boolean", NodeKind::Bool(_))
                | ("null", NodeKind::Null)
        )
    };
    match schema.get("type") {
        Some(Value::String(t)) => accepts(t),
        Some(Value::Array(types)) => types.iter().filter_map(Value::as_str).any(accepts),
        _ => true,
    }
}

/// The property every candidate object branch pins with a `const` (serde's `tag`).
fn discriminator(candidates: &[(Vec<Found>, &Value)]) -> Option<String> {
    let first = candidates.first()?.1.get("properties")?.as_object()?;
    let tag = first
        .iter()
        .find(|(_, p)| p.get("const").is_some())
        .map(|(k, _)| k.clone())?;
    candidates
        .iter()
        .all(|(_, b)| b["properties"][tag.as_str()].get("const").is_some())
        .then_some(tag)
}

/// The known key closest to a misspelt one, if it is close enough to be a likely typo.
fn closest<'a>(key: &str, known: &[&'a str]) -> Option<&'a str> {
    known
        .iter()
        .map(|k| (edit_distance(key, k), *k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 4))
        .min()
        .map(|(_, k)| k)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            current.push(substitution.min(previous[j + 1] + 1).min(current[j] + 1));
        }
        previous = current;
    }
    previous[b.len()]
}

/// One documented configuration key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyDoc {
    /// Dotted path; list items are written `channels[]`.
    pub path: String,
    /// What the key accepts.
    pub accepts: String,
    /// The default, as JSON, when the key may be omitted and has one.
    pub default: Option<String>,
    pub required: bool,
    pub description: String,
}

/// Every key of `bridge.yaml`, depth first, for the configuration reference.
pub fn documented_keys() -> Vec<KeyDoc> {
    let checker = Checker::new(config_schema());
    let mut keys: Vec<(KeyDoc, Vec<String>)> = Vec::new();
    collect_keys(&checker, &checker.root, "", false, &mut keys);
    keys.into_iter()
        .map(|(mut key, forms)| {
            key.accepts = join_or(&forms);
            key
        })
        .collect()
}

/// Walks the schema; `alternative` is true inside one form of an `anyOf`/`oneOf`, where a key
/// required by that form is not required in general. Keys seen in several forms are merged,
/// with every value they accept.
fn collect_keys(
    checker: &Checker,
    schema: &Value,
    path: &str,
    alternative: bool,
    keys: &mut Vec<(KeyDoc, Vec<String>)>,
) {
    let schema = checker.resolve(schema);
    if let Some(branches) = checker.branches(schema) {
        for branch in branches {
            collect_keys(checker, branch, path, true, keys);
        }
        return;
    }
    if let Some(items) = schema.get("items") {
        collect_keys(checker, items, &format!("{path}[]"), alternative, keys);
        return;
    }
    let Some(properties) = schema.get("properties").and_then(Value::as_object) else {
        return;
    };
    let required: Vec<&str> = schema
        .get("required")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    for (name, property) in properties {
        let key_path = join(path, name);
        let form = checker.describe(property);
        if let Some((_, forms)) = keys.iter_mut().find(|(k, _)| k.path == key_path) {
            if !forms.contains(&form) {
                forms.push(form);
            }
            continue;
        }
        let resolved = checker.resolve(property);
        let is_tag = property.get("const").is_some();
        let description = property
            .get("description")
            .or_else(|| resolved.get("description"))
            .and_then(Value::as_str)
            .map(str::to_owned)
            .unwrap_or_else(|| {
                if is_tag {
                    format!("Selects the form of `{path}`; see the forms above.")
                } else {
                    String::new()
                }
            });
        keys.push((
            KeyDoc {
                path: key_path.clone(),
                accepts: String::new(),
                // A section's default is the defaults of its keys, listed with them.
                default: property
                    .get("default")
                    .filter(|d| !d.is_null() && !d.is_object())
                    .map(Value::to_string),
                required: required.contains(&name.as_str()) && (!alternative || is_tag),
                description,
            },
            vec![form],
        ));
        collect_keys(checker, property, &key_path, false, keys);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::source::parse_yaml;

    fn check(yaml: &str) -> Vec<String> {
        let node = parse_yaml(yaml).unwrap();
        Checker::new(config_schema())
            .check(&node)
            .into_iter()
            .map(|f| format!("{}: {}: {}", f.line, f.path, f.message))
            .collect()
    }

    const MINIMAL: &str =
        "instance_id: a\nkafka: {bootstrap_servers: 'k:9092'}\nauth: {mode: none}\n";

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
            found[1].starts_with("6: server.listn: unknown key (did you mean `listen`?); expected one of: allowed_origins, api_keys, demo_page, handshake_timeout_ms,"),
            "{}",
            found[1]
        );
        assert_eq!(
            found[2],
            "11: channels[1].format: expected `json`, `text` or `base64`, found \"xml\""
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
}
