//! WebSocket (and HTTP) → Kafka: checks a publish against its channel's rules, builds the
//! record (key per config, the bridge's own headers, the client's headers) and writes it
//! through a [`RecordWriter`] (the `kafka` module's producer), answering only from Kafka's
//! delivery report. Knows nothing of WebSocket, HTTP or librdkafka.
//!
//! Every refusal is a [`Refusal`] with a protocol [`ErrorCode`]: the client listener sends it as
//! an `error` frame, the publish API as the status [`http_status`] gives.

mod encode;
mod http;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use serde_json::value::RawValue;

use crate::auth::{check_allow, check_key_rule, Identity};
use crate::catalogue::Catalogue;
use crate::config::{InboundKey, InboundKeyLevel, KeysLevel, KeysRule};
use crate::metrics::PublishResult;
use crate::protocol::{
    is_reserved_header, key_at_pointer, ErrorCode, Refusal, CLAIM_HEADER_PREFIX,
    CORRELATION_HEADER, ROLES_HEADER, SESSION_HEADER, USER_HEADER,
};
use crate::registry::Registry;

pub use http::{HttpPublish, HttpRequest};

/// Where a record was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivered {
    pub partition: i32,
    /// `None` when the delivery report has none: a retry that Kafka answered "duplicate
    /// sequence" (the first attempt was written, its offset is not reported again).
    pub offset: Option<i64>,
}

/// Why a record was not written.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum ProduceError {
    /// Kafka unreachable, or no acknowledgement within the publish timeout. The record was
    /// most likely not written; a retry with the same id lets consumers de-duplicate.
    #[error("kafka unavailable: {0}")]
    Unavailable(String),
    /// The broker refuses records this large.
    #[error("record too large: {0}")]
    TooLarge(String),
    /// The broker refused the record for a reason retrying will not fix (unknown topic,
    /// authorization, …).
    #[error("record refused by kafka: {0}")]
    Refused(String),
}

impl From<ProduceError> for Refusal {
    fn from(error: ProduceError) -> Self {
        let code = match &error {
            ProduceError::Unavailable(_) => ErrorCode::Unavailable,
            ProduceError::TooLarge(_) => ErrorCode::TooLarge,
            ProduceError::Refused(_) => ErrorCode::Internal,
        };
        Refusal::new(code, error.to_string())
    }
}

/// The HTTP status of a refusal, for the publish API.
pub(crate) fn http_status(code: ErrorCode) -> u16 {
    match code {
        ErrorCode::BadRequest | ErrorCode::Invalid => 400,
        ErrorCode::Forbidden => 403,
        ErrorCode::Unauthorized => 401,
        ErrorCode::UnknownChannel => 404,
        ErrorCode::TooLarge => 413,
        ErrorCode::RateLimited => 429,
        ErrorCode::Unavailable => 503,
        ErrorCode::Internal => 500,
    }
}

/// A write to Kafka under way.
pub(crate) type WriteFuture<'a> =
    Pin<Box<dyn Future<Output = Result<Delivered, ProduceError>> + Send + 'a>>;

/// Writes one record and resolves with its delivery report.
pub trait RecordWriter: Send + Sync {
    fn write<'a>(
        &'a self,
        topic: &'a str,
        key: Option<&'a [u8]>,
        payload: &'a [u8],
        headers: &'a [(&'a str, &'a [u8])],
    ) -> WriteFuture<'a>;
}

/// Writes `headers` (owned pairs) through `writer`.
async fn write(
    writer: &dyn RecordWriter,
    topic: &str,
    key: Option<&str>,
    payload: &[u8],
    headers: &[(String, String)],
) -> Result<Delivered, ProduceError> {
    let headers: Vec<(&str, &[u8])> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_bytes()))
        .collect();
    writer
        .write(topic, key.map(str::as_bytes), payload, &headers)
        .await
}

pub struct Inbound {
    catalogue: Arc<Catalogue>,
    writer: Option<Arc<dyn RecordWriter>>,
    /// `schema_registry`, for channels that write a registry format.
    registry: Option<Arc<Registry>>,
}

/// Who is publishing.
pub struct Publisher<'a> {
    pub identity: &'a Identity,
    /// Session public id, for the `bridge-session` header (absent for HTTP publishes).
    pub session: Option<&'a str>,
}

/// A publish that passed every check, ready to produce.
pub struct Prepared {
    channel: String,
    topic: String,
    key: Option<String>,
    payload: Vec<u8>,
    /// A registry format: `data` as parsed, validated and encoded with the subject's schema
    /// when it is sent (the schema may have to be fetched).
    registry_data: Option<serde_json::Value>,
    headers: Vec<(String, String)>,
    received: Instant,
}

