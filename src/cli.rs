//! Command-line interface. Only runtime flags live here; what the bridge does is in the YAML.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "kafka-ws-bridge",
    version,
    about = "Bridges Kafka topics and WebSocket clients, configured by one YAML file"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Log line format.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "BRIDGE_LOG_FORMAT")]
    pub log_format: LogFormat,
    /// Log filter, e.g. `info` or `info,kafka_ws_bridge=debug` (tracing EnvFilter syntax).
    #[arg(long, global = true, default_value = "info", env = "BRIDGE_LOG")]
    pub log_level: String,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the bridge.
    Run {
        /// Config file.
        #[arg(long, short, default_value = "bridge.yaml", env = "BRIDGE_CONFIG")]
        config: PathBuf,
    },
    /// Validate a config file: print every problem with its line, exit non-zero if any.
    Check {
        /// Config file.
        #[arg(long, short, default_value = "bridge.yaml", env = "BRIDGE_CONFIG")]
        config: PathBuf,
        /// Also ask the services the config names (the schema registry): the subjects publish
        /// channels write with exist and their schemas compile.
        #[arg(long)]
        online: bool,
    },
    /// Create every topic the config reads or writes (existing topics are left alone).
    CreateTopics {
        /// Config file.
        #[arg(long, short, default_value = "bridge.yaml", env = "BRIDGE_CONFIG")]
        config: PathBuf,
        /// Partitions of each new topic.
        #[arg(long, default_value_t = 3)]
        partitions: i32,
        /// Replication factor of each new topic.
        #[arg(long, default_value_t = 1)]
        replication: i32,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}
