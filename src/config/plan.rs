//! The result of loading: a [`Plan`] is a configuration that passed every check, plus what was
//! derived while checking (bound addresses, warnings) and the line of every key, so that
//! problems found later (e.g. by librdkafka) can still point into the file.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use super::diagnostic::{Diagnostic, Severity};
use super::source::{Node, NodeKind};
use super::Config;

/// A configuration that passed every check, with the values derived while checking.
#[derive(Debug, Clone)]
pub struct Plan {
    pub config: Config,
    /// The file it came from, for messages.
    pub file: String,
    /// Directory relative file paths in the config are resolved against.
    pub base_dir: PathBuf,
    pub listen: SocketAddr,
    pub metrics_listen: SocketAddr,
    pub warnings: Vec<Diagnostic>,
    /// Line of every key path, for diagnostics raised after loading (e.g. by librdkafka).
    pub(super) lines: HashMap<String, usize>,
}

impl Plan {
    /// A diagnostic about `path`, placed on its line.
    pub fn diagnostic(&self, severity: Severity, path: &str, message: String) -> Diagnostic {
        Diagnostic {
            severity,
            file: self.file.clone(),
            line: line_of(&self.lines, path),
            path: path.to_owned(),
            message,
        }
    }

    /// A path from the config resolved against the config file's directory.
    pub fn resolve_path(&self, path: &str) -> PathBuf {
        self.base_dir.join(path)
    }

    /// The consumer group of this instance.
    /// The topic of `auth.session_registry` when it applies: sessions are authenticated and
    /// counted (`check` warns that it is ignored otherwise).
    pub fn session_registry_topic(&self) -> Option<&str> {
        let auth = &self.config.auth;
        let registry = auth.session_registry.as_ref()?;
        (auth.mode == super::AuthMode::Jwt && auth.max_sessions_per_user > 0)
            .then_some(registry.topic.as_str())
    }

    pub fn group_id(&self) -> String {
        format!(
            "{}.{}",
            self.config.kafka.group_id_prefix, self.config.instance_id
        )
    }
}

/// Records the line of every key path under `node`.
pub(super) fn index_lines(node: &Node, path: &str, lines: &mut HashMap<String, usize>) {
    lines.insert(path.to_owned(), node.line);
    match &node.kind {
        NodeKind::Map(entries) => {
            for (key, key_line, value) in entries {
                let key_path = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                index_lines(value, &key_path, lines);
                lines.insert(key_path, *key_line);
            }
        }
        NodeKind::Seq(items) => {
            for (i, item) in items.iter().enumerate() {
                index_lines(item, &format!("{path}[{i}]"), lines);
            }
        }
        _ => {}
    }
}

/// The line of a key path, or of its nearest ancestor present in the file.
pub(super) fn line_of(lines: &HashMap<String, usize>, path: &str) -> usize {
    let mut path = path;
    loop {
        if let Some(line) = lines.get(path) {
            return *line;
        }
        match path.rfind(['.', '[']) {
            Some(cut) => path = &path[..cut],
            None => return lines.get("").copied().unwrap_or(1),
        }
    }
}

/// The deepest key whose value sits on `line`.
pub(super) fn path_at_line(node: &Node, path: &str, line: usize) -> Option<String> {
    match &node.kind {
        NodeKind::Map(entries) => entries.iter().find_map(|(key, key_line, value)| {
            let key_path = if path.is_empty() {
                key.clone()
            } else {
                format!("{path}.{key}")
            };
            path_at_line(value, &key_path, line).or((*key_line == line).then_some(key_path))
        }),
        NodeKind::Seq(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, item)| path_at_line(item, &format!("{path}[{i}]"), line)),
        _ => (node.line == line).then(|| path.to_owned()),
    }
}