impl Prepared {
    pub fn topic(&self) -> &str {
        &self.topic
    }
}

impl Inbound {
    /// `writer` is `None` only when there are no inbound channels.
    pub fn new(
        catalogue: Arc<Catalogue>,
        writer: Option<Arc<dyn RecordWriter>>,
        registry: Option<Arc<Registry>>,
    ) -> Self {
        Inbound {
            catalogue,
            writer,
            registry,
        }
    }

    /// Counts a publish refused before it reached [`Self::prepare`] (e.g. rate limited).
    pub fn count_refusal(&self, channel: &str, code: ErrorCode) {
        if let Some(inbound) = self.catalogue.inbound(channel) {
            inbound.count(PublishResult::Refused(code));
        }
    }

    /// Checks a publish and builds its record, or says why not. `id` is the client's request
    /// id as JSON (a string's content becomes the `correlation-id` header).
    pub fn prepare(
        &self,
        channel: &str,
        data: &RawValue,
        client_headers: &BTreeMap<String, String>,
        id: Option<&RawValue>,
        publisher: &Publisher<'_>,
    ) -> Result<Prepared, Refusal> {
        let Some(route) = self.catalogue.inbound(channel) else {
            let message = if self.catalogue.find(channel).is_some() {
                format!("channel `{channel}` is subscribe-only: it has no inbound entry")
            } else {
                format!("no inbound channel named `{channel}`")
            };
            return Err(Refusal::new(ErrorCode::UnknownChannel, message));
        };
        let refuse = |code: ErrorCode, message: String| {
            route.count(PublishResult::Refused(code));
            Err(Refusal::new(code, message))
        };
        if let Err(reason) = check_allow(&route.spec.allow, publisher.identity) {
            return refuse(
                ErrorCode::Forbidden,
                format!("publishing on `{channel}` is not allowed: {reason}"),
            );
        }
        if let Some(name) = client_headers.keys().find(|name| is_reserved_header(name)) {
            return refuse(
                ErrorCode::BadRequest,
                format!("header `{name}` is reserved: the bridge sets it"),
            );
        }
        // Parsed once, only where a rule looks inside `data`.
        let registry_format = route.spec.format.uses_registry();
        let value: Option<serde_json::Value> = if route.schema.is_some()
            || registry_format
            || matches!(route.spec.key, InboundKey::Pointer { .. })
        {
            Some(
                serde_json::from_str(data.get())
                    .map_err(|e| Refusal::new(ErrorCode::BadRequest, e.to_string()))?,
            )
        } else {
            None
        };
        if let (Some(schema), Some(value)) = (&route.schema, &value) {
            if let Some(violations) = schema_violations(schema, value) {
                return refuse(
                    ErrorCode::Invalid,
                    format!("`data` does not match the schema of `{channel}`: {violations}"),
                );
            }
        }
        let key = match &route.spec.key {
            InboundKey::Level(InboundKeyLevel::None) => None,
            InboundKey::Level(InboundKeyLevel::User) => publisher.identity.user.clone(),
            InboundKey::Pointer { pointer } => {
                let value = value.as_ref().expect("parsed above for a pointer key");
                match key_at_pointer(value, pointer) {
                    Some(key) => Some(key),
                    None => {
                        return refuse(
                            ErrorCode::BadRequest,
                            format!("`data` has no string or number at `{pointer}` (the record key of `{channel}`)"),
                        )
                    }
                }
            }
        };
        // The key the bridge computed, checked against what the token may write.
        if route.spec.keys != KeysRule::Level(KeysLevel::Any)
            || !route.spec.any_key_roles.is_empty()
        {
            let Some(key) = &key else {
                return refuse(
                    ErrorCode::Forbidden,
                    format!("publishing on `{channel}` needs a record key to check, and this one has none"),
                );
            };
            if let Err(reason) = check_key_rule(
                &route.spec.keys,
                &route.spec.any_key_roles,
                publisher.identity,
                key,
                "publish to",
            ) {
                return refuse(
                    ErrorCode::Forbidden,
                    format!("publishing on `{channel}` with key `{key}` is not allowed: {reason}"),
                );
            }
        }
        let mut headers: Vec<(String, String)> = client_headers
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if let Some(user) = &publisher.identity.user {
            headers.push((USER_HEADER.into(), user.clone()));
        }
        identity_headers(
            &route.spec.identity_headers,
            publisher.identity,
            &mut headers,
        );
        if let Some(session) = publisher.session {
            headers.push((SESSION_HEADER.into(), session.to_owned()));
        }
        if let Some(id) = id {
            let text =
                serde_json::from_str::<String>(id.get()).unwrap_or_else(|_| id.get().to_owned());
            headers.push((CORRELATION_HEADER.into(), text));
        }
        let (payload, registry_data) = match registry_format {
            true => (Vec::new(), value),
            false => (data.get().as_bytes().to_vec(), None),
        };
        Ok(Prepared {
            channel: channel.to_owned(),
            topic: route.spec.topic.clone(),
            key,
            payload,
            registry_data,
            headers,
            received: Instant::now(),
        })
    }

