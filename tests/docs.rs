//! The docs cannot drift from the code: the configuration reference in docs/configuration.md is
//! generated from the config structs (their doc comments), and every key also appears in the
//! commented example bridge.yaml. Regenerate with `UPDATE_DOCS=1 cargo test --test docs`.

use kafka_ws_bridge::config::{documented_keys, KeyDoc};

const BEGIN: &str = "<!-- BEGIN GENERATED REFERENCE: UPDATE_DOCS=1 cargo test --test docs -->";
const END: &str = "<!-- END GENERATED REFERENCE -->";

fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

fn render(keys: &[KeyDoc]) -> String {
    let mut out = String::from("| Key | Accepts | Default | Description |\n|---|---|---|---|\n");
    for key in keys {
        let default = match (&key.default, key.required) {
            (_, true) => "**required**".to_owned(),
            (Some(default), false) => format!("`{default}`"),
            (None, false) => "—".to_owned(),
        };
        out.push_str(&format!(
            "| `{}` | {} | {} | {} |\n",
            key.path,
            cell(&key.accepts),
            cell(&default),
            cell(&key.description)
        ));
    }
    out
}

#[test]
fn configuration_reference_is_generated_from_the_config_structs() {
    let path = "docs/configuration.md";
    let doc = std::fs::read_to_string(path).expect("docs/configuration.md exists");
    let (head, rest) = doc.split_once(BEGIN).expect("begin marker");
    let (current, tail) = rest.split_once(END).expect("end marker");
    let generated = format!("\n{}", render(&documented_keys()));
    if std::env::var_os("UPDATE_DOCS").is_some() {
        std::fs::write(path, format!("{head}{BEGIN}{generated}{END}{tail}")).unwrap();
        return;
    }
    assert!(
        current == generated,
        "docs/configuration.md is out of date with the config structs; regenerate it with\n  UPDATE_DOCS=1 cargo test --test docs"
    );
}

#[test]
fn every_key_appears_in_the_example_config() {
    let example = std::fs::read_to_string("bridge.yaml").unwrap();
    for key in documented_keys() {
        let leaf = key.path.rsplit(['.', ']']).next().unwrap();
        assert!(
            example.contains(&format!("{leaf}:")),
            "`{}` is not shown (not even in a comment) in bridge.yaml",
            key.path
        );
    }
}

const METRICS_BEGIN: &str =
    "<!-- BEGIN GENERATED METRICS: UPDATE_DOCS=1 cargo test --test docs -->";
const METRICS_END: &str = "<!-- END GENERATED METRICS -->";

/// The metric table, from the registry itself (every family the daemon can export).
fn render_metrics() -> String {
    use kafka_ws_bridge::metrics::Metrics;
    let metrics = Metrics::new(&["CHANNEL"], &["TOPIC"], &["INBOUND"]);
    // Families whose series appear only once something happened.
    metrics.consumer_lag.with_label_values(&["TOPIC", "0"]);
    let mut out = String::from("| Metric | Type | Labels | Meaning |\n|---|---|---|---|\n");
    let mut families = metrics.registry.gather();
    families.sort_by(|a, b| a.name().cmp(b.name()));
    for family in families {
        let labels: Vec<String> = family
            .get_metric()
            .first()
            .map(|m| {
                m.get_label()
                    .iter()
                    .map(|l| format!("`{}`", l.name()))
                    .collect()
            })
            .unwrap_or_default();
        out.push_str(&format!(
            "| `{}` | {} | {} | {} |\n",
            family.name(),
            format!("{:?}", family.get_field_type()).to_lowercase(),
            if labels.is_empty() {
                "—".to_owned()
            } else {
                labels.join(", ")
            },
            cell(family.help())
        ));
    }
    out
}

#[test]
fn metrics_reference_is_generated_from_the_registry() {
    let path = "docs/metrics.md";
    let doc = std::fs::read_to_string(path).expect("docs/metrics.md exists");
    let (head, rest) = doc.split_once(METRICS_BEGIN).expect("begin marker");
    let (current, tail) = rest.split_once(METRICS_END).expect("end marker");
    let generated = format!("\n{}", render_metrics());
    if std::env::var_os("UPDATE_DOCS").is_some() {
        std::fs::write(
            path,
            format!("{head}{METRICS_BEGIN}{generated}{METRICS_END}{tail}"),
        )
        .unwrap();
        return;
    }
    assert!(
        current == generated,
        "docs/metrics.md is out of date with src/metrics/mod.rs; regenerate it with\n  UPDATE_DOCS=1 cargo test --test docs"
    );
}
