//! The wire: one request, one reply, each a frame of a 4-byte big-endian length and JSON.
//!
//! The same connection carries Raft's RPCs between nodes and the clients' requests. A frame
//! longer than [`MAX_FRAME`] is refused before anything is allocated for it.

use std::io;

use openraft::error::{InstallSnapshotError, RaftError};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::{Entry, LogId};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::metadata::{Metadata, Request, Response};
use crate::TypeConfig;

/// The largest frame read (a snapshot chunk is far smaller).
pub const MAX_FRAME: usize = 64 << 20;

/// What a connection asks.
#[derive(Debug, Serialize, Deserialize)]
pub enum Call {
    /// Raft: replicate entries (or heartbeat).
    AppendEntries(AppendEntriesRequest<TypeConfig>),
    /// Raft: ask for a vote.
    Vote(VoteRequest<u64>),
    /// Raft: a chunk of a snapshot.
    InstallSnapshot(InstallSnapshotRequest<TypeConfig>),
    /// Client: a write, answered once committed and applied (leader only).
    Write(Request),
    /// Client: the metadata; `linearizable` asks the leader for a read index first.
    Read {
        /// Confirm leadership with a quorum and wait for the state to reach it.
        linearizable: bool,
    },
    /// Client: who this node is and what it knows.
    Status,
    /// Client: wait (up to `timeout_ms`) until this node has applied `index`.
    WaitApplied {
        /// The log index to reach.
        index: u64,
        /// How long to wait at most.
        timeout_ms: u64,
    },
    /// Client: the Raft log entries in `[start, end)` that this node holds.
    Entries {
        /// First index.
        start: u64,
        /// One past the last index.
        end: u64,
    },
    /// Client: initialize the cluster with the given members (a fresh cluster only).
    Init {
        /// Node id and address of each member.
        members: Vec<(u64, String)>,
    },
}

/// Why a client request failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClientError {
    /// This node is not the leader; retry at `leader` if known (id, address).
    NotLeader(Option<(u64, String)>),
    /// Anything else, as text.
    Other(String),
}

/// A node's view of itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// Its node id.
    pub id: u64,
    /// The leader it knows of.
    pub leader: Option<u64>,
    /// Its current term.
    pub term: u64,
    /// The last log index it holds.
    pub last_log_index: Option<u64>,
    /// The last log index applied to its state.
    pub applied: Option<LogId<u64>>,
}

/// The answer to a [`Call`].
#[derive(Debug, Serialize, Deserialize)]
#[allow(clippy::large_enum_variant)]
pub enum Reply {
    /// To [`Call::AppendEntries`].
    AppendEntries(Result<AppendEntriesResponse<u64>, RaftError<u64>>),
    /// To [`Call::Vote`].
    Vote(Result<VoteResponse<u64>, RaftError<u64>>),
    /// To [`Call::InstallSnapshot`].
    InstallSnapshot(Result<InstallSnapshotResponse<u64>, RaftError<u64, InstallSnapshotError>>),
    /// To [`Call::Write`]: the log id it committed at and the state machine's answer.
    Write(Result<(LogId<u64>, Response), ClientError>),
    /// To [`Call::Read`]: the state and the last log id applied to it.
    Read(Result<(Metadata, Option<LogId<u64>>), ClientError>),
    /// To [`Call::Status`].
    Status(Status),
    /// To [`Call::WaitApplied`]: whether the index was reached in time.
    WaitApplied(bool),
    /// To [`Call::Entries`].
    Entries(Result<Vec<Entry<TypeConfig>>, String>),
    /// To [`Call::Init`].
    Init(Result<(), String>),
}

/// Writes `value` as one frame.
pub async fn write_frame<W, T>(w: &mut W, value: &T) -> io::Result<()>
where
    W: AsyncWrite + Unpin,
    T: Serialize,
{
    let body = serde_json::to_vec(value).map_err(io::Error::other)?;
    let len = u32::try_from(body.len())
        .ok()
        .filter(|&n| n as usize <= MAX_FRAME)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "frame too large"))?;
    let mut frame = Vec::with_capacity(4 + body.len());
    frame.extend_from_slice(&len.to_be_bytes());
    frame.extend_from_slice(&body);
    w.write_all(&frame).await?;
    w.flush().await
}

/// Reads one frame; `None` at a clean end of stream before a frame starts.
pub async fn read_frame<R, T>(r: &mut R) -> io::Result<Option<T>>
where
    R: AsyncRead + Unpin,
    T: DeserializeOwned,
{
    let mut len = [0u8; 4];
    match r.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_FRAME {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("frame of {len} bytes, at most {MAX_FRAME}"),
        ));
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).await?;
    serde_json::from_slice(&body)
        .map(Some)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}
