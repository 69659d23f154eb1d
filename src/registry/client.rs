//! The registry's HTTP API (Confluent's, which Apicurio's `ccompat`, Karapace and Redpanda
//! also serve): `GET /schemas/ids/{id}` and `GET /subjects/{subject}/versions/{version}`,
//! with the schemas they reference. Every request goes on a new connection: Apicurio now and
//! then never answers a request that follows a 404 on a kept-alive connection. Schema
//! fetches are rare (once per id; `latest` of a subject at most every 30 s), so the handshake
//! costs nothing that matters: measured on loopback with reqwest, 0.47 ms per request on a
//! new connection against 0.08 ms kept alive (a LAN adds a round trip, TLS one more).

use std::collections::HashSet;
use std::time::{Instant, SystemTime};

use parking_lot::Mutex;
use serde::Deserialize;

use super::schema::{Reference, SchemaKind};
use super::{RegistryMetrics, RegistrySettings, SchemaVersion};
use crate::metrics::RegistryRequest;

/// The largest answer read (a schema with its JSON envelope).
const MAX_ANSWER_BYTES: usize = 8 << 20;
/// How many referenced schemas one schema may pull in, directly or through others.
const MAX_REFERENCES: usize = 100;

/// What went wrong with a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Failure {
    /// The registry said it has no such schema, subject or version.
    NotFound(String),
    /// No usable answer: refused, reset, 5xx, a 404 that is not the registry's, bad JSON.
    Error(String),
    Timeout(String),
}

impl Failure {
    pub fn message(&self) -> &str {
        match self {
            Failure::NotFound(m) | Failure::Error(m) | Failure::Timeout(m) => m,
        }
    }
}

/// A schema as the registry describes it (both endpoints answer with these fields).
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    /// The schema id (absent from `/schemas/ids/{id}`, which was asked by id).
    pub id: Option<u32>,
    pub kind: SchemaKind,
    pub schema: String,
    pub references: Vec<ReferenceSpec>,
}

