//! A single-node Kafka broker on streamlog: unmodified Kafka clients (librdkafka and
//! confluent-kafka, kafka-python, kcat) create topics, produce and consume through it.
//!
//! ```text
//! cargo run --release --example broker -- --data-dir DIR --listen 127.0.0.1:9092
//! ```
//!
//! (The same program is the package's `broker` binary, which the tests start.)
//!
//! The parts, from the socket down: `server` (connections, framing limits, deadlines) →
//! `codec` (Kafka framing through `kafka-protocol`) → `apis` (one handler per Kafka API) →
//! streamlog's `Storage` and `Log`. Record batches are never decoded by the broker: the log
//! validates them once on append and fetches return the stored bytes.

mod acl;
mod apis;
mod broker;
mod codec;
mod config;
mod durable_file;
mod errors;
mod groups;
mod meta;
mod metrics;
mod metrics_http;
mod request_memory;
mod sasl;
mod server;
mod tls;
mod wait;
mod zero_copy;

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use tokio::net::TcpListener;

use crate::broker::Broker;
use crate::config::BrokerConfig;

/// Command-line flags; each overrides the config file's value.
#[derive(Debug, Parser)]
#[command(name = "broker", about = "A single-node Kafka broker on streamlog")]
struct Args {
    /// TOML config file (see README for the keys).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Data directory (default ./streamlog-data).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Kafka listener address (default 127.0.0.1:9092; port 0 picks a free port).
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Prometheus-text metrics endpoint address.
    #[arg(long)]
    metrics_listen: Option<SocketAddr>,
}

/// How often the transaction coordinator's clock ticks.
const TXN_TICK: Duration = Duration::from_secs(1);

/// How often retention and compaction run.
const MAINTENANCE_INTERVAL: Duration = Duration::from_secs(30);

/// Parses the command line, starts the broker, and serves until SIGTERM or Ctrl-C.
pub fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let mut config = match &args.config {
        Some(path) => BrokerConfig::from_file(path)?,
        None => BrokerConfig::default(),
    };
    if let Some(d) = args.data_dir {
        config.data_dir = d;
    }
    if let Some(l) = args.listen {
        config.listen = l;
    }
    if let Some(m) = args.metrics_listen {
        config.metrics_listen = Some(m);
    }
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run(config))
}

async fn run(config: BrokerConfig) -> anyhow::Result<()> {
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    let bound = listener.local_addr()?;
    let metrics_listener = match config.metrics_listen {
        Some(addr) => Some(
            TcpListener::bind(addr)
                .await
                .with_context(|| format!("binding {addr}"))?,
        ),
        None => None,
    };
    let broker = Arc::new(tokio::task::block_in_place(|| {
        Broker::open(config.clone(), bound)
    })?);
    let maintenance =
        streamlog::Storage::spawn_maintenance(Arc::clone(&broker.storage), MAINTENANCE_INTERVAL);
    // Transaction timeouts and marker retries run on the coordinator's tick.
    let ticker = Arc::clone(&broker);
    tokio::spawn(async move {
        let mut every = tokio::time::interval(TXN_TICK);
        loop {
            every.tick().await;
            let b = Arc::clone(&ticker);
            let _ = tokio::task::spawn_blocking(move || b.txn().tick()).await;
        }
    });
    // flush.ms of the open logs (Kafka's log flusher).
    let flusher = Arc::clone(&broker);
    tokio::spawn(async move {
        let period = Duration::from_millis(flusher.config.log_flush_scheduler_interval_ms);
        let mut every = tokio::time::interval(period);
        loop {
            every.tick().await;
            let b = Arc::clone(&flusher);
            let flushed = tokio::task::spawn_blocking(move || {
                let now = b.storage.config().defaults.log.clock.now_ms();
                b.storage.flush_dirty_logs(now)
            })
            .await;
            match flushed {
                Ok(Err(streamlog::Error::StorageClosed { .. })) => break,
                Ok(Err(e)) => tracing::warn!(error = %e, "flush.ms flush failed"),
                _ => {}
            }
        }
    });
    // Rebalance and session deadlines of the group coordinator.
    tokio::spawn(Arc::clone(&broker.groups).run_timers());
    if let Some(l) = metrics_listener {
        tracing::info!(addr = %l.local_addr()?, "metrics endpoint");
        tokio::spawn(metrics_http::serve(l, Arc::clone(&broker)));
    }
    tracing::info!(%bound, data_dir = %config.data_dir.display(), cluster_id = %broker.cluster_id, "broker started");
    // The one line on stdout: scripts (and the tests) read the bound address from it.
    println!("listening on {bound}");
    std::io::stdout().flush()?;

    tokio::select! {
        () = server::serve(listener, Arc::clone(&broker)) => {}
        () = shutdown_signal() => tracing::info!("shutting down"),
    }
    tokio::task::block_in_place(|| {
        if let Err(e) = maintenance.stop() {
            tracing::warn!(error = %e, "maintenance stopped with an error");
        }
        broker.storage.close()
    })?;
    Ok(())
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
