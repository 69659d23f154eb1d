//! Builds the whole bridge from a validated [`Plan`], runs it under a supervisor, and shuts it
//! down in order: stop accepting → stop reading client frames → answer every in-flight publish
//! → close sessions with 1001 → stop the consumer (committing offsets) → flush the producer —
//! all within `server.shutdown_timeout_ms`. The same shutdown runs when a part fails (a fatal
//! Kafka client error, a task or thread that died); the bridge then exits with an error so that
//! an orchestrator restarts it.

mod checks;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::select_all;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::auth::{Authenticator, JwksMetrics, SetupError};
use crate::catalogue::Catalogue;
use crate::config::Plan;
use crate::hub::Hub;
use crate::inbound::{HttpPublish, Inbound};
use crate::kafka::{self, KafkaSide, KafkaStatus, Outlets};
use crate::metrics::{JwksFetch, Metrics, SessionRegistryRecord};
use crate::ops::{self, OpsContext};
use crate::outbound::{Outbound, Replayer};
use crate::registry::{Registry, RegistrySettings};
use crate::server;
use crate::session;
use crate::sessions::{Sessions, Shared, SharedMetrics};
use crate::ws::{self, WsContext};

pub use checks::{check_online, create_topics, load, TopicOutcome};

/// Why the bridge could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Kafka(#[from] kafka::StartError),
    #[error("authentication: {0}")]
    Auth(#[from] SetupError),
    #[error("server.tls: {0}")]
    Tls(crate::server::TlsError),
    #[error("inbound schema_file: {0}")]
    Schema(crate::catalogue::SchemaFileError),
    #[error(transparent)]
    Registry(#[from] crate::registry::RegistryError),
}

/// How a bridge ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exit {
    /// Asked to stop (a signal, [`Bridge::shutdown`]).
    Stopped,
    /// A part failed; the reason was logged.
    Failed(String),
}

/// The two listeners, bound before starting so that callers (tests) may bind port 0.
pub struct Listeners {
    pub ws: TcpListener,
    pub metrics: TcpListener,
}

impl Listeners {
    /// Binds the addresses of the plan.
    pub async fn bind(plan: &Plan) -> Result<Self, StartError> {
        let bind = |addr: SocketAddr| async move {
            TcpListener::bind(addr)
                .await
                .map_err(|source| StartError::Bind { addr, source })
        };
        Ok(Listeners {
            ws: bind(plan.listen).await?,
            metrics: bind(plan.metrics_listen).await?,
        })
    }
}

/// A running bridge.
pub struct Bridge {
    pub ws_addr: SocketAddr,
    pub metrics_addr: SocketAddr,
    stop: CancellationToken,
    supervisor: JoinHandle<Exit>,
}

impl Bridge {
    /// Starts the graceful shutdown and waits for it to finish.
    pub async fn shutdown(self) -> Exit {
        self.stop.cancel();
        supervisor_exit(self.supervisor.await)
    }

    /// Runs until `signal` (then shuts down gracefully) or until a part fails (the supervisor
    /// has shut down already).
    pub async fn run_until(mut self, signal: impl Future<Output = ()>) -> Exit {
        tokio::select! {
            () = signal => self.shutdown().await,
            exit = &mut self.supervisor => supervisor_exit(exit),
        }
    }
}

fn supervisor_exit(joined: Result<Exit, tokio::task::JoinError>) -> Exit {
    joined.unwrap_or_else(|e| {
        tracing::error!(error = %e, "shutdown task failed");
        Exit::Failed(format!("shutdown task failed: {e}"))
    })
}

/// The registry client's settings from `schema_registry` (paths resolved against the file).
pub(crate) fn registry_settings(
    plan: &Plan,
    config: &crate::config::SchemaRegistryConfig,
) -> RegistrySettings {
    let mut settings = RegistrySettings::new(config.url.clone());
    settings.basic_auth = config
        .basic_auth
        .as_ref()
        .map(|auth| (auth.username.clone(), auth.password.expose().to_owned()));
    settings.ca_file = config
        .ca_file
        .as_deref()
        .map(|file| plan.resolve_path(file));
    settings.timeout = Duration::from_millis(config.timeout_ms);
    settings.max_schemas = config.max_schemas;
    settings.latest_refresh = Duration::from_secs(config.latest_refresh_s);
    settings
}