/// A reference as the registry lists it: an import name and where its schema is.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize)]
pub(crate) struct ReferenceSpec {
    pub name: String,
    pub subject: String,
    pub version: i64,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawAnswer {
    id: Option<u32>,
    schema: String,
    schema_type: Option<String>,
    #[serde(default)]
    references: Option<Vec<ReferenceSpec>>,
}

/// Parses a schema answer of either endpoint.
pub(crate) fn parse_answer(body: &[u8]) -> Result<Answer, String> {
    let raw: RawAnswer = serde_json::from_slice(body)
        .map_err(|e| format!("expected a schema answer (`schema`, `schemaType`), found: {e}"))?;
    let kind = SchemaKind::from_registry(raw.schema_type.as_deref()).ok_or_else(|| {
        format!(
            "expected schemaType AVRO, PROTOBUF or JSON, found {:?}",
            raw.schema_type.unwrap_or_default()
        )
    })?;
    Ok(Answer {
        id: raw.id,
        kind,
        schema: raw.schema,
        references: raw.references.unwrap_or_default(),
    })
}

/// What a non-200 answer means. Only a 404 carrying the registry's own error body
/// (`error_code` 404xx) is "not found"; a bare 404 means `url` does not point at the
/// registry's API, which must not turn every record into a bad one.
pub(crate) fn parse_failure(status: u16, body: &[u8]) -> Failure {
    #[derive(Deserialize)]
    struct RawError {
        error_code: Option<i64>,
        message: Option<String>,
    }
    let parsed: Option<RawError> = serde_json::from_slice(body).ok();
    let message = parsed.as_ref().and_then(|e| e.message.clone());
    let code = parsed.as_ref().and_then(|e| e.error_code);
    match (status, code) {
        (404, Some(code)) if (40400..40500).contains(&code) => {
            Failure::NotFound(message.unwrap_or_else(|| format!("error_code {code}")))
        }
        (404, _) => Failure::Error(
            "the registry URL answered 404 without a registry error: is `schema_registry.url` the API's base URL?"
                .to_owned(),
        ),
        _ => {
            let detail = message.unwrap_or_else(|| {
                String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned()
            });
            Failure::Error(format!("the registry answered {status}: {detail}"))
        }
    }
}

/// Whether the registry answered lately, and the last failure.
#[derive(Default)]
pub(crate) struct Health {
    pub last_ok: Option<Instant>,
    pub last_failure: Option<(Instant, SystemTime, String)>,
}

pub struct Client {
    http: reqwest::Client,
    base: reqwest::Url,
    basic_auth: Option<(String, String)>,
    metrics: RegistryMetrics,
    pub health: Mutex<Health>,
}

impl Client {
    pub fn new(settings: &RegistrySettings, metrics: RegistryMetrics) -> Result<Client, String> {
        let base = reqwest::Url::parse(settings.url.trim_end_matches('/')).map_err(|e| {
            format!(
                "url: expected an http(s) URL, found {:?}: {e}",
                settings.url
            )
        })?;
        if !matches!(base.scheme(), "http" | "https") || base.cannot_be_a_base() {
            return Err(format!(
                "url: expected an http(s) URL, found {:?}",
                settings.url
            ));
        }
        let mut builder = reqwest::Client::builder()
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout)
            .pool_max_idle_per_host(0)
            .redirect(reqwest::redirect::Policy::limited(3))
            .user_agent(concat!("kafka-ws-bridge/", env!("CARGO_PKG_VERSION")));
        if let Some(path) = &settings.ca_file {
            let pem = std::fs::read(path)
                .map_err(|e| format!("ca_file: cannot read {}: {e}", path.display()))?;
            let certificates = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                format!(
                    "ca_file: {}: expected PEM certificates: {e}",
                    path.display()
                )
            })?;
            if certificates.is_empty() {
                return Err(format!(
                    "ca_file: {}: expected PEM certificates, found none",
                    path.display()
                ));
            }
            for certificate in certificates {
                builder = builder.add_root_certificate(certificate);
            }
        }
        let http = builder.build().map_err(|e| {
            format!(
                "url: cannot set up an HTTP client for it: {}",
                error_chain(&e)
            )
        })?;
        Ok(Client {
            http,
            base,
            basic_auth: settings.basic_auth.clone(),
            metrics,
            health: Mutex::new(Health::default()),
        })
    }

    /// `GET /schemas/ids/{id}`.
    pub async fn schema_by_id(&self, id: u32) -> Result<Answer, Failure> {
        self.answer(&["schemas", "ids", &id.to_string()]).await
    }

    /// `GET /subjects/{subject}/versions/{version}`.
    pub async fn subject_version(
        &self,
        subject: &str,
        version: SchemaVersion,
    ) -> Result<Answer, Failure> {
        self.answer(&["subjects", subject, "versions", &version.to_string()])
            .await
    }

    /// The schemas `references` name, and theirs in turn, each fetched once.
    pub async fn references(
        &self,
        references: &[ReferenceSpec],
    ) -> Result<Vec<Reference>, Failure> {
        let mut seen: HashSet<ReferenceSpec> = HashSet::new();
        let mut queue: Vec<ReferenceSpec> = references.to_vec();
        let mut found = Vec::new();
        while let Some(reference) = queue.pop() {
            if !seen.insert(reference.clone()) {
                continue;
            }
            if seen.len() > MAX_REFERENCES {
                return Err(Failure::Error(format!(
                    "expected at most {MAX_REFERENCES} referenced schemas, found more"
                )));
            }
            let version = reference.version.to_string();
            let answer = self
                .answer(&["subjects", &reference.subject, "versions", &version])
                .await
                .map_err(|failure| match failure {
                    Failure::NotFound(m) => Failure::NotFound(format!(
                        "reference {:?} (subject {:?} version {version}): {m}",
                        reference.name, reference.subject
                    )),
                    other => other,
                })?;
            queue.extend(answer.references);
            found.push(Reference {
                name: reference.name,
                text: answer.schema,
            });
        }
        Ok(found)
    }

    async fn answer(&self, segments: &[&str]) -> Result<Answer, Failure> {
        let body = self.get(segments).await?;
        parse_answer(&body).map_err(Failure::Error)
    }

    /// One GET, tried again once (on a new connection) after an error or a timeout.
    async fn get(&self, segments: &[&str]) -> Result<Vec<u8>, Failure> {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .expect("checked to be a base URL")
            .extend(segments);
        let first = self.attempt(&url).await;
        let result = match first {
            Err(Failure::Error(_) | Failure::Timeout(_)) => self.attempt(&url).await,
            other => other,
        };
        let mut health = self.health.lock();
        match &result {
            Ok(_) | Err(Failure::NotFound(_)) => health.last_ok = Some(Instant::now()),
            Err(failure) => {
                let message = format!("GET {url}: {}", failure.message());
                health.last_failure = Some((Instant::now(), SystemTime::now(), message));
            }
        }
        result
    }

    async fn attempt(&self, url: &reqwest::Url) -> Result<Vec<u8>, Failure> {
        let result = self.request(url).await;
        let label = match &result {
            Ok(_) => RegistryRequest::Ok,
            Err(Failure::NotFound(_)) => RegistryRequest::NotFound,
            Err(Failure::Error(_)) => RegistryRequest::Error,
            Err(Failure::Timeout(_)) => RegistryRequest::Timeout,
        };
        self.metrics
            .requests
            .with_label_values(&[label.as_str()])
            .inc();
        result
    }

    async fn request(&self, url: &reqwest::Url) -> Result<Vec<u8>, Failure> {
        let mut request = self.http.get(url.clone()).header(
            "accept",
            "application/vnd.schemaregistry.v1+json, application/json",
        );
        if let Some((user, password)) = &self.basic_auth {
            request = request.basic_auth(user, Some(password));
        }
        let failure = |e: reqwest::Error| match e.is_timeout() {
            true => Failure::Timeout(format!("no answer in time: {}", error_chain(&e))),
            false => Failure::Error(error_chain(&e)),
        };
        let mut response = request.send().await.map_err(failure)?;
        let status = response.status().as_u16();
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(failure)? {
            if body.len() + chunk.len() > MAX_ANSWER_BYTES {
                return Err(Failure::Error(format!(
                    "expected an answer of at most {MAX_ANSWER_BYTES} bytes, found more"
                )));
            }
            body.extend_from_slice(&chunk);
        }
        match status {
            200 => Ok(body),
            _ => Err(parse_failure(status, &body)),
        }
    }
}

/// An error with its causes (reqwest's own message omits the underlying I/O error).
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
