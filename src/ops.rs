//! The operational listener (`metrics.listen`): `/metrics` (Prometheus text), `/healthz`
//! (the process answers), `/readyz` (200 only when the bridge can do its job, with every check
//! listed) and `/api/v1/status` (what this instance runs, like Kafka Connect's status API).

use std::convert::Infallible;
use std::sync::Arc;

use serde::Serialize;
use warp::http::StatusCode;
use warp::{Filter, Reply};

use crate::config::{Deliver, Plan};
use crate::hub::Hub;
use crate::kafka::{KafkaStatus, PartitionStatus};
use crate::metrics::Metrics;
use crate::ws::WsContext;

/// What the operational endpoints look at.
pub struct OpsContext {
    pub instance_id: String,
    pub group_id: String,
    pub metrics: Arc<Metrics>,
    pub kafka: Arc<KafkaStatus>,
    pub hub: Arc<Hub>,
    pub ws: Arc<WsContext>,
    /// Channel name → topic, and inbound channel → topic, for the status page.
    pub channel_topics: Vec<(String, String, Deliver)>,
    pub inbound_topics: Vec<(String, String)>,
    /// Whether the consumer runs (there are outbound channels).
    pub consuming: bool,
    /// Whether some channel keeps snapshots (loaded at start).
    pub snapshots: bool,
}

impl OpsContext {
    pub fn new(
        plan: &Plan,
        metrics: Arc<Metrics>,
        kafka: Arc<KafkaStatus>,
        hub: Arc<Hub>,
        ws: Arc<WsContext>,
    ) -> Self {
        let config = &plan.config;
        OpsContext {
            instance_id: config.instance_id.clone(),
            group_id: plan.group_id(),
            metrics,
            kafka,
            hub,
            ws,
            channel_topics: config
                .channels
                .iter()
                .map(|c| (c.name.clone(), c.topic.clone(), c.deliver))
                .collect(),
            inbound_topics: config
                .inbound
                .iter()
                .map(|i| (i.channel.clone(), i.topic.clone()))
                .collect(),
            consuming: !config.channels.is_empty(),
            snapshots: config.channels.iter().any(|c| c.snapshot),
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
            ok: !ctx.ws.accepting.is_cancelled(),
            detail: if ctx.ws.accepting.is_cancelled() {
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
        let unassigned = ctx.kafka.unassigned_topics();
        checks.push(Check {
            name: "partitions_assigned",
            ok: unassigned.is_empty(),
            detail: if unassigned.is_empty() {
                "every channel topic has assigned partitions".into()
            } else {
                format!("no partitions assigned yet for: {}", unassigned.join(", "))
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
    let ready = checks.iter().all(|c| c.ok);
    ctx.metrics.ready.set(i64::from(ready));
    Readiness { ready, checks }
}

#[derive(Serialize)]
struct ChannelStatus<'a> {
    name: &'a str,
    topic: &'a str,
    deliver: &'static str,
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
        sessions: ctx.ws.sessions.len(),
        channels: ctx
            .channel_topics
            .iter()
            .enumerate()
            .map(|(i, (name, topic, deliver))| ChannelStatus {
                name,
                topic,
                deliver: match deliver {
                    Deliver::Broadcast => "broadcast",
                    Deliver::ByKey => "by_key",
                    Deliver::Reply => "reply",
                },
                subscribers: ctx.hub.subscriber_count(i as u32),
            })
            .collect(),
        inbound: ctx
            .inbound_topics
            .iter()
            .map(|(channel, topic)| InboundStatus { channel, topic })
            .collect(),
        partitions: ctx.kafka.partitions(),
    }
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
        .and(with_ctx)
        .map(|ctx: Arc<OpsContext>| warp::reply::json(&status(&ctx)).into_response());
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
        .recover(|rejection: warp::Rejection| async move {
            let (code, message) = if rejection.is_not_found() {
                (StatusCode::NOT_FOUND, "not found")
            } else {
                (StatusCode::METHOD_NOT_ALLOWED, "method not allowed")
            };
            Ok::<_, Infallible>(crate::ws::json_error(code, message))
        })
        .unify()
}
