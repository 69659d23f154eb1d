//! WebSocket (and HTTP) → Kafka: checks a publish against its channel's rules, builds the
//! record (key per config, the bridge's own headers, the client's headers) and produces it,
//! answering only from Kafka's delivery report. Knows nothing of WebSocket or HTTP.

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use prometheus::{Histogram, IntCounter};
use serde_json::value::RawValue;

use crate::auth::{check_allow, Identity};
use crate::config::{Allow, InboundConfig, InboundKey, InboundKeyLevel};
use crate::kafka::{Delivered, ProduceError, Producer};
use crate::metrics::{Metrics, PUBLISH_RESULTS};
use crate::outbound::{SESSION_HEADER, USER_HEADER};
use crate::protocol::{key_at_pointer, ErrorCode, Refusal};

/// Header carrying the client's publish id.
pub const CORRELATION_HEADER: &str = "correlation-id";

/// Headers only the bridge sets; a publish that carries one is refused.
pub const RESERVED_HEADERS: &[&str] = &[USER_HEADER, SESSION_HEADER, CORRELATION_HEADER];

struct Route {
    topic: String,
    key: InboundKey,
    allow: Allow,
    /// Counters per result, in [`PUBLISH_RESULTS`] order.
    results: Vec<IntCounter>,
    latency: Histogram,
}

pub struct Inbound {
    routes: HashMap<String, Route>,
    producer: Option<Producer>,
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
    headers: Vec<(String, String)>,
    received: Instant,
}

impl Prepared {
    pub fn topic(&self) -> &str {
        &self.topic
    }
}

impl Inbound {
    /// `producer` is `None` only when there are no inbound channels.
    pub fn new(configs: &[InboundConfig], producer: Option<Producer>, metrics: &Metrics) -> Self {
        let routes = configs
            .iter()
            .map(|c| {
                let route = Route {
                    topic: c.topic.clone(),
                    key: c.key.clone(),
                    allow: c.allow.clone(),
                    results: PUBLISH_RESULTS
                        .iter()
                        .map(|r| {
                            metrics
                                .publishes
                                .with_label_values(&[c.channel.as_str(), r])
                        })
                        .collect(),
                    latency: metrics.publish_latency.with_label_values(&[&c.channel]),
                };
                (c.channel.clone(), route)
            })
            .collect();
        Inbound { routes, producer }
    }

    /// Counts a publish refused before it reached [`Self::prepare`] (e.g. rate limited).
    pub fn count_refusal(&self, channel: &str, code: ErrorCode) {
        if let Some(route) = self.routes.get(channel) {
            route.count(code.as_str());
        }
    }

