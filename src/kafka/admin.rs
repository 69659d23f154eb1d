//! `kafka-ws-bridge create-topics`: creates every topic the config reads or writes (the session
//! registry's compacted), so a new deployment (or the local example) can start from an empty
//! cluster. Existing topics are left as they are.

use std::collections::BTreeSet;
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;

use super::{client_config, Client};
use crate::config::Plan;

/// What happened to one topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TopicOutcome {
    Created,
    AlreadyExists,
    Failed(String),
}

/// Why `create-topics` could not ask Kafka at all (a topic that fails is a [`TopicOutcome`]).
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// librdkafka refused the client settings.
    #[error("{0}")]
    Client(KafkaError),
    #[error("cannot reach kafka: {0}")]
    Unreachable(KafkaError),
}

/// Creates the topics of every channel and inbound entry, and the session registry's
/// (compacted).
pub async fn create_topics(
    plan: &Plan,
    partitions: i32,
    replication: i32,
) -> Result<Vec<(String, TopicOutcome)>, AdminError> {
    let topics: BTreeSet<&str> = plan
        .config
        .channels
        .iter()
        .map(|c| c.topic.as_str())
        .chain(plan.config.inbound.iter().map(|i| i.topic.as_str()))
        .collect();
    let admin: AdminClient<DefaultClientContext> = client_config(plan, Client::Producer, &[])
        .create()
        .map_err(AdminError::Client)?;
    let registry = plan
        .config
        .auth
        .session_registry
        .as_ref()
        .map(|r| r.topic.as_str());
    let new: Vec<NewTopic> = topics
        .iter()
        .map(|t| NewTopic::new(t, partitions, TopicReplication::Fixed(replication)))
        // The session registry keeps the last record per session: compacted, so that closed
        // sessions' tombstones leave nothing behind.
        .chain(registry.map(|t| {
            NewTopic::new(t, partitions, TopicReplication::Fixed(replication))
                .set("cleanup.policy", "compact")
        }))
        .collect();
    let options = AdminOptions::new()
        .operation_timeout(Some(Duration::from_secs(30)))
        .request_timeout(Some(Duration::from_secs(30)));
    let results = admin
        .create_topics(&new, &options)
        .await
        .map_err(AdminError::Unreachable)?;
    Ok(results
        .into_iter()
        .map(|result| match result {
            Ok(topic) => (topic, TopicOutcome::Created),
            Err((topic, RDKafkaErrorCode::TopicAlreadyExists)) => {
                (topic, TopicOutcome::AlreadyExists)
            }
            Err((topic, code)) => (topic, TopicOutcome::Failed(code.to_string())),
        })
        .collect())
}
