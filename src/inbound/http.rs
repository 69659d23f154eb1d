//! `POST /api/v1/publish`: services that cannot speak Kafka push records onto an *outbound*
//! channel's topic, so that every instance delivers them to that channel's subscribers. Callers
//! are trusted services (API key), so every header is theirs to set — including
//! `bridge-session`/`bridge-user` for replies.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::value::RawValue;

use super::encode::{default_subject, encode, Target};
use super::{write, Delivered, RecordWriter};
use crate::catalogue::Catalogue;
use crate::config::{Deliver, KeySource, Secret};
use crate::metrics::HttpResult;
use crate::protocol::{self, key_at_pointer, ErrorCode, Refusal};
use crate::registry::{Registry, SchemaKind};

pub struct HttpPublish {
    catalogue: Arc<Catalogue>,
    writer: Option<Arc<dyn RecordWriter>>,
    api_keys: Vec<Secret>,
    /// `schema_registry`: records of registry-format channels are written with the latest
    /// schema of `<topic>-value`.
    registry: Option<Arc<Registry>>,
}

/// A request to `POST /api/v1/publish`.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpRequest {
    pub channel: String,
    #[serde(default)]
    pub key: Option<String>,
    pub data: Box<RawValue>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

impl HttpPublish {
    pub fn new(
        catalogue: Arc<Catalogue>,
        api_keys: &[Secret],
        writer: Option<Arc<dyn RecordWriter>>,
        registry: Option<Arc<Registry>>,
    ) -> Self {
        HttpPublish {
            catalogue,
            writer,
            api_keys: api_keys.to_vec(),
            registry,
        }
    }

    /// Whether the endpoint is on (some API key is configured).
    pub fn enabled(&self) -> bool {
        !self.api_keys.is_empty() && self.writer.is_some()
    }

    pub fn authorized(&self, bearer: &str) -> bool {
        crate::auth::api_key_matches(&self.api_keys, bearer)
    }

    /// Produces the request onto the channel's topic; where it was written.
    pub async fn publish(&self, request: HttpRequest) -> Result<(String, Delivered), Refusal> {
        let Some(channel) = self.catalogue.find(&request.channel) else {
            return Err(Refusal::new(
                ErrorCode::UnknownChannel,
                format!("no channel named `{}`", request.channel),
            ));
        };
        let refuse = |code: ErrorCode, message: String| {
            channel.count_http(HttpResult::from(code));
            Err(Refusal::new(code, message))
        };
        let payload = match protocol::decode_data(channel.spec.format, &request.data) {
            Ok(payload) => payload,
            Err(protocol::DataError::NeedsSchema) => {
                match self.encode(channel, &request.data).await {
                    Ok(payload) => payload,
                    Err(refusal) => return refuse(refusal.code, refusal.message),
                }
            }
            Err(error) => return refuse(ErrorCode::BadRequest, error.to_string()),
        };
        let mut headers: Vec<(String, String)> = request.headers.into_iter().collect();
        let key = match (&channel.spec.key, request.key) {
            (Some(KeySource::Header { name }), Some(key)) => {
                headers.push((name.clone(), key.clone()));
                Some(key)
            }
            (Some(KeySource::Value { pointer }), key) => {
                let value: serde_json::Value = match serde_json::from_str(request.data.get()) {
                    Ok(value) => value,
                    Err(e) => return Err(Refusal::new(ErrorCode::BadRequest, e.to_string())),
                };
                match (key_at_pointer(&value, pointer), key) {
                    (Some(found), Some(key)) if found != key => {
                        return refuse(ErrorCode::BadRequest, format!("`key` is \"{key}\" but `data` has \"{found}\" at `{pointer}`, which routes the record"))
                    }
                    (found, key) => key.or(found),
                }
            }
            (_, key) => key,
        };
        if channel.deliver() == Deliver::ByKey && key.is_none() {
            return refuse(
                ErrorCode::BadRequest,
                format!(
                    "`key` is required: channel `{}` delivers by key",
                    request.channel
                ),
            );
        }
        let Some(writer) = &self.writer else {
            return refuse(ErrorCode::Unavailable, "no producer".into());
        };
        let topic = &channel.spec.topic;
        match write(writer.as_ref(), topic, key.as_deref(), &payload, &headers).await {
            Ok(delivered) => {
                channel.count_http(HttpResult::Ok);
                Ok((topic.clone(), delivered))
            }
            Err(error) => {
                let refusal = Refusal::from(error);
                channel.count_http(HttpResult::from(refusal.code));
                Err(refusal)
            }
        }
    }

    /// `data` for a registry-format channel: validated against and written with the latest
    /// schema of `<topic>-value`.
    async fn encode(
        &self,
        channel: &crate::catalogue::Channel,
        data: &RawValue,
    ) -> Result<Vec<u8>, Refusal> {
        let Some(registry) = &self.registry else {
            return Err(Refusal::new(
                ErrorCode::Internal,
                "no schema_registry is configured".to_owned(),
            ));
        };
        let value: serde_json::Value = serde_json::from_str(data.get())
            .map_err(|e| Refusal::new(ErrorCode::BadRequest, e.to_string()))?;
        let kind = match channel.spec.format {
            crate::config::Format::Protobuf => SchemaKind::Protobuf,
            crate::config::Format::JsonSchema => SchemaKind::JsonSchema,
            _ => SchemaKind::Avro,
        };
        let subject = default_subject(&channel.spec.topic);
        let target = Target {
            channel: channel.name(),
            subject: &subject,
            version: crate::config::SchemaVersion::default(),
            kind,
            message: None,
        };
        encode(registry, &target, &value).await
    }
}