/// Builds and starts every part of the bridge.
pub async fn start(plan: Plan, listeners: Listeners) -> Result<Bridge, StartError> {
    let config = &plan.config;
    let channel_names: Vec<&str> = config.channels.iter().map(|c| c.name.as_str()).collect();
    let topics: Vec<&str> = config.channels.iter().map(|c| c.topic.as_str()).collect();
    let inbound_names: Vec<&str> = config.inbound.iter().map(|i| i.channel.as_str()).collect();
    let metrics = Arc::new(Metrics::new(&channel_names, &topics, &inbound_names));
    let status = Arc::new(KafkaStatus::new(metrics.clone()));
    let auth = Authenticator::from_plan(&plan)?;
    let jwks = auth.jwks().cloned();
    if let Some(jwks) = &jwks {
        jwks.set_metrics(JwksMetrics {
            fetched: metrics
                .jwks_fetches
                .with_label_values(&[JwksFetch::Ok.as_str()]),
            failed: metrics
                .jwks_fetches
                .with_label_values(&[JwksFetch::Failed.as_str()]),
            keys: metrics.jwks_keys.clone(),
        });
    }

    let catalogue = Arc::new(Catalogue::from_plan(&plan, &metrics).map_err(StartError::Schema)?);
    let hub = Arc::new(Hub::new(catalogue.clone()));
    spawn_conflation_flusher(&hub);
    let registry = match &config.schema_registry {
        Some(registry) => Some(Arc::new(
            Registry::new(
                registry_settings(&plan, registry),
                metrics.schema_registry(),
                tokio::runtime::Handle::current(),
            )
            .map_err(StartError::Registry)?,
        )),
        None => None,
    };
    let outbound = Arc::new(Outbound::new(
        catalogue.clone(),
        hub.clone(),
        &metrics,
        registry.clone(),
    ));
    let mut kafka = KafkaSide::new(&plan, status.clone())?;
    let inbound = Arc::new(Inbound::new(
        catalogue.clone(),
        kafka.writer(),
        registry.clone(),
    ));
    let http_publish = Arc::new(HttpPublish::new(
        catalogue.clone(),
        &config.server.api_keys,
        kafka.writer(),
        registry.clone(),
    ));
    let replayer = Arc::new(Replayer::new(
        catalogue.clone(),
        kafka.reader(),
        registry.clone(),
    ));
    let sessions = Arc::new(
        match kafka.session_registry_log(&plan, metrics.session_registry_write_failures.clone()) {
            Some(log) => Sessions::with_registry(Shared::new(
                config.instance_id.clone(),
                config.auth.max_sessions_per_user,
                log,
                SharedMetrics {
                    opened: metrics
                        .session_registry_records
                        .with_label_values(&[SessionRegistryRecord::Opened.as_str()]),
                    closed: metrics
                        .session_registry_records
                        .with_label_values(&[SessionRegistryRecord::Closed.as_str()]),
                    ignored: metrics
                        .session_registry_records
                        .with_label_values(&[SessionRegistryRecord::Ignored.as_str()]),
                },
            )),
            None => Sessions::default(),
        },
    );
    kafka.start_session_registry(&plan, sessions.clone())?;
    kafka.start_consuming(
        &plan,
        Outlets {
            topics: catalogue.topics(),
            sink: outbound.clone(),
            snapshot_topics: catalogue.snapshot_topics(),
            snapshot_sink: outbound.snapshot_loader(),
        },
    )?;

    let core = Arc::new(session::Context {
        catalogue: hub.catalogue_handle(),
        hub: hub.clone(),
        replayer,
        inbound,
        metrics: metrics.clone(),
        auth,
        limits: session::Limits::from_plan(&plan),
        sessions: sessions.clone(),
        publishes: tokio_util::task::TaskTracker::new(),
    });
    let ws_ctx = Arc::new(WsContext::new(&plan, core, http_publish));
    let mut ops_ctx = OpsContext::new(
        &plan,
        metrics,
        status.clone(),
        hub,
        sessions,
        ws_ctx.accepting.clone(),
    );
    ops_ctx.jwks = jwks.clone();
    ops_ctx.registry = registry;
    let ops_ctx = Arc::new(ops_ctx);
    let ws_addr = local_addr(&listeners.ws)?;
    let metrics_addr = local_addr(&listeners.metrics)?;
    let tls = match &config.server.tls {
        Some(tls) => Some(
            server::tls_acceptor(
                &plan.resolve_path(&tls.cert_file),
                &plan.resolve_path(&tls.key_file),
            )
            .map_err(StartError::Tls)?,
        ),
        None => None,
    };
    let scheme = if tls.is_some() { "wss" } else { "ws" };
    let handshake_timeout = Duration::from_millis(config.server.handshake_timeout_ms);
    let ws_server = tokio::spawn(server::serve(
        listeners.ws,
        warp::service(ws::routes(ws_ctx.clone())),
        ws_ctx.accepting.clone(),
        tls,
        handshake_timeout,
    ));
    let ops_stop = CancellationToken::new();
    if let Some(jwks) = jwks {
        // Keys are fetched in the background: /readyz says not ready until the first arrive.
        let stop = ops_stop.clone();
        tokio::spawn(async move { jwks.run(stop).await });
    }
    let ops_server = tokio::spawn(server::serve(
        listeners.metrics,
        warp::service(ops::routes(ops_ctx)),
        ops_stop.clone(),
        None,
        handshake_timeout,
    ));
    tracing::info!(
        instance = %config.instance_id,
        group = %plan.group_id(),
        ws = %format!("{scheme}://{ws_addr}{}", config.server.ws_path),
        metrics = %format!("http://{metrics_addr}/metrics"),
        channels = config.channels.len(),
        inbound = config.inbound.len(),
        "bridge started"
    );

    let parts = Parts {
        ws: ws_ctx,
        kafka,
        status,
        servers: vec![ws_server, ops_server],
        ops_stop,
        shutdown_timeout: Duration::from_millis(config.server.shutdown_timeout_ms),
    };
    let stop = CancellationToken::new();
    let supervisor = tokio::spawn(supervise(parts, stop.clone()));
    Ok(Bridge {
        ws_addr,
        metrics_addr,
        stop,
        supervisor,
    })
}

