//! `metadata-cluster`: run a node of the replicated metadata store, or a client command.
//!
//! ```sh
//! metadata-cluster node --id 1 --dir /tmp/mc/1 --listen 127.0.0.1:7001 \
//!     --init 1=127.0.0.1:7001,2=127.0.0.1:7002,3=127.0.0.1:7003
//! metadata-cluster client --nodes 127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003 \
//!     create-topic orders --partitions 3 --replication-factor 2
//! metadata-cluster client --nodes 127.0.0.1:7001 read --linearizable
//! ```

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;

use anyhow::{anyhow, bail, Context};
use clap::{Parser, Subcommand};
use streamlog_metadata_cluster::client::Client;
use streamlog_metadata_cluster::metadata::Command;
use streamlog_metadata_cluster::node::{Node, NodeOptions};
use streamlog_metadata_cluster::rpc::{Call, Reply};
use streamlog_metadata_cluster::Tcp;

#[derive(Parser)]
#[command(about = "A three-node Raft metadata store on openraft and streamlog")]
struct Cli {
    #[command(subcommand)]
    command: Top,
}

#[derive(Subcommand)]
enum Top {
    /// Runs a node until killed.
    Node {
        /// This node's id.
        #[arg(long)]
        id: u64,
        /// Its data directory (Raft log, vote, snapshot).
        #[arg(long)]
        dir: PathBuf,
        /// Where it listens (loopback), `host:port`.
        #[arg(long)]
        listen: String,
        /// Initialize a fresh cluster with these members: `1=host:port,2=host:port,...`.
        #[arg(long)]
        init: Option<String>,
    },
    /// Sends a request to the cluster.
    Client {
        /// The nodes' addresses, comma-separated (writes find the leader among them).
        #[arg(long)]
        nodes: String,
        #[command(subcommand)]
        request: ClientRequest,
    },
}

#[derive(Subcommand)]
enum ClientRequest {
    /// Each node's status (id, leader, term, last log index, applied).
    Status,
    /// The metadata as JSON.
    Read {
        /// Through the leader with a read index (sees every acknowledged write).
        #[arg(long)]
        linearizable: bool,
    },
    /// Registers a broker.
    RegisterBroker {
        /// `broker.id`.
        #[arg(long)]
        id: i32,
        /// `host:port`.
        #[arg(long)]
        address: String,
        /// `broker.rack`.
        #[arg(long)]
        rack: Option<String>,
    },
    /// Fences a broker (its partitions elect new leaders from their ISR).
    FenceBroker {
        /// The broker.
        id: i32,
    },
    /// Unfences a broker.
    UnfenceBroker {
        /// The broker.
        id: i32,
    },
    /// Creates a topic.
    CreateTopic {
        /// The topic name.
        name: String,
        /// How many partitions.
        #[arg(long, default_value_t = 1)]
        partitions: u32,
        /// Replicas per partition.
        #[arg(long, default_value_t = 1)]
        replication_factor: u16,
        /// Topic configs, `key=value`, repeatable.
        #[arg(long = "config")]
        configs: Vec<String>,
    },
    /// Deletes a topic.
    DeleteTopic {
        /// The topic name.
        name: String,
    },
    /// Sets a partition's ISR (as its leader would report).
    AlterPartition {
        /// The topic.
        topic: String,
        /// The partition index.
        partition: u32,
        /// The new ISR, comma-separated broker ids.
        #[arg(long, value_delimiter = ',')]
        isr: Vec<i32>,
    },
}

fn parse_members(s: &str) -> anyhow::Result<Vec<(u64, String)>> {
    s.split(',')
        .map(|m| {
            let (id, addr) = m
                .split_once('=')
                .ok_or_else(|| anyhow!("member {m:?} is not id=host:port"))?;
            Ok((id.parse().context("member id")?, addr.to_string()))
        })
        .collect()
}

async fn run_node(
    id: u64,
    dir: PathBuf,
    listen: String,
    init: Option<String>,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(&listen)
        .await
        .with_context(|| format!("binding {listen}"))?;
    let node = Node::open(&dir, NodeOptions::new(id), Tcp).await?;
    if let Some(members) = init {
        let members = parse_members(&members)?;
        if !node.raft().is_initialized().await? {
            if let Reply::Init(Err(e)) = node.handle(Call::Init { members }).await {
                bail!("initializing: {e}");
            }
        }
    }
    // The tests wait for this line before talking to the node.
    println!("ready {}", listener.local_addr()?);
    std::io::stdout().flush()?;
    loop {
        let (stream, _) = listener.accept().await?;
        stream.set_nodelay(true)?;
        tokio::spawn(std::sync::Arc::clone(&node).serve(stream));
    }
}

async fn run_client(nodes: String, request: ClientRequest) -> anyhow::Result<()> {
    let addrs: Vec<String> = nodes.split(',').map(str::to_string).collect();
    let id = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_nanos() as u64
        ^ u64::from(std::process::id()).rotate_left(32);
    let mut client = Client::new(Tcp, addrs.clone(), id);
    let command = match request {
        ClientRequest::Status => {
            for addr in &addrs {
                match client.status(addr).await {
                    Ok(s) => println!("{addr}: {}", serde_json::to_string(&s)?),
                    Err(e) => println!("{addr}: unreachable ({e})"),
                }
            }
            return Ok(());
        }
        ClientRequest::Read { linearizable } => {
            let (metadata, applied) = client
                .read(linearizable)
                .await
                .map_err(|e| anyhow!("{e:?}"))?;
            println!("{}", serde_json::to_string_pretty(&metadata)?);
            eprintln!("as of {applied:?}");
            return Ok(());
        }
        ClientRequest::RegisterBroker { id, address, rack } => {
            Command::RegisterBroker { id, address, rack }
        }
        ClientRequest::FenceBroker { id } => Command::FenceBroker { id },
        ClientRequest::UnfenceBroker { id } => Command::UnfenceBroker { id },
        ClientRequest::CreateTopic {
            name,
            partitions,
            replication_factor,
            configs,
        } => {
            let configs = configs
                .iter()
                .map(|c| {
                    c.split_once('=')
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .ok_or_else(|| anyhow!("config {c:?} is not key=value"))
                })
                .collect::<anyhow::Result<BTreeMap<_, _>>>()?;
            Command::CreateTopic {
                name,
                partitions,
                replication_factor,
                configs,
            }
        }
        ClientRequest::DeleteTopic { name } => Command::DeleteTopic { name },
        ClientRequest::AlterPartition {
            topic,
            partition,
            isr,
        } => Command::AlterPartition {
            topic,
            partition,
            isr,
        },
    };
    let (log_id, response) = client.write(command).await.map_err(|e| anyhow!("{e:?}"))?;
    println!("{} at {log_id}", serde_json::to_string(&response)?);
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // A worker per CPU the process may use (tokio's default honours `taskset`): more
    // workers than CPUs only wake each other across threads on every commit.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        match cli.command {
            Top::Node {
                id,
                dir,
                listen,
                init,
            } => run_node(id, dir, listen, init).await,
            Top::Client { nodes, request } => run_client(nodes, request).await,
        }
    })
}
