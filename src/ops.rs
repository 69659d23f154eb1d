//! The operational listener (`metrics.listen`): `/metrics` (Prometheus text), `/healthz`
//! (the process answers), `/readyz` (200 only when the bridge can do its job, with every check
//! listed) and `/api/v1/status` (what this instance runs, like Kafka Connect's status API).

use std::convert::Infallible;
use std::sync::Arc;

use serde::Serialize;
use warp::http::StatusCode;
use warp::{Filter, Reply};

use tokio_util::sync::CancellationToken;

use crate::catalogue::Catalogue;
use crate::config::{Deliver, Plan};
use crate::hub::Hub;
use crate::kafka::{KafkaStatus, PartitionStatus};
use crate::metrics::Metrics;
use crate::server::http::{bearer, json_error};
use crate::sessions::{Loading, Sessions};

/// What the operational endpoints look at.
pub struct OpsContext {
    pub instance_id: String,
    pub group_id: String,
    pub metrics: Arc<Metrics>,
    pub kafka: Arc<KafkaStatus>,
    pub hub: Arc<Hub>,
    pub catalogue: Arc<Catalogue>,
    pub sessions: Arc<Sessions>,
    /// Cancelled when the client listener stops taking connections.
    pub accepting: CancellationToken,
    /// Whether the consumer runs (there are outbound channels).
    pub consuming: bool,
    /// Whether some channel keeps snapshots (loaded at start).
    pub snapshots: bool,
    /// Keys that may pause and resume delivery (`server.api_keys`); none: the endpoints are off.
    pub api_keys: Vec<crate::config::Secret>,
    /// The identity provider's key set, when tokens are verified with one.
    pub jwks: Option<Arc<crate::auth::Jwks>>,
    /// `schema_registry`, when configured.
    pub registry: Option<Arc<crate::registry::Registry>>,
}

impl OpsContext {
    pub fn new(
        plan: &Plan,
        metrics: Arc<Metrics>,
        kafka: Arc<KafkaStatus>,
        hub: Arc<Hub>,
        sessions: Arc<Sessions>,
        accepting: CancellationToken,
    ) -> Self {
        let config = &plan.config;
        OpsContext {
            instance_id: config.instance_id.clone(),
            group_id: plan.group_id(),
            metrics,
            kafka,
            catalogue: hub.catalogue_handle(),
            hub,
            sessions,
            accepting,
            consuming: !config.channels.is_empty(),
            snapshots: config.channels.iter().any(|c| c.snapshot),
            api_keys: config.server.api_keys.clone(),
            jwks: None,
            registry: None,
        }
    }
}

#[derive(Serialize)]
struct Check {
    name: &'static str,
    ok: bool,
    detail: String,
}

#[derive(Serialize)]
struct Readiness {
    ready: bool,
    checks: Vec<Check>,
}