    pub fn has_channel(&self, channel: &str) -> bool {
        self.routes.contains_key(channel)
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
        let Some(route) = self.routes.get(channel) else {
            return Err(Refusal::new(
                ErrorCode::UnknownChannel,
                format!("no inbound channel named `{channel}`"),
            ));
        };
        let refuse = |code: ErrorCode, message: String| {
            route.count(code.as_str());
            Err(Refusal::new(code, message))
        };
        if let Err(reason) = check_allow(&route.allow, publisher.identity) {
            return refuse(
                ErrorCode::Forbidden,
                format!("publishing on `{channel}` is not allowed: {reason}"),
            );
        }
        if let Some(name) = client_headers
            .keys()
            .find(|name| RESERVED_HEADERS.contains(&name.to_ascii_lowercase().as_str()))
        {
            return refuse(
                ErrorCode::BadRequest,
                format!("header `{name}` is reserved: the bridge sets it"),
            );
        }
        let key = match &route.key {
            InboundKey::Level(InboundKeyLevel::None) => None,
            InboundKey::Level(InboundKeyLevel::User) => publisher.identity.user.clone(),
            InboundKey::Pointer { pointer } => {
                let value: serde_json::Value = serde_json::from_str(data.get())
                    .map_err(|e| Refusal::new(ErrorCode::BadRequest, e.to_string()))?;
                match key_at_pointer(&value, pointer) {
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
        let mut headers: Vec<(String, String)> = client_headers
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if let Some(user) = &publisher.identity.user {
            headers.push((USER_HEADER.into(), user.clone()));
        }
        if let Some(session) = publisher.session {
            headers.push((SESSION_HEADER.into(), session.to_owned()));
        }
        if let Some(id) = id {
            let text =
                serde_json::from_str::<String>(id.get()).unwrap_or_else(|_| id.get().to_owned());
            headers.push((CORRELATION_HEADER.into(), text));
        }
        Ok(Prepared {
            channel: channel.to_owned(),
            topic: route.topic.clone(),
            key,
            payload: data.get().as_bytes().to_vec(),
            headers,
            received: Instant::now(),
        })
    }

    /// Produces a prepared publish and waits for Kafka's answer.
    pub async fn send(&self, prepared: Prepared) -> Result<Delivered, Refusal> {
        let route = &self.routes[&prepared.channel];
        let Some(producer) = &self.producer else {
            unreachable!("a producer exists whenever an inbound channel does");
        };
        let headers: Vec<(&str, &[u8])> = prepared
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_bytes()))
            .collect();
        let result = producer
            .send(
                &prepared.topic,
                prepared.key.as_deref().map(str::as_bytes),
                &prepared.payload,
                &headers,
            )
            .await;
        route
            .latency
            .observe(prepared.received.elapsed().as_secs_f64());
        match result {
            Ok(delivered) => {
                route.count("ok");
                Ok(delivered)
            }
            Err(error) => {
                let code = match &error {
                    ProduceError::Unavailable(_) => ErrorCode::Unavailable,
                    ProduceError::TooLarge(_) => ErrorCode::TooLarge,
                    ProduceError::Refused(_) => ErrorCode::Internal,
                };
                tracing::warn!(channel = %prepared.channel, topic = %prepared.topic, error = %error, "publish failed");
                route.count(code.as_str());
                Err(Refusal::new(code, error.to_string()))
            }
        }
    }
}

impl Route {
    fn count(&self, result: &str) {
        if let Some(i) = PUBLISH_RESULTS.iter().position(|r| *r == result) {
            self.results[i].inc();
        }
    }
}

/// `POST /api/v1/publish`: services that cannot speak Kafka push records onto an *outbound*
/// channel's topic, so that every instance delivers them to that channel's subscribers. Callers
/// are trusted services (API key), so every header is theirs to set — including
/// `bridge-session`/`bridge-user` for replies.
pub struct HttpPublish {
    routes: HashMap<String, HttpRoute>,
    producer: Option<Producer>,
    api_keys: Vec<crate::config::Secret>,
}

struct HttpRoute {
    topic: String,
    format: crate::config::Format,
    key: Option<crate::config::KeySource>,
    keyed: bool,
    results: HashMap<&'static str, IntCounter>,
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

/// Why an HTTP publish failed: a status and a message for the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRefusal {
    pub status: u16,
    pub message: String,
}

impl HttpRefusal {
    fn new(status: u16, message: impl Into<String>) -> Self {
        HttpRefusal {
            status,
            message: message.into(),
        }
    }
}

impl HttpPublish {
    pub fn new(
        channels: &[crate::config::ChannelConfig],
        api_keys: &[crate::config::Secret],
        producer: Option<Producer>,
        metrics: &Metrics,
    ) -> Self {
        let routes = channels
            .iter()
            .map(|c| {
                let results = crate::metrics::HTTP_PUBLISH_RESULTS
                    .iter()
                    .map(|r| {
                        (
                            *r,
                            metrics
                                .http_publishes
                                .with_label_values(&[c.name.as_str(), r]),
                        )
                    })
                    .collect();
                let route = HttpRoute {
                    topic: c.topic.clone(),
                    format: c.format,
                    key: c.key.clone(),
                    keyed: c.deliver == crate::config::Deliver::ByKey,
                    results,
                };
                (c.name.clone(), route)
            })
            .collect();
        HttpPublish {
            routes,
            producer,
            api_keys: api_keys.to_vec(),
        }
    }

    /// Whether the endpoint is on (some API key is configured).
    pub fn enabled(&self) -> bool {
        !self.api_keys.is_empty() && self.producer.is_some()
    }

    pub fn authorized(&self, bearer: &str) -> bool {
        crate::auth::api_key_matches(&self.api_keys, bearer)
    }

    /// Produces the request onto the channel's topic; where it was written.
    pub async fn publish(&self, request: HttpRequest) -> Result<(String, Delivered), HttpRefusal> {
        let Some(route) = self.routes.get(&request.channel) else {
            return Err(HttpRefusal::new(
                404,
                format!("no channel named `{}`", request.channel),
            ));
        };
        let count = |result: &str| {
            if let Some(counter) = route.results.get(result) {
                counter.inc();
            }
        };
        let refuse = |status: u16, result: &str, message: String| {
            count(result);
            Err(HttpRefusal::new(status, message))
        };
        let payload = match encode_for_channel(route.format, &request.data) {
            Ok(payload) => payload,
            Err(message) => return refuse(400, "bad_request", message),
        };
        let mut headers: Vec<(String, String)> = request.headers.into_iter().collect();
        let key = match (&route.key, request.key) {
            (Some(crate::config::KeySource::Header { name }), Some(key)) => {
                headers.push((name.clone(), key.clone()));
                Some(key)
            }
            (Some(crate::config::KeySource::Value { pointer }), key) => {
                let value: serde_json::Value = serde_json::from_str(request.data.get())
                    .map_err(|e| HttpRefusal::new(400, e.to_string()))?;
                let found = key_at_pointer(&value, pointer);
                match (found, key) {
                    (Some(found), Some(key)) if found != key => {
                        return refuse(400, "bad_request", format!("`key` is \"{key}\" but `data` has \"{found}\" at `{pointer}`, which routes the record"))
                    }
                    (found, key) => key.or(found),
                }
            }
            (_, key) => key,
        };
        if route.keyed && key.is_none() {
            return refuse(
                400,
                "bad_request",
                format!(
                    "`key` is required: channel `{}` delivers by key",
                    request.channel
                ),
            );
        }
        let Some(producer) = &self.producer else {
            return refuse(503, "unavailable", "no producer".into());
        };
        let header_refs: Vec<(&str, &[u8])> = headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_bytes()))
            .collect();
        match producer
            .send(
                &route.topic,
                key.as_deref().map(str::as_bytes),
                &payload,
                &header_refs,
            )
            .await
        {
            Ok(delivered) => {
                count("ok");
                Ok((route.topic.clone(), delivered))
            }
            Err(ProduceError::Unavailable(e)) => {
                refuse(503, "unavailable", format!("kafka unavailable: {e}"))
            }
            Err(ProduceError::TooLarge(e)) => refuse(413, "too_large", e),
            Err(ProduceError::Refused(e)) => refuse(500, "internal", e),
        }
    }
}

