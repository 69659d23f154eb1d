//! The deployment files cannot be run here (no Docker engine), so they are checked against the
//! repository: every host path docker-compose.yml mounts exists, the bridge config it mounts is
//! valid and listens on the ports it publishes, Prometheus scrapes that metrics port and loads
//! the rule file from where it is mounted, Grafana's provisioning points at the mounted
//! dashboard, and the Dockerfile exposes, health-checks and runs what the config says.

use std::collections::BTreeMap;
use std::path::Path;

use kafka_ws_bridge::config::{self, Plan};
use serde_yaml::Value;

fn yaml(path: &str) -> Value {
    serde_yaml::from_str(&std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}")))
        .unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_sequence()
        .map(|s| {
            s.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// host path → container path, for a service's bind mounts.
fn mounts(service: &Value) -> BTreeMap<String, String> {
    strings(&service["volumes"])
        .iter()
        .map(|v| {
            let mut parts = v.split(':');
            (
                parts.next().unwrap().to_owned(),
                parts.next().unwrap().to_owned(),
            )
        })
        .collect()
}

/// Loads a config the way the container would (compose's environment for its variables).
fn load_as_in_container(path: &str, environment: &Value) -> Plan {
    let text = std::fs::read_to_string(path).unwrap();
    config::load_str(&text, path, Path::new("deploy"), |name| {
        environment[name].as_str().map(str::to_owned)
    })
    .unwrap_or_else(|d| panic!("{path} is invalid in the container: {d:#?}"))
}

#[test]
fn compose_mounts_and_ports_match_the_repository() {
    let compose = yaml("docker-compose.yml");
    let services = &compose["services"];
    for (name, service) in services.as_mapping().unwrap() {
        let name = name.as_str().unwrap();
        for (host, container) in mounts(service) {
            assert!(
                host.starts_with("./"),
                "{name}: mount {host} is relative to the repository"
            );
            assert!(Path::new(&host).exists(), "{name}: {host} does not exist");
            assert!(container.starts_with('/'), "{name}: {container}");
        }
    }

    // The bridge: its mounted config is valid and listens where the ports are published.
    let bridge = &services["bridge"];
    let config_path = mounts(bridge)
        .into_iter()
        .find(|(_, container)| container == "/etc/kafka-ws-bridge/bridge.yaml")
        .map(|(host, _)| host)
        .expect("the bridge mounts its config at /etc/kafka-ws-bridge/bridge.yaml");
    let plan = load_as_in_container(config_path.trim_start_matches("./"), &bridge["environment"]);
    let published: Vec<String> = strings(&bridge["ports"]);
    for port in [plan.listen.port(), plan.metrics_listen.port()] {
        assert!(
            published.iter().any(|p| p.ends_with(&format!(":{port}"))),
            "port {port} not published: {published:?}"
        );
        assert!(
            plan.listen.ip().is_unspecified(),
            "listens on all interfaces inside the container"
        );
    }
    assert!(
        !plan.config.server.api_keys.is_empty(),
        "the compose stack enables the HTTP publish API"
    );
    // …and reaches Kafka by the address Kafka advertises.
    let advertised = services["kafka"]["environment"]["KAFKA_ADVERTISED_LISTENERS"]
        .as_str()
        .unwrap();
    let bootstrap = &plan.config.kafka.bootstrap_servers;
    assert!(
        advertised.ends_with(&format!("//{bootstrap}")),
        "{bootstrap} vs {advertised}"
    );
    // Topics are created from the same config before the bridge starts.
    let create = &services["create-topics"];
    assert_eq!(
        mounts(create).get(&config_path).map(String::as_str),
        Some("/etc/kafka-ws-bridge/bridge.yaml")
    );
    assert!(strings(&create["command"]).contains(&"create-topics".to_owned()));
    assert_eq!(
        bridge["depends_on"]["create-topics"]["condition"],
        "service_completed_successfully"
    );

    // Prometheus scrapes the metrics port and loads the alert rules where they are mounted.
    let prometheus = &services["prometheus"];
    let prometheus_mounts = mounts(prometheus);
    let prometheus_config = prometheus_mounts
        .iter()
        .find(|(_, c)| c.as_str() == "/etc/prometheus/prometheus.yml")
        .map(|(h, _)| h.trim_start_matches("./").to_owned())
        .expect("prometheus.yml mounted");
    let scrape = yaml(&prometheus_config);
    let targets = strings(&scrape["scrape_configs"][0]["static_configs"][0]["targets"]);
    assert_eq!(targets, [format!("bridge:{}", plan.metrics_listen.port())]);
    let rules = strings(&scrape["rule_files"]);
    for rule in &rules {
        let host = prometheus_mounts
            .iter()
            .find(|(_, c)| *c == rule)
            .map(|(h, _)| h.as_str());
        assert_eq!(
            host,
            Some("./dashboards/alerts.yml"),
            "{rule} is mounted from the repository's alert rules"
        );
    }

    // Grafana: the provisioned dashboard folder holds the mounted dashboard.
    let grafana = mounts(&services["grafana"]);
    let provider_dir = grafana
        .iter()
        .find(|(_, c)| c.as_str() == "/etc/grafana/provisioning/dashboards")
        .map(|(h, _)| h.trim_start_matches("./").to_owned())
        .unwrap();
    let provider = yaml(&format!("{provider_dir}/kafka-ws-bridge.yml"));
    let folder = provider["providers"][0]["options"]["path"]
        .as_str()
        .unwrap();
    let dashboard = grafana
        .iter()
        .find(|(h, _)| h.as_str() == "./dashboards/kafka-ws-bridge.json")
        .map(|(_, c)| c.clone())
        .unwrap();
    assert_eq!(Path::new(&dashboard).parent().unwrap(), Path::new(folder));
    let datasources = grafana
        .iter()
        .find(|(_, c)| c.as_str() == "/etc/grafana/provisioning/datasources")
        .map(|(h, _)| h.trim_start_matches("./").to_owned())
        .unwrap();
    let datasource = yaml(&format!("{datasources}/prometheus.yml"));
    assert_eq!(
        datasource["datasources"][0]["url"],
        "http://prometheus:9090"
    );
}

#[test]
fn the_dockerfile_matches_the_config_it_ships() {
    let dockerfile = std::fs::read_to_string("Dockerfile").unwrap();
    let plan = config::load_str(
        &std::fs::read_to_string("bridge.yaml").unwrap(),
        "bridge.yaml",
        Path::new("."),
        |_| None,
    )
    .unwrap();
    let exposed: Vec<u16> = dockerfile
        .lines()
        .filter_map(|l| l.strip_prefix("EXPOSE "))
        .flat_map(|ports| ports.split_whitespace().map(|p| p.parse().unwrap()))
        .collect();
    assert_eq!(exposed, [plan.listen.port(), plan.metrics_listen.port()]);
    let health = dockerfile
        .lines()
        .skip_while(|l| !l.starts_with("HEALTHCHECK"))
        .take(2)
        .collect::<String>();
    assert!(
        health.contains(&format!(
            "/dev/tcp/127.0.0.1/{}",
            plan.metrics_listen.port()
        )) && health.contains("/healthz"),
        "{health}"
    );
    assert!(dockerfile.contains("COPY bridge.yaml /etc/kafka-ws-bridge/bridge.yaml"));
    assert!(dockerfile.contains(r#"CMD ["run", "--config", "/etc/kafka-ws-bridge/bridge.yaml"]"#));
    assert!(dockerfile.contains("USER 10001"), "runs as a non-root user");
    assert!(
        dockerfile.contains("FROM rust:") && dockerfile.contains("FROM debian:"),
        "multi-stage"
    );
    // Everything the build needs is sent to the Docker build context.
    let ignored = std::fs::read_to_string(".dockerignore").unwrap();
    for needed in ["src", "clients", "bench/load", "Cargo.lock"] {
        assert!(
            !ignored.lines().any(|l| l.trim() == needed),
            "{needed} is excluded from the build context"
        );
    }
}
