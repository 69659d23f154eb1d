//! Schema Registry formats: records in Confluent's wire format (Avro, Protobuf, JSON Schema)
//! decoded to JSON text once per record, and publishes validated and encoded back into it.
//! Schemas are fetched by id from any Confluent-compatible registry, compiled once, and
//! cached; the per-record path makes no request and no allocation beyond the decode itself.
//!
//! Limits: a schema's `references` are fetched (at most 100, transitively) and serve Protobuf
//! imports, Avro named types and JSON Schema `$ref`s; Confluent's own Protobuf imports
//! (`confluent/meta.proto`, `confluent/type/decimal.proto`) and Google's well-known types are
//! built in. Decoded values nest at most 64 levels (Protobuf: prost's 100) and are at most
//! [`RegistrySettings::max_json_bytes`] long. Float NaN and infinities become the strings
//! `"NaN"`, `"Infinity"`, `"-Infinity"` (as in the proto3 mapping) and are read back from them.

mod avro;
#[cfg(test)]
mod bench;
mod cache;
mod client;
mod flights;
mod json_out;
mod json_schema;
mod protobuf;
mod schema;
#[cfg(test)]
mod tests;
mod wire;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use thiserror::Error;

pub use crate::metrics::RegistryMetrics;
pub use schema::{DecodeError, InvalidData, Reference, Schema, SchemaKind};
pub(crate) use wire::split_wire;

use cache::Cache;
use client::Client;
use flights::Flights;

/// How to reach the registry and how much to hold.
#[derive(Debug, Clone)]
pub struct RegistrySettings {
    /// The API's base URL, e.g. `http://registry:8080/apis/ccompat/v7`.
    pub url: String,
    /// User name and password for HTTP basic authentication.
    pub basic_auth: Option<(String, String)>,
    /// PEM certificates trusted besides the system's roots.
    pub ca_file: Option<PathBuf>,
    /// The limit of each request (connection included); one retry follows a failure.
    pub timeout: Duration,
    /// How many compiled schemas are kept (least recently used go first).
    pub max_schemas: usize,
    /// The longest JSON text one record may decode to.
    pub max_json_bytes: usize,
    /// How long a subject's `latest` version is reused before the registry is asked again.
    pub latest_refresh: Duration,
}

impl RegistrySettings {
    /// Settings for `url` with the defaults: 5 s timeout, 1,000 schemas, 4 MiB of JSON.
    pub fn new(url: impl Into<String>) -> RegistrySettings {
        RegistrySettings {
            url: url.into(),
            basic_auth: None,
            ca_file: None,
            timeout: Duration::from_secs(5),
            max_schemas: 1000,
            max_json_bytes: 4 << 20,
            latest_refresh: Duration::from_secs(30),
        }
    }
}

/// A version of a subject.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SchemaVersion {
    Latest,
    Number(u32),
}

impl std::fmt::Display for SchemaVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SchemaVersion::Latest => f.write_str("latest"),
            SchemaVersion::Number(n) => write!(f, "{n}"),
        }
    }
}

/// What [`Registry::lookup`] knows of an id right now.
#[derive(Debug, Clone)]
pub enum Lookup {
    Ready(Arc<Schema>),
    /// Being fetched (or waiting to be fetched again after a failure): the record waits.
    Pending,
    /// The registry has no such schema, or it does not compile: the record is bad.
    Bad(String),
}

/// The registry as `/readyz` and `/api/v1/status` show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryStatus {
    /// False while the last request failed (no answer, or not a registry answer).
    pub reachable: bool,
    pub last_error: Option<String>,
    pub last_error_at: Option<SystemTime>,
    /// Schemas compiled and cached.
    pub cached: usize,
    /// Schema ids being fetched or waiting to be fetched again: records wait for them.
    pub waiting: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RegistryError {
    #[error("schema_registry.{0}")]
    Settings(String),
    #[error("{what} is not in the schema registry: {message}")]
    NotFound { what: String, message: String },
    #[error("{what} cannot be used: {reason}")]
    Invalid { what: String, reason: String },
    #[error("the schema registry is unavailable: {0}")]
    Unavailable(String),
}

/// The registry client and the compiled schemas; share it in an `Arc`.
pub struct Registry {
    inner: Arc<Inner>,
}

struct Inner {
    client: Client,
    cache: Cache,
    flights: Flights,
    metrics: RegistryMetrics,
    runtime: tokio::runtime::Handle,
    max_json_bytes: usize,
    latest_refresh: Duration,
    subjects: flights::Subjects,
}

impl Registry {
    /// Checks the settings (URL, CA file) and sets up the client; nothing is fetched yet.
    pub fn new(
        settings: RegistrySettings,
        metrics: RegistryMetrics,
        runtime: tokio::runtime::Handle,
    ) -> Result<Self, RegistryError> {
        let client = Client::new(&settings, metrics.clone()).map_err(RegistryError::Settings)?;
        // Records are decoded by this module's own walker, which allocates nothing for a
        // declared length; apache-avro's reader is bounded too, should anything use it.
        apache_avro::util::max_allocation_bytes(settings.max_json_bytes);
        Ok(Registry {
            inner: Arc::new(Inner {
                client,
                cache: Cache::new(settings.max_schemas),
                flights: Flights::default(),
                metrics,
                runtime,
                max_json_bytes: settings.max_json_bytes,
                latest_refresh: settings.latest_refresh,
                subjects: flights::Subjects::default(),
            }),
        })
    }

    /// Never blocks (the consumer's own thread calls it per record): the schema when cached;
    /// otherwise one fetch of the id is started on the runtime (however many callers ask
    /// while it runs) and the answer is `Pending`, also while a failed fetch backs off (200 ms
    /// doubling to 10 s) before it is tried again. `Bad` when the registry answered that it
    /// has no such schema or the schema does not compile; that is remembered for 30 s, so a
    /// flood of bad records does not become a flood of requests.
    pub fn lookup(&self, id: u32) -> Lookup {
        match self.inner.cache.get(id) {
            Some(schema) => Lookup::Ready(schema),
            None => flights::lookup(&self.inner, id),
        }
    }

    /// For replays and publishes: the schema, fetched if needed (sharing a fetch under way).
    /// While the id backs off after a failure, that failure is the answer at once.
    pub async fn schema(&self, id: u32) -> Result<Arc<Schema>, RegistryError> {
        flights::schema(&self.inner, id).await
    }

    /// The schema of a subject's version and its id, for publishes. A numbered version is
    /// fetched once. `latest` is asked again at most every `latest_refresh` (default 30 s), so a
    /// newly registered version is used within that time; if asking again fails, the version known is used and the registry
    /// asked again after 5 s.
    pub async fn subject(
        &self,
        subject: &str,
        version: SchemaVersion,
    ) -> Result<(u32, Arc<Schema>), RegistryError> {
        flights::subject(&self.inner, subject, version).await
    }

    pub fn status(&self) -> RegistryStatus {
        let health = self.inner.client.health.lock();
        let reachable = match (&health.last_failure, health.last_ok) {
            (None, _) => true,
            (Some((failed, ..)), Some(ok)) => ok > *failed,
            (Some(_), None) => false,
        };
        RegistryStatus {
            reachable,
            last_error: health.last_failure.as_ref().map(|(_, _, e)| e.clone()),
            last_error_at: health.last_failure.as_ref().map(|(_, at, _)| *at),
            cached: self.inner.cache.len(),
            waiting: self.inner.flights.waiting(),
        }
    }
}