fn local_addr(listener: &TcpListener) -> Result<SocketAddr, StartError> {
    listener.local_addr().map_err(|source| StartError::Bind {
        addr: SocketAddr::from(([0, 0, 0, 0], 0)),
        source,
    })
}

/// Everything the supervisor watches and tears down.
struct Parts {
    ws: Arc<WsContext>,
    kafka: KafkaSide,
    status: Arc<KafkaStatus>,
    /// The accept loops of both listeners: they end only when told to.
    servers: Vec<JoinHandle<()>>,
    ops_stop: CancellationToken,
    shutdown_timeout: Duration,
}

/// Waits for a stop request or a failure, then shuts everything down in order.
async fn supervise(mut parts: Parts, stop: CancellationToken) -> Exit {
    let exit = tokio::select! {
        () = stop.cancelled() => Exit::Stopped,
        reason = parts.status.failed() => Exit::Failed(reason),
        (ended, _, _) = select_all(parts.servers.iter_mut()) => Exit::Failed(match ended {
            Ok(()) => "a listener's accept loop ended".to_owned(),
            Err(e) => format!("a listener's accept loop died: {e}"),
        }),
    };
    if let Exit::Failed(reason) = &exit {
        tracing::error!(
            reason = %reason,
            "a part of the bridge failed: shutting down, then exiting with status 1 (let the orchestrator restart it)"
        );
    }
    let started = Instant::now();
    let deadline = started + parts.shutdown_timeout;
    tracing::info!(sessions = parts.ws.core.sessions.len(), "shutting down");
    parts.ws.stop(deadline).await;
    parts.kafka.stop(deadline).await;
    parts.ops_stop.cancel();
    tracing::info!(
        elapsed_ms = started.elapsed().as_millis() as u64,
        "shutdown complete"
    );
    exit
}

/// Sends what `max_rate` held back once due, every 20 ms (the granularity of conflation); ends
/// with the hub.
fn spawn_conflation_flusher(hub: &Arc<Hub>) {
    let hub = Arc::downgrade(hub);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_millis(20));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let Some(hub) = hub.upgrade() else {
                return;
            };
            hub.flush_conflated();
        }
    });
}
