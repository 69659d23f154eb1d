//! The layering written in `src/lib.rs`, enforced: reads every file under `src/`, finds which
//! top-level modules it names (`crate::x` in the library, `kafka_ws_bridge::x` in `main.rs`)
//! and which outside crates it uses, and fails on an arrow the layers do not allow:
//!
//! ```text
//! main → app → {ws, ops} → {session, kafka} → {outbound, sessions} → {hub, inbound}
//!      → {catalogue, outbox, registry} → {metrics, state} → {auth, protocol, transform}
//!      → config → {cli, predicate, server}
//! ```
//!
//! One layer per floor of the import graph (`farm-studio look`): a module may name modules of
//! any layer below, never above; within a layer the arrows must not form a loop. `src/lib.rs`
//! states the same layers, rendered from [`LAYERS`]. Only `kafka` touches librdkafka; only `ws`,
//! `ops`, `server` and `app` touch the HTTP stack, only `ws` the WebSocket library.
//!
//! Two more rules on the shape of `src/`: every file stays under 500 lines (unit tests
//! included), and the layout block of `docs/development.md` lists exactly the top-level modules
//! there, naming only paths that exist.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

const LAYERS: &[&[&str]] = &[
    &["main"],
    &["app"],
    &["ws", "ops"],
    &["session", "kafka"],
    &["outbound", "sessions"],
    &["hub", "inbound"],
    &["catalogue", "outbox", "registry"],
    &["metrics", "state"],
    &["auth", "protocol", "transform"],
    &["config"],
    &["cli", "predicate", "server"],
];

/// Outside crates only some modules may use: (crate path prefix, modules allowed).
const CONFINED: &[(&str, &[&str])] = &[
    ("rdkafka::", &["kafka"]),
    ("warp::", &["ws", "ops", "server", "app"]),
    ("hyper", &["ws", "server"]),
    ("tokio_tungstenite", &["ws"]),
];

/// One source file: the top-level module it belongs to and its text.
struct Source {
    path: String,
    module: String,
    text: String,
}

/// What is wrong with the sources, one line each.
fn violations(sources: &[Source]) -> Vec<String> {
    let layer_of: BTreeMap<&str, usize> = LAYERS
        .iter()
        .enumerate()
        .flat_map(|(i, layer)| layer.iter().map(move |m| (*m, i)))
        .collect();
    let mut problems = Vec::new();
    let mut arrows: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let tests = test_only(sources);
    for source in sources.iter().filter(|s| !tests.contains(&s.path)) {
        let Some(&from_layer) = layer_of.get(source.module.as_str()) else {
            problems.push(format!(
                "{}: module `{}` is in no layer: add it to LAYERS and to src/lib.rs's layout",
                source.path, source.module
            ));
            continue;
        };
        for (line_no, line) in code_lines(&source.text) {
            for target in named_modules(line) {
                if target == source.module {
                    continue;
                }
                match layer_of.get(target.as_str()) {
                    Some(&to_layer) if to_layer < from_layer => problems.push(format!(
                        "{}:{line_no}: `{}` names `{target}`, a layer above it: {}",
                        source.path,
                        source.module,
                        line.trim()
                    )),
                    Some(_) => {
                        arrows
                            .entry(source.module.clone())
                            .or_default()
                            .insert(target);
                    }
                    None => problems.push(format!(
                        "{}:{line_no}: names `{target}`, which is in no layer",
                        source.path
                    )),
                }
            }
            for (prefix, allowed) in CONFINED {
                if uses_crate(line, prefix) && !allowed.contains(&source.module.as_str()) {
                    problems.push(format!(
                        "{}:{line_no}: `{}` uses `{prefix}`, which only {allowed:?} may use",
                        source.path, source.module
                    ));
                }
            }
        }
    }
    problems.extend(loops(&arrows));
    problems
}

/// Lines without comments (so doc links do not count), numbered from 1, without what only tests
/// compile: an inline test module (`#[cfg(test)]` then `mod tests {`) ends the file's code, a
/// `#[cfg(test)]` item of one line is left out (`mod tests;` declares a file [`test_only`]
/// leaves out). Tests may use what they test with.
fn code_lines(text: &str) -> Vec<(usize, &str)> {
    let lines: Vec<&str> = text.lines().collect();
    let mut code = Vec::new();
    let mut skip_next = false;
    for (i, line) in lines.iter().enumerate() {
        if std::mem::take(&mut skip_next) {
            continue;
        }
        if line.trim() == "#[cfg(test)]" {
            match lines.get(i + 1).map(|next| next.trim_end()) {
                // An inline test module: the rest of the file is tests.
                Some(next) if next.ends_with('{') => break,
                // One test-only item (`use …;`, `mod tests;`).
                _ => skip_next = true,
            }
            continue;
        }
        code.push((i + 1, line.split("//").next().unwrap_or_default()));
    }
    code
}

