//! Reading `bridge.yaml`: `${VAR}` expansion, then a YAML tree in which every node remembers its
//! line, so that every later error can point at the line it is about. Values are substituted as
//! text before parsing (like docker-compose), so a value holding YAML syntax (`: `, `#`) must be
//! quoted in the file: `secret: "${BRIDGE_JWT_SECRET}"`.

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};
use yaml_rust2::Yaml;

/// A YAML value with the line it starts on (1-based).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Node {
    pub kind: NodeKind,
    pub line: usize,
}

/// The YAML data model the config uses; mapping keys are strings.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum NodeKind {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    /// Entries in file order: (key, key's line, value).
    Map(Vec<(String, usize, Node)>),
}

impl Node {
    /// Human name of this node's type, for "expected X, found Y" messages.
    pub fn type_name(&self) -> &'static str {
        match self.kind {
            NodeKind::Null => "nothing (null)",
            NodeKind::Bool(_) => "a boolean",
            NodeKind::Int(_) => "an integer",
            NodeKind::Float(_) => "a number",
            NodeKind::Str(_) => "a string",
            NodeKind::Seq(_) => "a list",
            NodeKind::Map(_) => "a mapping",
        }
    }

    /// The value of a mapping key, if this is a mapping that has it.
    pub fn get(&self, key: &str) -> Option<&Node> {
        match &self.kind {
            NodeKind::Map(entries) => entries.iter().find(|(k, _, _)| k == key).map(|(_, _, v)| v),
            _ => None,
        }
    }

    /// Converts to the serde data model, for the typed load.
    pub fn to_yaml_value(&self) -> serde_yaml::Value {
        use serde_yaml::Value;
        match &self.kind {
            NodeKind::Null => Value::Null,
            NodeKind::Bool(b) => Value::Bool(*b),
            NodeKind::Int(i) => Value::Number((*i).into()),
            NodeKind::Float(f) => Value::Number((*f).into()),
            NodeKind::Str(s) => Value::String(s.clone()),
            NodeKind::Seq(items) => {
                Value::Sequence(items.iter().map(Node::to_yaml_value).collect())
            }
            NodeKind::Map(entries) => Value::Mapping(
                entries
                    .iter()
                    .map(|(k, _, v)| (Value::String(k.clone()), v.to_yaml_value()))
                    .collect(),
            ),
        }
    }
}

/// A problem found while reading the file, before any key is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SourceError {
    pub line: usize,
    pub message: String,
}

/// Replaces `${VAR}` and `${VAR:-default}` with values from `lookup`; `$$` is a literal `$`.
/// Comments are left alone. Every unset variable without a default is reported (and replaced
/// by nothing so that parsing can go on and find the other errors).
pub(crate) fn expand_env(
    text: &str,
    lookup: impl Fn(&str) -> Option<String>,
) -> (String, Vec<SourceError>) {
    let mut out = String::with_capacity(text.len());
    let mut errors = Vec::new();
    for (index, line) in text.split_inclusive('\n').enumerate() {
        let (code, comment) = split_comment(line);
        expand_line(code, index + 1, &lookup, &mut out, &mut errors);
        out.push_str(comment);
    }
    (out, errors)
}

/// Splits a line into its content and its trailing `# comment` (with the line end). A `#`
/// starts a comment at the line start or after whitespace, outside quotes; a quote opens only
/// where a scalar can start, so `it's` is not a quote.
fn split_comment(line: &str) -> (&str, &str) {
    let bytes = line.as_bytes();
    let mut quote: Option<u8> = None;
    let mut i = 0;
    while i < bytes.len() {
        let byte = bytes[i];
        let after_space = i == 0 || bytes[i - 1].is_ascii_whitespace();
        match quote {
            Some(b'"') if byte == b'\\' => i += 1,
            Some(q) if byte == q => quote = None,
            Some(_) => {}
            None if byte == b'#' && after_space => return line.split_at(i),
            None if (byte == b'"' || byte == b'\'')
                && (i == 0 || b" \t[{,:-".contains(&bytes[i - 1])) =>
            {
                quote = Some(byte)
            }
            None => {}
        }
        i += 1;
    }
    let content = line.trim_end_matches(['\n', '\r']);
    line.split_at(content.len())
}

