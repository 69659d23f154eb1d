//! JSON Schema: records are the JSON itself (decoding only checks that it is JSON);
//! publishes are validated against the schema before they are written.

use serde::de::IgnoredAny;

use super::schema::Reference;
use super::{DecodeError, InvalidData};

pub(crate) struct JsonSchema {
    validator: jsonschema::Validator,
}

impl JsonSchema {
    /// References are offered to `$ref` under their name, relative to the schema's base URI
    /// (`json-schema:///<name>`), or as they are when the name is an absolute URI.
    pub fn compile(text: &str, references: &[Reference]) -> Result<JsonSchema, String> {
        let schema: serde_json::Value =
            serde_json::from_str(text).map_err(|e| format!("expected a JSON Schema: {e}"))?;
        let mut options = jsonschema::options();
        for reference in references {
            let contents: serde_json::Value = serde_json::from_str(&reference.text)
                .map_err(|e| format!("{}: expected a JSON Schema: {e}", reference.name))?;
            let uri = match reference.name.contains(':') {
                true => reference.name.clone(),
                false => format!("json-schema:///{}", reference.name.trim_start_matches('/')),
            };
            options = options.with_resource(uri, jsonschema::Resource::from_contents(contents));
        }
        let validator = options.build(&schema).map_err(|e| e.to_string())?;
        Ok(JsonSchema { validator })
    }

    pub fn decode(&self, payload: &[u8], max_bytes: usize) -> Result<String, DecodeError> {
        if payload.len() > max_bytes {
            return Err(DecodeError::TooLarge(max_bytes));
        }
        let text = std::str::from_utf8(payload).map_err(|e| DecodeError::NotJson(e.to_string()))?;
        // serde_json refuses nesting past 128 levels on its own, without recursing further.
        serde_json::from_str::<IgnoredAny>(text)
            .map_err(|e| DecodeError::NotJson(e.to_string()))?;
        Ok(text.to_owned())
    }

    pub fn encode(&self, value: &serde_json::Value, out: &mut Vec<u8>) -> Result<(), InvalidData> {
        if let Some(error) = self.validator.iter_errors(value).next() {
            let mut path = pointer_to_path(&error.instance_path().to_string());
            // A missing property is named where it is missing, as the other formats do.
            if let jsonschema::error::ValidationErrorKind::Required {
                property: serde_json::Value::String(name),
            } = error.kind()
            {
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(name);
                let problem = "missing required field".to_owned();
                return Err(InvalidData { path, problem });
            }
            return Err(InvalidData {
                path,
                problem: error.to_string(),
            });
        }
        serde_json::to_writer(out, value).map_err(|e| InvalidData {
            path: String::new(),
            problem: e.to_string(),
        })
    }
}

/// `/items/0/price` → `items[0].price` (the path style of the other formats' errors).
fn pointer_to_path(pointer: &str) -> String {
    let mut path = String::new();
    for segment in pointer.split('/').skip(1) {
        let segment = segment.replace("~1", "/").replace("~0", "~");
        if !segment.is_empty() && segment.bytes().all(|b| b.is_ascii_digit()) {
            path.push_str(&format!("[{segment}]"));
        } else {
            if !path.is_empty() {
                path.push('.');
            }
            path.push_str(&segment);
        }
    }
    path
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pointers_become_paths() {
        assert_eq!(pointer_to_path(""), "");
        assert_eq!(pointer_to_path("/items/0/price"), "items[0].price");
        assert_eq!(pointer_to_path("/a~1b/c~0d"), "a/b.c~d");
    }
}