/// Files that only tests compile: declared as `#[cfg(test)] mod name;` by their parent.
fn test_only(sources: &[Source]) -> BTreeSet<String> {
    let mut files = BTreeSet::new();
    for source in sources {
        let lines: Vec<&str> = source.text.lines().collect();
        for pair in lines.windows(2) {
            let declared = pair[1]
                .trim()
                .strip_prefix("mod ")
                .and_then(|rest| rest.strip_suffix(';'));
            if let (true, Some(name)) = (pair[0].trim() == "#[cfg(test)]", declared) {
                let dir = match source.path.strip_suffix("/mod.rs") {
                    Some(dir) => dir.to_owned(),
                    None => source.path.trim_end_matches(".rs").to_owned(),
                };
                files.insert(format!("{dir}/{name}.rs"));
                files.insert(format!("{dir}/{name}/mod.rs"));
            }
        }
    }
    files
}

/// Top-level modules named on a line: `crate::x` or `kafka_ws_bridge::x`.
fn named_modules(line: &str) -> Vec<String> {
    let mut found = Vec::new();
    for prefix in ["crate::", "kafka_ws_bridge::"] {
        let mut rest = line;
        while let Some(at) = rest.find(prefix) {
            let before = rest[..at].chars().last();
            rest = &rest[at + prefix.len()..];
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                continue;
            }
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                found.push(name);
            }
        }
    }
    found
}

fn uses_crate(line: &str, prefix: &str) -> bool {
    line.match_indices(prefix).any(|(at, _)| {
        !line[..at]
            .chars()
            .last()
            .is_some_and(|c| c.is_alphanumeric() || c == '_')
    })
}

/// Loops among modules (which can only be within one layer).
fn loops(arrows: &BTreeMap<String, BTreeSet<String>>) -> Vec<String> {
    let mut found = BTreeSet::new();
    for start in arrows.keys() {
        let mut path = vec![start.clone()];
        walk(arrows, start, &mut path, &mut found);
    }
    found
        .into_iter()
        .map(|cycle| format!("modules import each other in a loop: {cycle}"))
        .collect()
}

fn walk(
    arrows: &BTreeMap<String, BTreeSet<String>>,
    at: &str,
    path: &mut Vec<String>,
    found: &mut BTreeSet<String>,
) {
    for next in arrows.get(at).into_iter().flatten() {
        if *next == path[0] {
            // Report each loop once, from its smallest module.
            if path.iter().all(|m| m >= &path[0]) {
                found.insert(format!("{} → {}", path.join(" → "), path[0]));
            }
        } else if !path.contains(next) {
            path.push(next.clone());
            walk(arrows, next, path, found);
            path.pop();
        }
    }
}

/// Every `.rs` file under `dir`, with its top-level module (`src/hub/replay.rs` → `hub`).
fn read_sources(root: &Path, dir: &Path, out: &mut Vec<Source>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            read_sources(root, &path, out);
            continue;
        }
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let relative = path.strip_prefix(root).unwrap();
        let first = relative.components().next().unwrap().as_os_str();
        let module = first.to_string_lossy().trim_end_matches(".rs").to_owned();
        if module == "lib" {
            continue;
        }
        out.push(Source {
            path: format!("src/{}", relative.display()),
            module,
            text: std::fs::read_to_string(&path).unwrap(),
        });
    }
}

#[test]
fn every_import_follows_the_layers() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut sources = Vec::new();
    read_sources(&root, &root, &mut sources);
    assert!(sources.len() > 20, "read {} files", sources.len());
    let problems = violations(&sources);
    assert!(
        problems.is_empty(),
        "{} import(s) break the layering of src/lib.rs:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

#[test]
fn the_lib_docs_state_the_same_layers() {
    let lib =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/lib.rs")).unwrap();
    let rendered = LAYERS
        .iter()
        .map(|layer| match layer {
            [one] => format!("//! {one}"),
            many => format!("//! {{{}}}", many.join(", ")),
        })
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        lib.contains(&rendered),
        "src/lib.rs does not state the layers, one per line from the top:\n{rendered}"
    );
    for line in lib.lines() {
        if let Some(module) = line
            .strip_prefix("pub mod ")
            .and_then(|m| m.strip_suffix(';'))
        {
            assert!(
                LAYERS.iter().any(|layer| layer.contains(&module)),
                "src/lib.rs declares `{module}`, which no layer holds"
            );
        }
    }
    for layer in LAYERS {
        for module in *layer {
            if *module != "main" {
                assert!(
                    lib.contains(&format!("pub mod {module};")),
                    "src/lib.rs does not declare `{module}`"
                );
            }
            assert!(
                lib.contains(module),
                "src/lib.rs's layout does not mention `{module}`"
            );
        }
    }
}

