//! The `schema_registry` section: where Avro, Protobuf and JSON Schema records find their
//! schemas (any Confluent-compatible API: Confluent, Apicurio's `ccompat`, Karapace, Redpanda).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::Secret;

/// A Confluent-compatible Schema Registry.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SchemaRegistryConfig {
    /// Base URL of the registry's Confluent-compatible API, e.g.
    /// `http://registry:8081` (Confluent) or `http://registry:8080/apis/ccompat/v7` (Apicurio).
    pub url: String,
    /// HTTP basic authentication: `{username: …, password: ${SR_PASSWORD}}`.
    #[serde(default)]
    pub basic_auth: Option<BasicAuth>,
    /// A PEM file of CA certificates trusted for an `https://` registry, besides the system's.
    #[serde(default)]
    pub ca_file: Option<String>,
    /// Time limit of one registry request, in milliseconds; a request that runs out is tried
    /// again on a fresh connection.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// Most schemas kept compiled in memory; beyond it the least recently used is dropped (and
    /// fetched again when a record needs it).
    #[serde(default = "default_max_schemas")]
    pub max_schemas: usize,
    /// How long a publish channel's `schema_version: latest` is reused before the subject's
    /// latest version is asked again, in seconds: a newly registered version is used for
    /// publishes at most this long after it was registered.
    #[serde(default = "default_latest_refresh_s")]
    pub latest_refresh_s: u64,
}

/// HTTP basic authentication.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BasicAuth {
    /// User name (Confluent Cloud: the API key).
    pub username: String,
    /// Password (Confluent Cloud: the API secret); use `${VAR}` to keep it out of the file.
    pub password: Secret,
}

fn default_timeout_ms() -> u64 {
    5_000
}

fn default_max_schemas() -> usize {
    1_000
}

fn default_latest_refresh_s() -> u64 {
    30
}

/// Which schema version of a subject publishes are written with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum SchemaVersion {
    /// `latest`: the subject's newest version (asked again every
    /// `schema_registry.latest_refresh_s`).
    Latest(LatestVersion),
    /// A version number (1, 2, …).
    Number(u32),
}

/// The word `latest`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum LatestVersion {
    Latest,
}

impl Default for SchemaVersion {
    fn default() -> Self {
        SchemaVersion::Latest(LatestVersion::Latest)
    }
}
