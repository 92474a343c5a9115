//! `ingest`: run a log-collection agent from `agent.toml` until SIGTERM or SIGINT.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use streamlog::ingest::{Agent, AgentConfig};
use streamlog::storage::{Storage, StorageConfig};

use crate::{BoxError, Outcome};

#[derive(Debug, Args)]
pub(crate) struct IngestArgs {
    /// The agent's config (TOML; unknown keys are refused).
    #[arg(long)]
    config: PathBuf,
    /// Stop (committing what was read) once every source is caught up: for one-off imports
    /// and tests.
    #[arg(long)]
    until_idle: bool,
}

pub(crate) fn ingest(args: &IngestArgs) -> Result<Outcome, BoxError> {
    let config = AgentConfig::from_file(&args.config)?;
    let settings = config.settings()?;
    if config.sources.is_empty() {
        return Err(format!("{}: no [[source]]", args.config.display()).into());
    }
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(signal, Arc::clone(&stop))?;
    }
    let storage = Arc::new(Storage::open(&config.data_dir, StorageConfig::default())?);
    let maintenance = (config.maintenance_interval_s > 0).then(|| {
        Storage::spawn_maintenance(
            Arc::clone(&storage),
            Duration::from_secs(config.maintenance_interval_s),
        )
    });
    let mut agent = Agent::new(Arc::clone(&storage), settings)?;
    agent.add_sources(&config)?;
    let running = agent.start()?;
    eprintln!(
        "streamlog ingest: {} source(s) into {}",
        running.status().len(),
        config.data_dir.display()
    );
    let status_every = Duration::from_secs(config.status_interval_s);
    let mut last_status = Instant::now();
    while !stop.load(Ordering::Relaxed) && !running.any_finished() {
        if args.until_idle && running.is_idle(2) {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
        if !status_every.is_zero() && last_status.elapsed() >= status_every {
            eprintln!("{}", running.status_line());
            last_status = Instant::now();
        }
    }
    let status = running.status_line();
    running.shutdown()?;
    if let Some(m) = maintenance {
        m.stop()?;
    }
    storage.close()?;
    eprintln!("streamlog ingest: stopped; {status}");
    Ok(Outcome::Clean)
}