/// The checker itself: each kind of wrong import is caught (so a passing run means something).
#[test]
fn the_checker_catches_an_upward_import_a_loop_and_a_confined_crate() {
    let source = |path: &str, module: &str, text: &str| Source {
        path: path.into(),
        module: module.into(),
        text: text.into(),
    };
    let clean = [
        source("src/hub/mod.rs", "hub", "use crate::outbox::Outbox;\n"),
        source("src/outbox/mod.rs", "outbox", "use crate::config::X;\n"),
    ];
    assert_eq!(violations(&clean), Vec::<String>::new());
    let upward = [source(
        "src/hub/mod.rs",
        "hub",
        "use crate::ws::WsContext; // the hub must not know the client listener\n",
    )];
    assert_eq!(
        violations(&upward),
        ["src/hub/mod.rs:1: `hub` names `ws`, a layer above it: use crate::ws::WsContext;"]
    );
    // Two modules of one layer.
    let looped = [
        source("src/metrics/mod.rs", "metrics", "use crate::state::Held;\n"),
        source("src/state.rs", "state", "fn f() { crate::metrics::x(); }\n"),
    ];
    assert_eq!(
        violations(&looped),
        ["modules import each other in a loop: metrics → state → metrics"]
    );
    let confined = [source(
        "src/ops.rs",
        "ops",
        "use rdkafka::consumer::Consumer;\n",
    )];
    assert_eq!(violations(&confined).len(), 1);
    let commented = [source(
        "src/hub/mod.rs",
        "hub",
        "/// See [`crate::ws::WsContext`].\nfn f() {}\n#[cfg(test)]\nuse crate::app::X;\n",
    )];
    assert_eq!(violations(&commented), Vec::<String>::new());
    // A test module declared at the top of a file does not hide the code below it; the file
    // it declares is left out.
    let declared = [
        source(
            "src/hub/mod.rs",
            "hub",
            "#[cfg(test)]\nmod tests;\n\nuse crate::ws::WsContext;\n",
        ),
        source("src/hub/tests.rs", "hub", "use crate::app::Bridge;\n"),
    ];
    assert_eq!(
        violations(&declared),
        ["src/hub/mod.rs:4: `hub` names `ws`, a layer above it: use crate::ws::WsContext;"]
    );
}

/// The most lines a file under `src/` may have (unit tests included: big test modules live in a
/// `tests.rs` beside the code).
const MAX_LINES: usize = 500;

/// Files of `MAX_LINES` lines or more, one line each: `src/x.rs: 541 lines`.
fn oversized(sources: &[Source]) -> Vec<String> {
    sources
        .iter()
        .map(|s| (s, s.text.lines().count()))
        .filter(|(_, lines)| *lines >= MAX_LINES)
        .map(|(s, lines)| format!("{}: {lines} lines", s.path))
        .collect()
}

#[test]
fn every_source_file_is_under_500_lines() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut sources = Vec::new();
    read_sources(&root, &root, &mut sources);
    // `read_sources` leaves lib.rs out (it is no module of the layers); it counts here too.
    sources.push(Source {
        path: "src/lib.rs".into(),
        module: "lib".into(),
        text: std::fs::read_to_string(root.join("lib.rs")).unwrap(),
    });
    let problems = oversized(&sources);
    assert!(
        problems.is_empty(),
        "{} file(s) under src/ at or over {MAX_LINES} lines; split them:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

/// The fenced block after `## Layout` in a markdown text.
fn layout_block(markdown: &str) -> Option<Vec<&str>> {
    let after = markdown.split("\n## Layout\n").nth(1)?;
    let mut lines = after.lines().skip_while(|l| !l.starts_with("```")).skip(1);
    let block: Vec<&str> = lines
        .by_ref()
        .take_while(|l| !l.starts_with("```"))
        .collect();
    Some(block)
}

/// Each word of `line` that names a file or folder (`wire.rs`, `avro/`, `kafka/side.rs`,
/// `docs/performance.md`), with surrounding punctuation taken off.
fn named_paths(line: &str) -> Vec<&str> {
    line.split_whitespace()
        .map(|w| w.trim_matches(|c: char| matches!(c, '(' | ')' | ',' | ';' | ':' | '`')))
        .filter(|w| {
            w.ends_with(".rs")
                || (w.ends_with('/') && w.len() > 1)
                || (w.contains('/') && w.rsplit('/').next().is_some_and(|f| f.contains('.')))
        })
        .filter(|w| {
            w.starts_with(|c: char| c.is_ascii_lowercase())
                && w.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "_./-".contains(c))
        })
        .collect()
}