fn readiness(ctx: &OpsContext) -> Readiness {
    let mut checks = vec![
        Check {
            name: "accepting_connections",
            ok: !ctx.accepting.is_cancelled(),
            detail: if ctx.accepting.is_cancelled() {
                "shutting down".into()
            } else {
                "accepting WebSocket connections".into()
            },
        },
        Check {
            name: "kafka_reachable",
            ok: ctx.kafka.reachable(),
            detail: match ctx.kafka.reachable() {
                true => "connected to the cluster".into(),
                false => ctx
                    .kafka
                    .last_error()
                    .unwrap_or_else(|| "no broker connection yet".into()),
            },
        },
    ];
    if ctx.consuming {
        let incomplete = ctx.kafka.incompletely_assigned();
        checks.push(Check {
            name: "partitions_assigned",
            ok: incomplete.is_empty(),
            detail: if incomplete.is_empty() {
                "every partition of every channel topic is assigned to this instance".into()
            } else {
                incomplete
                    .iter()
                    .map(|(topic, held, total)| match (held, total) {
                        (_, None) => format!(
                            "{topic}: not in Kafka's metadata yet — does the topic exist? (kafka-ws-bridge create-topics)"
                        ),
                        (0, Some(total)) => format!("{topic}: 0 of {total} partitions assigned yet (joining the consumer group)"),
                        (held, Some(total)) => format!(
                            "{topic}: {held} of {total} partitions assigned — another process shares this instance's consumer group: is a second instance running with instance_id {}?",
                            ctx.instance_id
                        ),
                    })
                    .collect::<Vec<_>>()
                    .join("; ")
            },
        });
        let waiting = ctx.kafka.partitions_not_fetching();
        checks.push(Check {
            name: "consumer_positioned",
            ok: waiting == 0,
            detail: if waiting == 0 {
                "every assigned partition is being fetched".into()
            } else {
                format!("{waiting} partitions still resolving their start offset")
            },
        });
    }
    if ctx.snapshots {
        let loaded = ctx.kafka.snapshots_loaded();
        checks.push(Check {
            name: "snapshots_loaded",
            ok: loaded,
            detail: if loaded {
                "snapshot channels are rebuilt from Kafka".into()
            } else {
                "reading snapshot topics up to the high watermarks seen at start".into()
            },
        });
    }
    if let Some(loading) = ctx.sessions.registry_loading() {
        checks.push(Check {
            name: "session_registry",
            ok: loading == Loading::Loaded,
            detail: match loading {
                Loading::Loaded => {
                    "every instance's open sessions are known (auth.session_registry)".into()
                }
                Loading::Reading(None) => "reading the session registry topic up to its end".into(),
                Loading::Reading(Some(why)) => {
                    format!("cannot read the session registry topic: {why}")
                }
            },
        });
    }
    if let Some(jwks) = &ctx.jwks {
        checks.push(signing_keys_check(&jwks.status()));
    }
    if let Some(registry) = &ctx.registry {
        checks.push(schema_registry_check(&registry.status()));
    }
    let ready = checks.iter().all(|c| c.ok);
    ctx.metrics.ready.set(i64::from(ready));
    Readiness { ready, checks }
}

/// Ready while keys are cached, also when the last refresh failed (cached keys keep working
/// through an outage of the provider); the detail says so.
fn signing_keys_check(status: &crate::auth::JwksStatus) -> Check {
    let url = status.url.as_deref().unwrap_or("the identity provider");
    let detail = match (&status.last_error, status.keys) {
        (None, 0) => format!("fetching signing keys from {url}"),
        (None, keys) => format!("{keys} signing keys from {url}"),
        (Some(error), 0) => format!("no signing keys yet: {error}"),
        (Some(error), keys) => {
            format!("{keys} cached signing keys in use; the last refresh failed: {error}")
        }
    };
    Check {
        name: "signing_keys",
        ok: status.keys > 0,
        detail,
    }
}

/// Not ready only while records wait for schemas the registry cannot give: cached schemas
/// keep their records flowing through an outage, and a registry that is only slow is not a
/// reason to take the instance out of service.
fn schema_registry_check(status: &crate::registry::RegistryStatus) -> Check {
    let error = status.last_error.as_deref().unwrap_or("no answer yet");
    let detail = match (status.reachable, status.waiting) {
        (true, 0) => format!("{} schemas cached", status.cached),
        (true, waiting) => format!(
            "{} schemas cached; fetching {waiting} schema ids records wait for",
            status.cached
        ),
        (false, 0) => format!(
            "{} schemas cached and in use; the last request failed: {error}",
            status.cached
        ),
        (false, waiting) => format!(
            "records wait for {waiting} schema ids the registry does not give: {error} (their partitions are paused, nothing is dropped; {} schemas cached)",
            status.cached
        ),
    };
    Check {
        name: "schema_registry",
        ok: status.reachable || status.waiting == 0,
        detail,
    }
}

#[derive(Serialize)]
struct ChannelStatus<'a> {
    name: &'a str,
    topic: &'a str,
    deliver: Deliver,
    subscribers: usize,
}

#[derive(Serialize)]
struct InboundStatus<'a> {
    channel: &'a str,
    topic: &'a str,
}

#[derive(Serialize)]
struct Status<'a> {
    instance_id: &'a str,
    group_id: &'a str,
    version: &'static str,
    ready: bool,
    /// Outbound delivery paused by an operator.
    paused: bool,
    sessions: usize,
    channels: Vec<ChannelStatus<'a>>,
    inbound: Vec<InboundStatus<'a>>,
    partitions: Vec<PartitionStatus>,
}

