//! What `check`, `run` and `create-topics` need before anything starts: the config with every
//! check a part of the bridge can make without running (librdkafka's opinion of
//! `kafka.properties`, whether the JWT key and the TLS files load).

use std::path::Path;

use crate::auth::{Authenticator, SetupError};
use crate::config::{self, Diagnostic, Plan, Severity};
use crate::kafka;

pub use crate::kafka::TopicOutcome;

/// Every diagnostic of the file, errors and warnings, sorted by line; the plan when it has no
/// error.
pub fn load(path: &Path) -> Result<Plan, Vec<Diagnostic>> {
    let plan = config::load(path)?;
    let mut problems = kafka::check_properties(&plan);
    if let Err(e) = Authenticator::from_plan(&plan) {
        let key = match e {
            SetupError::KeyFile { .. } | SetupError::Key { .. } => "auth.jwt.public_key_file",
            SetupError::Algorithms(_) => "auth.jwt.algorithms",
            SetupError::Jwks(_) => "auth.jwt.jwks_url",
            SetupError::CaFile(_) => "auth.jwt.ca_file",
            SetupError::NoJwt => "auth.jwt",
        };
        problems.push(plan.diagnostic(Severity::Error, key, e.to_string()));
    }
    if let Some(tls) = &plan.config.server.tls {
        let (cert, key) = (
            plan.resolve_path(&tls.cert_file),
            plan.resolve_path(&tls.key_file),
        );
        if let Err(e) = crate::server::tls_acceptor(&cert, &key) {
            problems.push(plan.diagnostic(Severity::Error, "server.tls", e.to_string()));
        }
    }
    for (i, inbound) in plan.config.inbound.iter().enumerate() {
        if let Some(file) = &inbound.schema_file {
            if let Err(e) = crate::catalogue::load_schema(&plan.resolve_path(file)) {
                let key = format!("inbound[{i}].schema_file");
                problems.push(plan.diagnostic(Severity::Error, &key, e.to_string()));
            }
        }
    }
    if problems.is_empty() {
        Ok(plan)
    } else {
        problems.extend(plan.warnings);
        problems.sort_by_key(|d| d.line);
        Err(problems)
    }
}

/// What `check --online` finds by asking the schema registry: every subject a publish channel
/// writes with exists and compiles, of the kind the channel writes; a channel's
/// `<topic>-value` subject is looked for too (a warning when missing: records are decoded by
/// the id they carry, whatever subject it is registered under).
pub async fn check_online(plan: &Plan) -> Vec<Diagnostic> {
    let Some(config) = &plan.config.schema_registry else {
        return Vec::new();
    };
    let metrics = crate::metrics::Metrics::new(&[], &[], &[]);
    let registry = match crate::registry::Registry::new(
        super::registry_settings(plan, config),
        metrics.schema_registry(),
        tokio::runtime::Handle::current(),
    ) {
        Ok(registry) => registry,
        Err(e) => return vec![plan.diagnostic(Severity::Error, "schema_registry", e.to_string())],
    };
    let mut found = Vec::new();
    for (i, inbound) in plan.config.inbound.iter().enumerate() {
        let Some(kind) = inbound_kind(inbound.format) else {
            continue;
        };
        let subject = inbound
            .subject
            .clone()
            .unwrap_or_else(|| format!("{}-value", inbound.topic));
        let version = match inbound.schema_version {
            config::SchemaVersion::Latest(_) => crate::registry::SchemaVersion::Latest,
            config::SchemaVersion::Number(n) => crate::registry::SchemaVersion::Number(n),
        };
        let key = format!("inbound[{i}].format");
        match registry.subject(&subject, version).await {
            Ok((id, schema)) if schema.kind() != kind => found.push(plan.diagnostic(
                Severity::Error,
                &key,
                format!(
                    "subject `{subject}` (schema {id}) is {}, not {}",
                    schema.kind().as_str(),
                    kind.as_str()
                ),
            )),
            Ok(_) => {}
            Err(e) => found.push(plan.diagnostic(
                Severity::Error,
                &key,
                format!("subject `{subject}` version {version}: {e}"),
            )),
        }
    }
    for (i, channel) in plan.config.channels.iter().enumerate() {
        if !channel.format.uses_registry() {
            continue;
        }
        let subject = format!("{}-value", channel.topic);
        if let Err(e) = registry
            .subject(&subject, crate::registry::SchemaVersion::Latest)
            .await
        {
            let severity = match e {
                crate::registry::RegistryError::NotFound { .. } => Severity::Warning,
                _ => Severity::Error,
            };
            found.push(plan.diagnostic(
                severity,
                &format!("channels[{i}].format"),
                format!("subject `{subject}`: {e}"),
            ));
        }
    }
    found
}

fn inbound_kind(format: config::InboundFormat) -> Option<crate::registry::SchemaKind> {
    use crate::registry::SchemaKind;
    match format {
        config::InboundFormat::Json => None,
        config::InboundFormat::Avro => Some(SchemaKind::Avro),
        config::InboundFormat::Protobuf => Some(SchemaKind::Protobuf),
        config::InboundFormat::JsonSchema => Some(SchemaKind::JsonSchema),
    }
}

/// Creates the topics of every channel and inbound entry (`create-topics`).
pub async fn create_topics(
    plan: &Plan,
    partitions: i32,
    replication: i32,
) -> Result<Vec<(String, TopicOutcome)>, kafka::AdminError> {
    kafka::create_topics(plan, partitions, replication).await
}
