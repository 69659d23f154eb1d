//! `kafka-ws-bridge`: parse the command line, set up logging, load the config, run. The only
//! place that exits the process.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use kafka_ws_bridge::app::{self, load, Exit, Listeners, TopicOutcome};
use kafka_ws_bridge::cli::{Cli, Command, LogFormat};
use kafka_ws_bridge::config::{Diagnostic, Severity};

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check { config, online } => check(&config, online),
        Command::Run { config } => {
            init_tracing(cli.log_format, &cli.log_level);
            run(&config)
        }
        Command::CreateTopics {
            config,
            partitions,
            replication,
        } => create_topics(&config, partitions, replication),
    }
}

fn create_topics(path: &Path, partitions: i32, replication: i32) -> ExitCode {
    let plan = match load(path) {
        Ok(plan) => plan,
        Err(diagnostics) => {
            report(&diagnostics);
            return ExitCode::FAILURE;
        }
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread runtime builds");
    match runtime.block_on(app::create_topics(&plan, partitions, replication)) {
        Ok(outcomes) => {
            let mut failed = false;
            for (topic, outcome) in outcomes {
                match outcome {
                    TopicOutcome::Created => println!("{topic}: created"),
                    TopicOutcome::AlreadyExists => println!("{topic}: already exists"),
                    TopicOutcome::Failed(e) => {
                        failed = true;
                        eprintln!("{topic}: failed: {e}");
                    }
                }
            }
            if failed {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

fn check(path: &Path, online: bool) -> ExitCode {
    match load(path) {
        Ok(plan) => {
            for warning in &plan.warnings {
                eprintln!("{warning}");
            }
            if online {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("a current-thread runtime builds");
                let found = runtime.block_on(app::check_online(&plan));
                for diagnostic in found.iter().filter(|d| d.severity != Severity::Error) {
                    eprintln!("{diagnostic}");
                }
                if found.iter().any(|d| d.severity == Severity::Error) {
                    report(&found);
                    return ExitCode::FAILURE;
                }
            }
            println!(
                "{}: OK ({} channels, {} inbound channels, consumer group {})",
                plan.file,
                plan.config.channels.len(),
                plan.config.inbound.len(),
                plan.group_id()
            );
            ExitCode::SUCCESS
        }
        Err(diagnostics) => {
            report(&diagnostics);
            ExitCode::FAILURE
        }
    }
}

fn report(diagnostics: &[Diagnostic]) {
    for diagnostic in diagnostics {
        eprintln!("{diagnostic}");
    }
    let errors = diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .count();
    eprintln!("{errors} error{} found", if errors == 1 { "" } else { "s" });
}

fn run(path: &Path) -> ExitCode {
    let plan = match load(path) {
        Ok(plan) => plan,
        Err(diagnostics) => {
            report(&diagnostics);
            eprintln!("refusing to start with an invalid config");
            return ExitCode::from(2);
        }
    };
    for warning in &plan.warnings {
        tracing::warn!("{warning}");
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let code = runtime.block_on(async move {
        let started = async {
            let listeners = Listeners::bind(&plan).await?;
            app::start(plan, listeners).await
        };
        match started.await {
            Ok(bridge) => match bridge.run_until(shutdown_signal()).await {
                Exit::Stopped => ExitCode::SUCCESS,
                // Logged by the supervisor; an orchestrator restarts the process.
                Exit::Failed(_) => ExitCode::FAILURE,
            },
            Err(e) => {
                tracing::error!("cannot start: {e}");
                ExitCode::FAILURE
            }
        }
    });
    // The shutdown has already waited as long as `shutdown_timeout` allows; a Kafka client
    // call still blocked (e.g. the final offset commit with the broker gone) must not keep
    // the process alive, as dropping the runtime would.
    runtime.shutdown_timeout(Duration::from_millis(100));
    code
}

/// Resolves on the first SIGTERM or SIGINT; a second one exits at once.
async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot install signal handlers; stop with SIGKILL");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received: shutting down (send again to exit at once)"),
        _ = int.recv() => tracing::info!("SIGINT received: shutting down (send again to exit at once)"),
    }
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => {},
            _ = int.recv() => {},
        }
        tracing::warn!("second signal: exiting immediately");
        std::process::exit(130);
    });
}

fn init_tracing(format: LogFormat, filter: &str) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|e| {
        eprintln!("invalid --log-level {filter:?} ({e}); using info");
        EnvFilter::new("info")
    });
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}