fn status(ctx: &OpsContext) -> Status<'_> {
    Status {
        instance_id: &ctx.instance_id,
        group_id: &ctx.group_id,
        version: env!("CARGO_PKG_VERSION"),
        ready: readiness(ctx).ready,
        paused: ctx.kafka.paused(),
        sessions: ctx.sessions.len(),
        channels: ctx
            .catalogue
            .channels()
            .iter()
            .map(|c| ChannelStatus {
                name: c.name(),
                topic: &c.spec.topic,
                deliver: c.deliver(),
                subscribers: ctx.hub.subscriber_count(c.id),
            })
            .collect(),
        inbound: ctx
            .catalogue
            .inbound_channels()
            .iter()
            .map(|c| InboundStatus {
                channel: c.name(),
                topic: &c.spec.topic,
            })
            .collect(),
        partitions: ctx.kafka.partitions(),
    }
}

/// `POST /api/v1/pause` and `/api/v1/resume`: stop and restart outbound delivery (the
/// consumer stops fetching; sessions stay connected; lag grows). Needs an API key.
async fn pause_or_resume(
    ctx: &OpsContext,
    action: &str,
    authorization: Option<&str>,
) -> warp::reply::Response {
    let paused = match action {
        "pause" => true,
        "resume" => false,
        _ => return json_error(StatusCode::NOT_FOUND, "not found"),
    };
    if ctx.api_keys.is_empty() {
        return json_error(
            StatusCode::FORBIDDEN,
            "disabled: set server.api_keys to allow pause and resume",
        );
    }
    if !crate::auth::api_key_matches(&ctx.api_keys, bearer(authorization)) {
        return json_error(StatusCode::UNAUTHORIZED, "missing or unknown API key");
    }
    ctx.kafka.request_pause(paused);
    // Answer once the consumer has applied it (it checks between polls).
    if ctx.consuming
        && tokio::time::timeout(
            std::time::Duration::from_secs(5),
            ctx.kafka.pause_settled(paused),
        )
        .await
        .is_err()
    {
        return json_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the consumer did not apply it within 5 s",
        );
    }
    tracing::info!(
        paused,
        "outbound delivery {} by an operator",
        if paused { "paused" } else { "resumed" }
    );
    warp::reply::json(&serde_json::json!({ "paused": paused })).into_response()
}

/// Routes of the operational listener.
pub fn routes(
    ctx: Arc<OpsContext>,
) -> impl Filter<Extract = (warp::reply::Response,), Error = Infallible> + Clone {
    let with_ctx = warp::any().map(move || ctx.clone());
    let metrics = warp::path!("metrics")
        .and(with_ctx.clone())
        .map(|ctx: Arc<OpsContext>| {
            // Evaluate readiness so the `ready` gauge is current in every scrape.
            readiness(&ctx);
            warp::reply::with_header(
                ctx.metrics.render(),
                "content-type",
                "text/plain; version=0.0.4; charset=utf-8",
            )
            .into_response()
        });
    let healthz = warp::path!("healthz")
        .map(|| warp::reply::json(&serde_json::json!({ "status": "ok" })).into_response());
    let readyz = warp::path!("readyz")
        .and(with_ctx.clone())
        .map(|ctx: Arc<OpsContext>| {
            let readiness = readiness(&ctx);
            let code = if readiness.ready {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            warp::reply::with_status(warp::reply::json(&readiness), code).into_response()
        });
    let status_route = warp::path!("api" / "v1" / "status")
        .and(with_ctx.clone())
        .map(|ctx: Arc<OpsContext>| warp::reply::json(&status(&ctx)).into_response());
    let pause = warp::path!("api" / "v1" / String)
        .and(warp::post())
        .and(warp::header::optional::<String>("authorization"))
        .and(with_ctx)
        .then(
            |action: String, authorization: Option<String>, ctx: Arc<OpsContext>| async move {
                pause_or_resume(&ctx, &action, authorization.as_deref()).await
            },
        );
    warp::get()
        .and(
            metrics
                .or(healthz)
                .unify()
                .or(readyz)
                .unify()
                .or(status_route)
                .unify(),
        )
        .or(pause)
        .unify()
        .recover(|rejection: warp::Rejection| async move {
            let (code, message) = if rejection.is_not_found() {
                (StatusCode::NOT_FOUND, "not found")
            } else {
                (StatusCode::METHOD_NOT_ALLOWED, "method not allowed")
            };
            Ok::<_, Infallible>(json_error(code, message))
        })
        .unify()
}
