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
            problems.push(plan.diagnostic(Severity::Error, "server.tls", e));
        }
    }
    for (i, inbound) in plan.config.inbound.iter().enumerate() {
        if let Some(file) = &inbound.schema_file {
            if let Err(e) = crate::catalogue::load_schema(&plan.resolve_path(file)) {
                let key = format!("inbound[{i}].schema_file");
                problems.push(plan.diagnostic(Severity::Error, &key, e));
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

/// Creates the topics of every channel and inbound entry (`create-topics`).
pub async fn create_topics(
    plan: &Plan,
    partitions: i32,
    replication: i32,
) -> Result<Vec<(String, TopicOutcome)>, String> {
    kafka::create_topics(plan, partitions, replication).await
}
