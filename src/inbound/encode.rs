//! Registry formats on the way in: a publish's JSON `data` validated against a subject's
//! schema and written in Confluent's wire format, so Confluent's deserializers read it.

use crate::config::{InboundFormat, LatestVersion};
use crate::protocol::{ErrorCode, Refusal};
use crate::registry::{Registry, RegistryError, SchemaKind, SchemaVersion};

/// What a channel writes with: the subject's schema of one kind.
pub(super) struct Target<'a> {
    /// The channel, for messages.
    pub(super) channel: &'a str,
    pub(super) subject: &'a str,
    pub(super) version: crate::config::SchemaVersion,
    pub(super) kind: SchemaKind,
    /// Protobuf: the message type written (`None`: the schema's first).
    pub(super) message: Option<&'a str>,
}

/// The subject a topic's values are registered under by default (TopicNameStrategy).
pub(super) fn default_subject(topic: &str) -> String {
    format!("{topic}-value")
}

/// The schema kind an inbound format writes.
pub(super) fn kind_of(format: InboundFormat) -> Option<SchemaKind> {
    match format {
        InboundFormat::Json => None,
        InboundFormat::Avro => Some(SchemaKind::Avro),
        InboundFormat::Protobuf => Some(SchemaKind::Protobuf),
        InboundFormat::JsonSchema => Some(SchemaKind::JsonSchema),
    }
}

/// `data` in the wire format of `target`'s schema. Invalid data is `invalid` naming the field;
/// an unreachable registry `unavailable` (retry); a subject that is missing or of another
/// kind `internal` (the operator's to fix), each saying which.
pub(super) async fn encode(
    registry: &Registry,
    target: &Target<'_>,
    data: &serde_json::Value,
) -> Result<Vec<u8>, Refusal> {
    let version = match target.version {
        crate::config::SchemaVersion::Latest(LatestVersion::Latest) => SchemaVersion::Latest,
        crate::config::SchemaVersion::Number(n) => SchemaVersion::Number(n),
    };
    let (id, schema) = registry
        .subject(target.subject, version)
        .await
        .map_err(|e| match e {
            RegistryError::Unavailable(_) => Refusal::new(ErrorCode::Unavailable, e.to_string()),
            _ => Refusal::new(
                ErrorCode::Internal,
                format!("channel `{}` cannot write: {e}", target.channel),
            ),
        })?;
    if schema.kind() != target.kind {
        return Err(Refusal::new(
            ErrorCode::Internal,
            format!(
                "channel `{}` writes {}, but subject `{}` (schema {id}) is {}",
                target.channel,
                target.kind.as_str(),
                target.subject,
                schema.kind().as_str()
            ),
        ));
    }
    schema.encode_as(id, target.message, data).map_err(|e| {
        Refusal::new(
            ErrorCode::Invalid,
            format!(
                "`data` does not match the schema of `{}` (subject `{}`, schema {id}): {e}",
                target.channel, target.subject
            ),
        )
    })
}