fn expand_line(
    mut rest: &str,
    line: usize,
    lookup: &impl Fn(&str) -> Option<String>,
    out: &mut String,
    errors: &mut Vec<SourceError>,
) {
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let tail = &rest[pos..];
        if let Some(after) = tail.strip_prefix("$$") {
            out.push('$');
            rest = after;
            continue;
        }
        let Some(body) = tail.strip_prefix("${") else {
            out.push('$');
            rest = &tail[1..];
            continue;
        };
        let Some(end) = body.find('}') else {
            errors.push(SourceError {
                line,
                message: "unterminated `${` (write `$$` for a literal `$`)".into(),
            });
            out.push_str("${");
            rest = body;
            continue;
        };
        let reference = &body[..end];
        let (name, default) = match reference.split_once(":-") {
            Some((name, default)) => (name, Some(default)),
            None => (reference, None),
        };
        if !is_var_name(name) {
            errors.push(SourceError {
                line,
                message: format!(
                    "`${{{reference}}}`: expected a variable name of letters, digits and `_`"
                ),
            });
        } else {
            // Like the shell: `${VAR:-default}` also applies the default to an empty VAR.
            let value = lookup(name).filter(|v| !(v.is_empty() && default.is_some()));
            match value.or_else(|| default.map(str::to_owned)) {
                Some(value) => out.push_str(&value),
                None => errors.push(SourceError {
                    line,
                    message: format!(
                        "environment variable {name} is not set and `${{{name}}}` has no default (write `${{{name}:-default}}` to give one)"
                    ),
                }),
            }
        }
        rest = &body[end + 1..];
    }
    out.push_str(rest);
}

fn is_var_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Parses one YAML document into a [`Node`] tree. An empty document is an empty mapping.
pub(crate) fn parse_yaml(text: &str) -> Result<Node, SourceError> {
    let mut builder = TreeBuilder::default();
    let mut parser = Parser::new_from_str(text);
    parser.load(&mut builder, false).map_err(|e| SourceError {
        line: e.marker().line(),
        message: format!("invalid YAML: {}", e.info()),
    })?;
    if let Some(error) = builder.error {
        return Err(error);
    }
    Ok(builder.root.unwrap_or(Node {
        kind: NodeKind::Map(Vec::new()),
        line: 1,
    }))
}

/// A collection under construction: the node, its anchor id, and (for mappings) a key with its
/// line waiting for its value.
type OpenCollection = (Node, usize, Option<(String, usize)>);

/// Builds the tree from parser events. Anchors are resolved by copying the anchored node.
#[derive(Default)]
struct TreeBuilder {
    stack: Vec<OpenCollection>,
    anchors: Vec<(usize, Node)>,
    root: Option<Node>,
    error: Option<SourceError>,
}

impl TreeBuilder {
    fn fail(&mut self, line: usize, message: String) {
        if self.error.is_none() {
            self.error = Some(SourceError { line, message });
        }
    }

    /// Attaches a finished node to its parent (or makes it the root).
    fn attach(&mut self, node: Node, anchor: usize) {
        if anchor > 0 {
            self.anchors.push((anchor, node.clone()));
        }
        let Some((parent, _, pending_key)) = self.stack.last_mut() else {
            self.root = Some(node);
            return;
        };
        match &mut parent.kind {
            NodeKind::Seq(items) => items.push(node),
            NodeKind::Map(entries) => match pending_key.take() {
                Some((key, key_line)) => {
                    // An empty value is marked where the next token starts; it belongs to its key.
                    let node = if node.kind == NodeKind::Null {
                        Node {
                            line: key_line,
                            ..node
                        }
                    } else {
                        node
                    };
                    if entries.iter().any(|(k, _, _)| *k == key) {
                        self.fail(key_line, format!("duplicate key `{key}`"));
                    } else {
                        entries.push((key, key_line, node));
                    }
                }
                None => match node.kind {
                    NodeKind::Str(key) => *pending_key = Some((key, node.line)),
                    NodeKind::Null => *pending_key = Some((String::new(), node.line)),
                    NodeKind::Bool(b) => *pending_key = Some((b.to_string(), node.line)),
                    NodeKind::Int(i) => *pending_key = Some((i.to_string(), node.line)),
                    NodeKind::Float(f) => *pending_key = Some((f.to_string(), node.line)),
                    NodeKind::Seq(_) | NodeKind::Map(_) => {
                        self.fail(node.line, "mapping keys must be plain strings".into())
                    }
                },
            },
            _ => unreachable!("only collections are pushed on the stack"),
        }
    }
}

