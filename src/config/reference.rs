//! The configuration reference: every key of `bridge.yaml` with what it accepts, its default
//! and its doc comment, read from the same schema the structural check uses. `tests/docs.rs`
//! renders it into docs/configuration.md.

use serde_json::Value;

use super::schema::{config_schema, join, join_or, Checker};

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
    collect_keys(&checker, checker.root(), "", false, &mut keys);
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
        // A form that is a mapping of one key (`- drop: [...]`) documents that key.
        let form_doc = (properties.len() == 1)
            .then(|| schema.get("description"))
            .flatten();
        let description = property
            .get("description")
            .or(form_doc)
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