    /// Produces a prepared publish and waits for Kafka's answer.
    pub async fn send(&self, mut prepared: Prepared) -> Result<Delivered, Refusal> {
        let Some(route) = self.catalogue.inbound(&prepared.channel) else {
            unreachable!("prepared publishes name an inbound channel");
        };
        let Some(writer) = &self.writer else {
            unreachable!("a producer exists whenever an inbound channel does");
        };
        if let Some(data) = prepared.registry_data.take() {
            match self.encode(route, &data).await {
                Ok(payload) => prepared.payload = payload,
                Err(refusal) => {
                    if refusal.code != ErrorCode::Invalid {
                        tracing::warn!(channel = %prepared.channel, error = %refusal.message, "publish not encoded");
                    }
                    route.count(PublishResult::Refused(refusal.code));
                    return Err(refusal);
                }
            }
        }
        let result = write(
            writer.as_ref(),
            &prepared.topic,
            prepared.key.as_deref(),
            &prepared.payload,
            &prepared.headers,
        )
        .await;
        route
            .latency
            .observe(prepared.received.elapsed().as_secs_f64());
        match result {
            Ok(delivered) => {
                route.count(PublishResult::Ok);
                Ok(delivered)
            }
            Err(error) => {
                tracing::warn!(channel = %prepared.channel, topic = %prepared.topic, error = %error, "publish failed");
                let refusal = Refusal::from(error);
                route.count(PublishResult::Refused(refusal.code));
                Err(refusal)
            }
        }
    }
}

impl Inbound {
    /// A registry-format publish's record value.
    async fn encode(
        &self,
        route: &crate::catalogue::InboundChannel,
        data: &serde_json::Value,
    ) -> Result<Vec<u8>, Refusal> {
        let (Some(registry), Some(kind)) = (&self.registry, encode::kind_of(route.spec.format))
        else {
            return Err(Refusal::new(
                ErrorCode::Internal,
                "no schema_registry is configured".to_owned(),
            ));
        };
        let subject = route
            .spec
            .subject
            .clone()
            .unwrap_or_else(|| encode::default_subject(&route.spec.topic));
        let target = encode::Target {
            channel: route.name(),
            subject: &subject,
            version: route.spec.schema_version,
            kind,
            message: route.spec.message.as_deref(),
        };
        encode::encode(registry, &target, data).await
    }
}

/// The headers `identity_headers` asks for: `roles` → `bridge-roles` (comma-separated), another
/// name → `bridge-claim-<name>` (a string as it is, other values as JSON text; nothing for a
/// claim the token lacks). Anonymous publishers have neither roles nor claims.
fn identity_headers(names: &[String], identity: &Identity, headers: &mut Vec<(String, String)>) {
    if !identity.is_authenticated() {
        return;
    }
    for name in names {
        if name == "roles" {
            headers.push((ROLES_HEADER.into(), identity.roles.join(",")));
            continue;
        }
        let value = match crate::auth::claim(&identity.claims, name) {
            None => continue,
            Some(serde_json::Value::String(text)) => text.clone(),
            Some(other) => other.to_string(),
        };
        headers.push((format!("{CLAIM_HEADER_PREFIX}{name}"), value));
    }
}

/// Most schema violations named in one refusal.
const MAX_VIOLATIONS: usize = 3;

/// What is wrong with `value` under `schema` (the first few violations, each with where in
/// `data` it is), or `None` when it is valid.
fn schema_violations(schema: &jsonschema::Validator, value: &serde_json::Value) -> Option<String> {
    let mut violations: Vec<String> = schema
        .iter_errors(value)
        .take(MAX_VIOLATIONS + 1)
        .map(|error| {
            let at = error.instance_path().to_string();
            let at = if at.is_empty() { "/".to_owned() } else { at };
            format!("at `{at}`: {error}")
        })
        .collect();
    if violations.is_empty() {
        return None;
    }
    if violations.len() > MAX_VIOLATIONS {
        violations.truncate(MAX_VIOLATIONS);
        violations.push("…".into());
    }
    Some(violations.join("; "))
}