impl MarkedEventReceiver for TreeBuilder {
    fn on_event(&mut self, event: Event, mark: Marker) {
        let line = mark.line();
        match event {
            Event::SequenceStart(anchor, _) => self.stack.push((
                Node {
                    kind: NodeKind::Seq(Vec::new()),
                    line,
                },
                anchor,
                None,
            )),
            Event::MappingStart(anchor, _) => self.stack.push((
                Node {
                    kind: NodeKind::Map(Vec::new()),
                    line,
                },
                anchor,
                None,
            )),
            Event::SequenceEnd | Event::MappingEnd => {
                if let Some((node, anchor, _)) = self.stack.pop() {
                    self.attach(node, anchor);
                }
            }
            Event::Scalar(value, style, anchor, _tag) => {
                let kind = if style == TScalarStyle::Plain {
                    match Yaml::from_str(&value) {
                        Yaml::Null => NodeKind::Null,
                        Yaml::Boolean(b) => NodeKind::Bool(b),
                        Yaml::Integer(i) => NodeKind::Int(i),
                        Yaml::Real(r) => match r.parse::<f64>() {
                            Ok(f) => NodeKind::Float(f),
                            Err(_) => NodeKind::Str(value),
                        },
                        _ => NodeKind::Str(value),
                    }
                } else {
                    NodeKind::Str(value)
                };
                self.attach(Node { kind, line }, anchor);
            }
            Event::Alias(id) => match self.anchors.iter().rev().find(|(a, _)| *a == id) {
                Some((_, node)) => {
                    let node = Node {
                        kind: node.kind.clone(),
                        line,
                    };
                    self.attach(node, 0);
                }
                None => self.fail(line, "alias to an unknown anchor".into()),
            },
            Event::Nothing
            | Event::StreamStart
            | Event::StreamEnd
            | Event::DocumentStart
            | Event::DocumentEnd => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "HOST" => Some("pod-1".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn expands_set_variables_and_defaults() {
        let (out, errors) = expand_env(
            "a: ${HOST}\nb: ${NOPE:-x}\nc: ${EMPTY:-y}\nd: '${EMPTY}'\n",
            env,
        );
        assert_eq!(out, "a: pod-1\nb: x\nc: y\nd: ''\n");
        assert!(errors.is_empty());
    }

    #[test]
    fn dollar_dollar_is_literal() {
        let (out, errors) = expand_env("a: $${HOST} $5", env);
        assert_eq!(out, "a: ${HOST} $5");
        assert!(errors.is_empty());
    }

    #[test]
    fn reports_every_unset_variable_with_its_line() {
        let (_, errors) = expand_env("a: 1\nb: ${ONE}\nc: ${TWO}\n", env);
        assert_eq!(errors.len(), 2);
        assert_eq!(errors[0].line, 2);
        assert!(
            errors[0].message.contains("ONE is not set"),
            "{}",
            errors[0].message
        );
        assert_eq!(errors[1].line, 3);
        assert!(errors[1].message.contains("TWO"));
    }

    #[test]
    fn comments_are_not_expanded() {
        let text = "a: ${HOST} # uses ${NOPE}\n# ${NOPE}\nb: \"x # ${HOST}\" # ${NOPE}\nc: it's ${HOST} # ${NOPE}\n";
        let (out, errors) = expand_env(text, env);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(out, "a: pod-1 # uses ${NOPE}\n# ${NOPE}\nb: \"x # pod-1\" # ${NOPE}\nc: it's pod-1 # ${NOPE}\n");
    }

    #[test]
    fn reports_bad_references() {
        let (_, errors) = expand_env("a: ${}\nb: ${1X}\nc: ${OPEN\n", env);
        assert_eq!(errors.iter().map(|e| e.line).collect::<Vec<_>>(), [1, 2, 3]);
    }

    #[test]
    fn tree_keeps_lines_and_types() {
        let node = parse_yaml("a: 1\nb:\n  - x\n  - 'true'\nc: true\nd: ~\ne: 1.5\n").unwrap();
        assert_eq!(node.get("a").unwrap().kind, NodeKind::Int(1));
        let b = node.get("b").unwrap();
        let NodeKind::Seq(items) = &b.kind else {
            panic!()
        };
        assert_eq!(items[0].line, 3);
        assert_eq!(items[1].kind, NodeKind::Str("true".into()));
        assert_eq!(node.get("c").unwrap().kind, NodeKind::Bool(true));
        assert_eq!(node.get("d").unwrap().kind, NodeKind::Null);
        assert_eq!(node.get("e").unwrap().kind, NodeKind::Float(1.5));
    }

    #[test]
    fn duplicate_keys_and_syntax_errors_have_lines() {
        let err = parse_yaml("a: 1\nb: 2\na: 3\n").unwrap_err();
        assert_eq!((err.line, err.message.as_str()), (3, "duplicate key `a`"));
        let err = parse_yaml("a: [1, 2\nb: 3\n").unwrap_err();
        assert!(err.message.starts_with("invalid YAML"), "{}", err.message);
    }

    #[test]
    fn anchors_are_copied() {
        let node = parse_yaml("x: &v {a: 1}\ny: *v\n").unwrap();
        assert_eq!(
            node.get("y").unwrap().get("a").unwrap().kind,
            NodeKind::Int(1)
        );
    }
}