/// `src/x.rs` and `src/x/` → `x`; any other path → `None`.
fn top_level_name(path: &str) -> Option<&str> {
    let rest = path.strip_prefix("src/")?;
    let name = rest
        .strip_suffix('/')
        .or_else(|| rest.strip_suffix(".rs"))?;
    (!name.contains('/')).then_some(name)
}

/// What is wrong with a layout block, one line each: a top-level module of `src/` (`modules`,
/// as `src/x.rs` or `src/x/`) that no line starts with, and a named path that does not exist.
/// An unindented line starts with its entry's path; other paths are looked for beside that
/// entry, under `src/`, or from the repository root. `exists` answers for a path from the root.
fn layout_problems(
    block: &[&str],
    modules: &BTreeSet<String>,
    exists: &dyn Fn(&str) -> bool,
) -> Vec<String> {
    let mut problems = Vec::new();
    let mut listed = BTreeSet::new();
    let mut entry_dir = String::new();
    for line in block {
        let mut rest = *line;
        if !line.starts_with(char::is_whitespace) {
            let entry = line.split_whitespace().next().unwrap_or_default();
            rest = &line[entry.len()..];
            if !exists(entry) {
                problems.push(format!("the layout names `{entry}`, which does not exist"));
            } else if let Some(name) = top_level_name(entry) {
                listed.insert(name.to_owned());
            }
            entry_dir = match entry.rsplit_once('/') {
                Some((dir, _)) => format!("{dir}/"),
                None => String::new(),
            };
        }
        for path in named_paths(rest) {
            let found = [
                format!("{entry_dir}{path}"),
                format!("src/{path}"),
                path.to_owned(),
            ]
            .iter()
            .any(|candidate| exists(candidate));
            if !found {
                problems.push(format!(
                    "the layout names `{path}` (in `{}`), which does not exist",
                    line.trim()
                ));
            }
        }
    }
    for module in modules {
        if !top_level_name(module).is_some_and(|name| listed.contains(name)) {
            problems.push(format!("the layout does not list `{module}`"));
        }
    }
    problems
}

/// The top-level modules of `src/` as the layout spells them: `src/x.rs`, or `src/x/` for a
/// module that is a folder with its `mod.rs` (a module with both, `transform.rs` beside
/// `transform/`, is its file).
fn top_level_modules(src: &Path) -> BTreeSet<String> {
    std::fs::read_dir(src)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter_map(|path| {
            let name = path.file_name()?.to_str()?.to_owned();
            if path.is_dir() && !src.join(format!("{name}.rs")).exists() {
                Some(format!("src/{name}/"))
            } else if name.ends_with(".rs") {
                Some(format!("src/{name}"))
            } else {
                None
            }
        })
        .collect()
}

#[test]
fn the_development_layout_names_exactly_the_modules_in_src() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let docs = std::fs::read_to_string(root.join("docs/development.md")).unwrap();
    let block = layout_block(&docs).expect("docs/development.md has a `## Layout` code block");
    let modules = top_level_modules(&root.join("src"));
    assert!(modules.len() > 10, "found {modules:?}");
    let problems = layout_problems(&block, &modules, &|path| root.join(path).exists());
    assert!(
        problems.is_empty(),
        "docs/development.md's layout does not match src/:\n{}",
        problems.join("\n")
    );
}

/// The two checks above catch what they are for.
#[test]
fn the_size_and_layout_checks_catch_a_long_file_a_missing_module_and_a_stale_path() {
    let long = Source {
        path: "src/outbox/mod.rs".into(),
        module: "outbox".into(),
        text: "fn f() {}\n".repeat(541),
    };
    let short = Source {
        path: "src/hub/mod.rs".into(),
        module: "hub".into(),
        text: "fn f() {}\n".repeat(499),
    };
    assert_eq!(oversized(&[long, short]), ["src/outbox/mod.rs: 541 lines"]);

    let docs = "# Dev\n\n## Layout\n\n```\nsrc/main.rs   entry\nsrc/hub/      fan-out; replay.rs: replays\n              and conflate.rs\nsrc/gone.rs   removed\n```\n\n## Tests\n";
    let block = layout_block(docs).unwrap();
    assert_eq!(block.len(), 4);
    let modules: BTreeSet<String> = ["src/main.rs", "src/hub/", "src/state.rs"]
        .map(String::from)
        .into();
    let exists = |p: &str| ["src/main.rs", "src/hub/", "src/hub/replay.rs"].contains(&p);
    assert_eq!(
        layout_problems(&block, &modules, &exists),
        [
            "the layout names `conflate.rs` (in `and conflate.rs`), which does not exist",
            "the layout names `src/gone.rs`, which does not exist",
            "the layout does not list `src/state.rs`",
        ]
    );
}
