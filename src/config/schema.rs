//! Structural checking of the YAML tree against the JSON schema derived from the config structs,
//! collecting every error (unknown key, missing key, wrong type, value not allowed) with its
//! line. The same schema lists every documented key, so the docs can be checked against it.
//!
//! Only the schema subset `schemars` emits for our structs is understood: `$ref`, `type`,
//! `properties`, `required`, `additionalProperties`, `items`, `const`, `enum`, `minimum`,
//! `anyOf`/`oneOf`, `default`, `description`. An object schema with `properties` and no
//! `additionalProperties` is treated as closed: every mapping in `bridge.yaml` is.
//!
//! Why not the `jsonschema` crate (used for inbound and registry schemas): measured against
//! `tests/fixtures/invalid` (46 `# expect:` lines, 20 files), its own messages match 34 lines
//! (15 files): every structural error reads differently (`"big" is not of type "integer"`),
//! an unknown key loses its line and its "did you mean". Translating its errors into these
//! messages matched 45 (19 files) and, with this file's rule for externally tagged enums
//! ported, 46 (20), but still failed 3 of the 8 unit tests in `schema/tests.rs`: the serde tag
//! does not pick the variant the user meant, unknown keys inside untagged variants
//! (`allow: {role: …}`) pass because the schema leaves those objects open, and errors come out
//! of file order. That translation needs `describe`, `show`, `closest` and the enum rules from
//! here plus JSON-pointer walking through `$ref`s in `jsonschema`'s error paths: more code
//! than the walk it would replace, tied to another crate's error structure.

use serde_json::Value;

use super::source::{Node, NodeKind};
use hints::{closest, discriminator, single_keys};

/// The JSON schema of [`super::Config`].
pub(crate) fn config_schema() -> Value {
    serde_json::to_value(schemars::schema_for!(super::Config)).expect("schema serializes")
}

/// A problem found by the structural check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Found {
    pub line: usize,
    pub path: String,
    pub message: String,
}

/// Walks a tree against the schema.
pub(crate) struct Checker {
    root: Value,
}

impl Checker {
    pub fn new(root: Value) -> Self {
        Checker { root }
    }

    /// Every structural problem of `node`, in file order.
    /// The schema it checks against.
    pub(super) fn root(&self) -> &Value {
        &self.root
    }

    pub fn check(&self, node: &Node) -> Vec<Found> {
        let mut found = Vec::new();
        self.check_node(node, &self.root, "", &mut found);
        found
    }

    pub(super) fn resolve<'a>(&'a self, mut schema: &'a Value) -> &'a Value {
        while let Some(reference) = schema.get("$ref").and_then(Value::as_str) {
            let name = reference.trim_start_matches("#/$defs/");
            schema = &self.root["$defs"][name];
        }
        schema
    }

    pub(super) fn branches<'a>(&'a self, schema: &'a Value) -> Option<Vec<&'a Value>> {
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
        // Externally tagged enums (`- drop: [...]`): each form is a mapping with one key, the
        // key names the form.
        if let (NodeKind::Map(entries), Some(names)) = (&node.kind, single_keys(&candidates)) {
            if let Some(at) = entries
                .iter()
                .find_map(|(key, _, _)| names.iter().position(|n| n == key))
            {
                found.extend(candidates[at].0.iter().cloned());
                return;
            }
            if let Some((key, key_line, _)) = entries.first() {
                let known: Vec<&str> = names.iter().map(String::as_str).collect();
                let mut message = "unknown key".to_owned();
                if let Some(close) = closest(key, &known) {
                    message.push_str(&format!(" (did you mean `{close}`?)"));
                }
                message.push_str(&format!("; expected one of: {}", known.join(", ")));
                found.push(Found {
                    line: *key_line,
                    path: join(path, key),
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
    pub(super) fn describe(&self, schema: &Value) -> String {
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

pub(super) fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

pub(super) fn join_or(forms: &[String]) -> String {
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

mod hints;

#[cfg(test)]
mod tests;
