//! Builds the whole bridge from a validated [`Plan`], runs it, and shuts it down in order:
//! stop accepting → stop reading client frames → answer every in-flight publish → close
//! sessions with 1001 → stop the consumer (committing offsets) → flush the producer — all
//! within `server.shutdown_timeout_ms`.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::auth::{Authenticator, SetupError};
use crate::config::Plan;
use crate::hub::Hub;
use crate::inbound::{HttpPublish, Inbound};
use crate::kafka::{self, ConsumerHandle, KafkaStatus, Producer};
use crate::metrics::Metrics;
use crate::ops::{self, OpsContext};
use crate::outbound::Outbound;
use crate::outbox::Close;
use crate::server;
use crate::ws::{self, WsContext};

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
    Tls(String),
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
    supervisor: JoinHandle<()>,
}

impl Bridge {
    /// Starts the graceful shutdown and waits for it to finish.
    pub async fn shutdown(self) {
        self.stop.cancel();
        if let Err(e) = self.supervisor.await {
            tracing::error!(error = %e, "shutdown task failed");
        }
    }

    /// Waits for `signal`, then shuts down gracefully.
    pub async fn run_until(self, signal: impl Future<Output = ()>) {
        signal.await;
        self.shutdown().await;
    }
}

/// Everything [`Bridge`] tears down on shutdown.
struct Parts {
    ws: Arc<WsContext>,
    /// The lag monitor and snapshot loader threads, and their stop flag.
    helpers: (Vec<std::thread::JoinHandle<()>>, Arc<AtomicBool>),
    consumer: Option<ConsumerHandle>,
    producer: Option<Producer>,
    ops_stop: CancellationToken,
    shutdown_timeout: Duration,
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

    let hub = Arc::new(Hub::new(&config.channels, |name| metrics.channel(name)));
    let outbound = Arc::new(Outbound::new(&config.channels, hub.clone(), &metrics));
    let producer = if config.inbound.is_empty() && config.server.api_keys.is_empty() {
        None
    } else {
        Some(Producer::new(&plan, status.clone())?)
    };
    let inbound = Arc::new(Inbound::new(&config.inbound, producer.clone(), &metrics));
    let http_publish = Arc::new(HttpPublish::new(
        &config.channels,
        &config.server.api_keys,
        producer.clone(),
        &metrics,
    ));
    let consumer = if config.channels.is_empty() {
        None
    } else {
        let topics = outbound.topics();
        let sink: Arc<dyn kafka::RecordSink> = outbound.clone();
        Some(kafka::start_consumer(&plan, topics, sink, status.clone())?)
    };
    // Helper threads: the lag monitor and the snapshot loader, stopped together.
    let loader_stop = Arc::new(AtomicBool::new(false));
    let lag_monitor = if config.channels.is_empty() {
        None
    } else {
        Some(
            kafka::monitor_lag(&plan, status.clone(), loader_stop.clone())
                .map_err(kafka::StartError::Thread)?,
        )
    };
    // Snapshots are rebuilt from the beginning of their topics, beside the live consumer.
    let snapshot_topics = outbound.snapshot_topics();
    let loader = if snapshot_topics.is_empty() {
        None
    } else {
        status.expect_snapshots();
        Some(
            kafka::load_snapshots(
                &plan,
                snapshot_topics,
                outbound.snapshot_loader(),
                status.clone(),
                loader_stop.clone(),
            )
            .map_err(kafka::StartError::Thread)?,
        )
    };

    let ws_ctx = Arc::new(WsContext::new(
        &plan,
        hub.clone(),
        outbound,
        inbound,
        http_publish,
        metrics.clone(),
        auth,
    ));
    let ops_ctx = Arc::new(OpsContext::new(&plan, metrics, status, hub, ws_ctx.clone()));
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
    tokio::spawn(server::serve(
        listeners.ws,
        warp::service(ws::routes(ws_ctx.clone())),
        ws_ctx.accepting.clone(),
        tls,
        handshake_timeout,
    ));
    let ops_stop = CancellationToken::new();
    tokio::spawn(server::serve(
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
        helpers: (lag_monitor.into_iter().chain(loader).collect(), loader_stop),
        consumer,
        producer,
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

async fn supervise(parts: Parts, stop: CancellationToken) {
    stop.cancelled().await;
    let started = Instant::now();
    let deadline = started + parts.shutdown_timeout;
    let ws = &parts.ws;
    tracing::info!(sessions = ws.sessions.len(), "shutting down");

    ws.accepting.cancel();
    ws.draining.cancel();
    ws.publishes.close();
    if tokio::time::timeout_at(deadline.into(), ws.publishes.wait())
        .await
        .is_err()
    {
        tracing::warn!("shutdown deadline reached with publishes still waiting for kafka");
    }
    ws.sessions.close_all(Close {
        code: 1001,
        reason: "server shutting down",
        drain: true,
    });
    ws.session_tasks.close();
    if tokio::time::timeout_at(deadline.into(), ws.session_tasks.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            sessions = ws.sessions.len(),
            "shutdown deadline reached with sessions still closing"
        );
    }
    let consumer = parts.consumer;
    let producer = parts.producer;
    let (helpers, helpers_stop) = parts.helpers;
    let remaining = deadline.saturating_duration_since(Instant::now());
    // Side by side: the consumer's final offset commit waits for the broker without a time
    // limit of its own (librdkafka), so it must not hold up the producer's flush. Whatever is
    // still stuck at the deadline is abandoned: `main` does not wait for it either.
    let consumer = tokio::task::spawn_blocking(move || {
        helpers_stop.store(true, Ordering::Release);
        for thread in helpers {
            let _ = thread.join();
        }
        if let Some(consumer) = consumer {
            consumer.stop();
        }
    });
    let producer = tokio::task::spawn_blocking(move || {
        if let Some(producer) = producer {
            if let Err(e) = producer.flush(remaining) {
                tracing::warn!(error = %e, in_flight = producer.in_flight(), "producer flush incomplete");
            }
        }
    });
    let remaining = deadline.saturating_duration_since(Instant::now()) + Duration::from_secs(1);
    if tokio::time::timeout(remaining, async {
        let _ = tokio::join!(consumer, producer);
    })
    .await
    .is_err()
    {
        tracing::warn!(
            "shutdown deadline reached while stopping kafka clients (broker unreachable?): \
             offsets routed since the last commit will be routed again after a restart"
        );
    }
    parts.ops_stop.cancel();
    tracing::info!(
        elapsed_ms = started.elapsed().as_millis() as u64,
        "shutdown complete"
    );
}