/// The record value for a channel's format: JSON as sent; `text` channels take a JSON string
/// and write its text; `base64` channels take a base64 string and write its bytes.
fn encode_for_channel(format: crate::config::Format, data: &RawValue) -> Result<Vec<u8>, String> {
    use crate::config::Format;
    match format {
        Format::Json => Ok(data.get().as_bytes().to_vec()),
        Format::Text => serde_json::from_str::<String>(data.get())
            .map(String::into_bytes)
            .map_err(|_| "this channel's format is text: `data` must be a JSON string".to_owned()),
        Format::Base64 => {
            use base64::Engine as _;
            let text = serde_json::from_str::<String>(data.get()).map_err(|_| {
                "this channel's format is base64: `data` must be a base64 string".to_owned()
            })?;
            base64::engine::general_purpose::STANDARD
                .decode(text)
                .map_err(|e| format!("`data` is not valid base64: {e}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inbound(yaml: &str) -> Inbound {
        let configs: Vec<InboundConfig> = serde_yaml::from_str(yaml).unwrap();
        Inbound::new(&configs, None, &Metrics::new(&[], &[], &[]))
    }

    fn raw(text: &str) -> Box<RawValue> {
        RawValue::from_string(text.to_owned()).unwrap()
    }

    fn user(id: &str) -> Identity {
        Identity {
            user: Some(id.into()),
            ..Identity::default()
        }
    }

    #[test]
    fn builds_key_and_bridge_headers() {
        let inbound = inbound("[{channel: c, topic: t, key: user}, {channel: p, topic: t2, key: {pointer: /acc}, allow: anonymous}]");
        let alice = user("alice");
        let publisher = Publisher {
            identity: &alice,
            session: Some("s-1"),
        };
        let id = raw("\"p1\"");
        let client_headers = BTreeMap::from([("h".to_owned(), "v".to_owned())]);
        let prepared = inbound
            .prepare(
                "c",
                &raw("{\"a\":1}"),
                &client_headers,
                Some(&id),
                &publisher,
            )
            .unwrap();
        assert_eq!(prepared.key.as_deref(), Some("alice"));
        assert_eq!(prepared.payload, b"{\"a\":1}");
        assert_eq!(
            prepared.headers,
            [
                ("h", "v"),
                ("bridge-user", "alice"),
                ("bridge-session", "s-1"),
                ("correlation-id", "p1")
            ]
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
        );
        let anonymous = Identity::anonymous();
        let publisher = Publisher {
            identity: &anonymous,
            session: None,
        };
        let prepared = inbound
            .prepare("p", &raw("{\"acc\":7}"), &BTreeMap::new(), None, &publisher)
            .unwrap();
        assert_eq!(
            (prepared.key.as_deref(), prepared.topic()),
            (Some("7"), "t2")
        );
        let refusal = inbound
            .prepare("p", &raw("{}"), &BTreeMap::new(), None, &publisher)
            .err()
            .unwrap();
        assert_eq!(refusal.code, ErrorCode::BadRequest);
    }

    #[test]
    fn refuses_reserved_headers_unknown_channels_and_strangers() {
        let inbound = inbound("[{channel: c, topic: t}]");
        let alice = user("alice");
        let publisher = Publisher {
            identity: &alice,
            session: None,
        };
        let spoof = BTreeMap::from([("Bridge-User".to_owned(), "mallory".to_owned())]);
        assert_eq!(
            inbound
                .prepare("c", &raw("1"), &spoof, None, &publisher)
                .err()
                .unwrap()
                .code,
            ErrorCode::BadRequest
        );
        assert_eq!(
            inbound
                .prepare("x", &raw("1"), &BTreeMap::new(), None, &publisher)
                .err()
                .unwrap()
                .code,
            ErrorCode::UnknownChannel
        );
        let anonymous = Identity::anonymous();
        let stranger = Publisher {
            identity: &anonymous,
            session: None,
        };
        assert_eq!(
            inbound
                .prepare("c", &raw("1"), &BTreeMap::new(), None, &stranger)
                .err()
                .unwrap()
                .code,
            ErrorCode::Forbidden
        );
    }
}
