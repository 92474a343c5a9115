//! One node: its Raft log in a streamlog [`LogStore`] under `<dir>/raft`, the metadata
//! state machine with its snapshot file under `<dir>/sm`, openraft, and the handler that
//! answers every [`Call`].

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use openraft::error::{CheckIsLeaderError, ClientWriteError, ForwardToLeader, RaftError};
use openraft::{BasicNode, Config, LogId, Raft, RaftLogReader};
use streamlog::io::{FileSystem, RealFs};
use streamlog::raft::{LogStore, LogStoreReader, StateMachineStore, StateReader};
use streamlog::LogConfig;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, oneshot};

use crate::metadata::{Metadata, Proposal, Request, Response};
use crate::network::Network;
use crate::rpc::{read_frame, write_frame, Call, ClientError, Reply, Status};
use crate::{Transport, TypeConfig};

/// The Raft timings of a node on loopback: heartbeats every 100 ms, elections after
/// 300–600 ms of silence.
pub fn default_config() -> Config {
    Config {
        cluster_name: "streamlog-metadata".into(),
        heartbeat_interval: 100,
        election_timeout_min: 300,
        election_timeout_max: 600,
        ..Config::default()
    }
}

/// How to open a node.
pub struct NodeOptions {
    /// The node id.
    pub id: u64,
    /// openraft's configuration (validated on open).
    pub raft: Config,
    /// The filesystem its files go through (the real one, or `SimFs` in simulations).
    pub fs: Arc<dyn FileSystem>,
    /// Flush appends in openraft's task instead of the group-commit thread (simulations).
    pub commit_inline: bool,
    /// The configuration of the Raft log (a streamlog partition log).
    pub log: LogConfig,
}

impl NodeOptions {
    /// Node `id` on the real filesystem with [`default_config`].
    pub fn new(id: u64) -> Self {
        NodeOptions {
            id,
            raft: default_config(),
            fs: RealFs::shared(),
            commit_inline: false,
            log: LogConfig::default(),
        }
    }
}

/// The most requests one Raft entry carries.
pub const MAX_PROPOSAL: usize = 1024;

/// What a write answers: the log id of the entry that carried it and its answer.
pub type WriteResult = Result<(LogId<u64>, Response), ClientError>;

/// A request waiting for the proposer, and where its answer goes.
type Pending = (Request, oneshot::Sender<WriteResult>);

/// A running node.
pub struct Node {
    id: u64,
    raft: Raft<TypeConfig>,
    state: StateReader<TypeConfig, Metadata>,
    log: tokio::sync::Mutex<LogStoreReader<TypeConfig>>,
    /// To the proposer task (see [`Node::write`]).
    proposals: mpsc::Sender<Pending>,
    /// Who cuts entries: the proposer task, or a lone writer (see [`Node::write`]).
    turn: Arc<Turn>,
}

/// Held by whoever is proposing an entry (one at a time), and how many requests the last
/// entry carried.
#[derive(Default)]
struct Turn {
    proposing: tokio::sync::Mutex<()>,
    last_requests: AtomicUsize,
}

impl Node {
    /// Opens the node's stores in `dir` and starts openraft, reaching peers through
    /// `transport`. The node answers calls once something serves connections with
    /// [`Node::serve`].
    pub async fn open<T: Transport>(
        dir: &Path,
        options: NodeOptions,
        transport: T,
    ) -> anyhow::Result<Arc<Node>> {
        let NodeOptions {
            id,
            raft,
            fs,
            commit_inline,
            log,
        } = options;
        let mut store = LogStore::<TypeConfig>::open_with(Arc::clone(&fs), &dir.join("raft"), log)
            .context("opening the Raft log")?;
        if commit_inline {
            store.commit_inline();
        }
        let machine = StateMachineStore::<TypeConfig, Metadata>::open_with(fs, &dir.join("sm"))
            .context("opening the state machine")?;
        let state = machine.reader();
        let log = tokio::sync::Mutex::new(store.reader());
        let config = Arc::new(raft.validate().context("openraft config")?);
        let raft = Raft::new(id, config, Network::new(transport), store, machine)
            .await
            .context("starting openraft")?;
        let (proposals, waiting) = mpsc::channel(MAX_PROPOSAL);
        let turn = Arc::new(Turn::default());
        tokio::spawn(propose(raft.clone(), Arc::clone(&turn), waiting));
        Ok(Arc::new(Node {
            id,
            raft,
            state,
            log,
            proposals,
            turn,
        }))
    }

    /// The node id.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// openraft's handle.
    pub fn raft(&self) -> &Raft<TypeConfig> {
        &self.raft
    }

    /// Writes `request` through Raft (this node must lead): the log id of the entry that
    /// carried it, once committed and applied, and the state machine's answer.
    ///
    /// Requests are proposed in batches, one Raft entry each ([`Proposal`]): a proposer task
    /// hands openraft everything that arrived while the previous entry was being made
    /// durable and applied, up to [`MAX_PROPOSAL`]. openraft 0.9's core appends one entry
    /// per `client_write` and waits for that append's flush before it reads the next
    /// request, so concurrent writers share an fsync only when they share an entry; this is
    /// the group commit on the Raft path. Every request is answered only after its entry
    /// is durable (on a quorum) and applied, as with `client_write` itself.
    ///
    /// A lone writer skips the proposer: when the last entry carried one request, nothing
    /// is queued and no entry is being proposed, the writer proposes its request itself
    /// (two task switches fewer per commit). As soon as writers overlap, the last entry
    /// carried more than one request, or one is queued, requests go through the proposer
    /// again.
    pub async fn write(&self, request: Request) -> WriteResult {
        let alone = self.turn.last_requests.load(Ordering::Relaxed) <= 1
            && self.proposals.capacity() == self.proposals.max_capacity();
        if let Some(_turn) = alone.then(|| self.turn.proposing.try_lock().ok()).flatten() {
            self.turn.last_requests.store(1, Ordering::Relaxed);
            let (log_id, responses) = propose_entry(&self.raft, vec![request]).await?;
            let response = responses.into_iter().next().ok_or_else(|| {
                ClientError::Other("the entry was applied without an answer".into())
            })?;
            return Ok((log_id, response));
        }
        let (answer, answered) = oneshot::channel();
        let stopped = || ClientError::Other("the node is shutting down".into());
        self.proposals
            .send((request, answer))
            .await
            .map_err(|_| stopped())?;
        answered.await.map_err(|_| stopped())?
    }

    /// The node's status.
    pub fn status(&self) -> Status {
        let m = self.raft.metrics().borrow().clone();
        Status {
            id: self.id,
            leader: m.current_leader,
            term: m.current_term,
            last_log_index: m.last_log_index,
            applied: m.last_applied,
        }
    }

    /// Answers requests on `stream` until it closes or fails.
    pub async fn serve<S>(self: Arc<Self>, mut stream: S)
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        while let Ok(Some(call)) = read_frame::<_, Call>(&mut stream).await {
            let reply = self.handle(call).await;
            if let Err(e) = write_frame(&mut stream, &reply).await {
                eprintln!("node {}: replying: {e}", self.id);
                return;
            }
        }
    }

    /// Answers one call.
    pub async fn handle(&self, call: Call) -> Reply {
        match call {
            Call::AppendEntries(rpc) => Reply::AppendEntries(self.raft.append_entries(rpc).await),
            Call::Vote(rpc) => Reply::Vote(self.raft.vote(rpc).await),
            Call::InstallSnapshot(rpc) => {
                Reply::InstallSnapshot(self.raft.install_snapshot(rpc).await)
            }
            Call::Write(request) => Reply::Write(self.write(request).await),
            Call::Read { linearizable } => {
                if linearizable {
                    match self.raft.ensure_linearizable().await {
                        Ok(_) => {}
                        Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(f))) => {
                            return Reply::Read(Err(not_leader(f)));
                        }
                        Err(e) => return Reply::Read(Err(ClientError::Other(e.to_string()))),
                    }
                }
                Reply::Read(Ok(self
                    .state
                    .read(|m, applied| (m.clone(), applied.cloned()))))
            }
            Call::Status => Reply::Status(self.status()),
            Call::WaitApplied { index, timeout_ms } => Reply::WaitApplied(
                self.raft
                    .wait(Some(Duration::from_millis(timeout_ms)))
                    .applied_index_at_least(Some(index), "wait applied")
                    .await
                    .is_ok(),
            ),
            Call::Entries { start, end } => {
                let mut log = self.log.lock().await;
                Reply::Entries(
                    log.try_get_log_entries(start..end)
                        .await
                        .map_err(|e| e.to_string()),
                )
            }
            Call::Init { members } => {
                let members: BTreeMap<u64, BasicNode> = members
                    .into_iter()
                    .map(|(id, addr)| (id, BasicNode::new(addr)))
                    .collect();
                Reply::Init(
                    self.raft
                        .initialize(members)
                        .await
                        .map_err(|e| e.to_string()),
                )
            }
        }
    }

    /// Stops openraft (the stores close when the last handle goes).
    pub async fn shutdown(&self) {
        let _ = self.raft.shutdown().await;
    }
}

/// The proposer: one `client_write` at a time, of every request waiting (see
/// [`Node::write`]). Ends when the node is dropped.
async fn propose(raft: Raft<TypeConfig>, turn: Arc<Turn>, mut waiting: mpsc::Receiver<Pending>) {
    let mut batch = Vec::with_capacity(MAX_PROPOSAL);
    loop {
        // The writers just answered were woken here: let them run and send their next
        // requests before the next entry is cut, so that it carries them all rather than the
        // first one to arrive (each entry costs an fsync).
        tokio::task::yield_now().await;
        if waiting.recv_many(&mut batch, MAX_PROPOSAL).await == 0 {
            break;
        }
        let _turn = turn.proposing.lock().await;
        // What arrived while a lone writer's entry was in flight goes too.
        while batch.len() < MAX_PROPOSAL {
            match waiting.try_recv() {
                Ok(pending) => batch.push(pending),
                Err(_) => break,
            }
        }
        turn.last_requests.store(batch.len(), Ordering::Relaxed);
        let (requests, answers): (Vec<Request>, Vec<_>) = batch.drain(..).unzip();
        match propose_entry(&raft, requests).await {
            // One answer per request, in order (`Metadata::apply`).
            Ok((log_id, responses)) => {
                for (answer, response) in answers.into_iter().zip(responses) {
                    let _ = answer.send(Ok((log_id, response)));
                }
            }
            Err(e) => {
                for answer in answers {
                    let _ = answer.send(Err(e.clone()));
                }
            }
        }
    }
}

/// Proposes one entry carrying `requests`: its log id and the answers, in order, once it
/// is committed and applied.
async fn propose_entry(
    raft: &Raft<TypeConfig>,
    requests: Vec<Request>,
) -> Result<(LogId<u64>, Vec<Response>), ClientError> {
    match raft.client_write(Proposal { requests }).await {
        Ok(r) => Ok((r.log_id, r.data)),
        Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => Err(not_leader(f)),
        Err(e) => Err(ClientError::Other(e.to_string())),
    }
}

fn not_leader(f: ForwardToLeader<u64, BasicNode>) -> ClientError {
    ClientError::NotLeader(f.leader_id.zip(f.leader_node.map(|n| n.addr)))
}
