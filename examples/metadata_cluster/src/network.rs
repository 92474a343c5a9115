//! openraft's network on a [`Transport`]: one connection per peer and replication stream,
//! one request in flight on it, reconnected after any error.

use std::io;
use std::time::Duration;

use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::BasicNode;

use crate::rpc::{read_frame, write_frame, Call, Reply};
use crate::{Transport, TypeConfig};

/// A lazily (re)connected connection to one address.
pub struct Connection<T: Transport> {
    transport: T,
    addr: String,
    stream: Option<T::Stream>,
}

impl<T: Transport> Connection<T> {
    /// A connection to `addr`, made at the first call.
    pub fn new(transport: T, addr: String) -> Self {
        Connection {
            transport,
            addr,
            stream: None,
        }
    }

    /// The address it connects to.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Sends `call` and reads the reply, all within `timeout`. After any failure the
    /// connection is dropped (a late reply must not answer the next call). A connection
    /// kept from earlier calls that fails is replaced once (its peer may have restarted).
    pub async fn call(&mut self, call: &Call, timeout: Duration) -> io::Result<Reply> {
        let result = tokio::time::timeout(timeout, async {
            if self.stream.is_some() {
                match self.exchange(call).await {
                    Ok(reply) => return Ok(reply),
                    Err(_) => self.stream = None,
                }
            }
            self.exchange(call).await
        })
        .await;
        match result {
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(e)) => {
                self.stream = None;
                Err(e)
            }
            Err(_) => {
                self.stream = None;
                Err(io::Error::new(io::ErrorKind::TimedOut, "no reply in time"))
            }
        }
    }

    async fn exchange(&mut self, call: &Call) -> io::Result<Reply> {
        if self.stream.is_none() {
            self.stream = Some(self.transport.connect(self.addr.clone()).await?);
        }
        let stream = self
            .stream
            .as_mut()
            .ok_or_else(|| io::Error::other("not connected"))?;
        write_frame(stream, call).await?;
        read_frame(stream)
            .await?
            .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "connection closed"))
    }
}

/// openraft's network factory: a [`Peer`] per target.
#[derive(Debug, Clone)]
pub struct Network<T> {
    transport: T,
}

impl<T: Transport> Network<T> {
    /// A network connecting through `transport`.
    pub fn new(transport: T) -> Self {
        Network { transport }
    }
}

impl<T: Transport> RaftNetworkFactory<TypeConfig> for Network<T> {
    type Network = Peer<T>;

    async fn new_client(&mut self, target: u64, node: &BasicNode) -> Peer<T> {
        Peer {
            target,
            conn: Connection::new(self.transport.clone(), node.addr.clone()),
        }
    }
}

/// openraft's client of one peer.
pub struct Peer<T: Transport> {
    target: u64,
    conn: Connection<T>,
}

type RpcResult<R, E = openraft::error::Infallible> =
    Result<R, RPCError<u64, BasicNode, RaftError<u64, E>>>;

impl<T: Transport> Peer<T> {
    async fn send(&mut self, call: Call, option: &RPCOption) -> Result<Reply, Unreachable> {
        self.conn
            .call(&call, option.hard_ttl())
            .await
            .map_err(|e| Unreachable::new(&e))
    }

    fn unexpected<E: std::error::Error>(reply: &Reply) -> RPCError<u64, BasicNode, E> {
        let e = io::Error::other(format!("unexpected reply {reply:?}"));
        RPCError::Network(NetworkError::new(&e))
    }

    // openraft's own error type, returned as openraft's trait asks.
    #[allow(clippy::result_large_err)]
    fn remote<R, E: std::error::Error>(
        &self,
        result: Result<R, RaftError<u64, E>>,
    ) -> RpcResult<R, E> {
        result.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

impl<T: Transport> RaftNetwork<TypeConfig> for Peer<T> {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<AppendEntriesResponse<u64>> {
        match self.send(Call::AppendEntries(rpc), &option).await? {
            Reply::AppendEntries(result) => self.remote(result),
            other => Err(Self::unexpected(&other)),
        }
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<InstallSnapshotResponse<u64>, InstallSnapshotError> {
        match self.send(Call::InstallSnapshot(rpc), &option).await? {
            Reply::InstallSnapshot(result) => self.remote(result),
            other => Err(Self::unexpected(&other)),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<u64>,
        option: RPCOption,
    ) -> RpcResult<VoteResponse<u64>> {
        match self.send(Call::Vote(rpc), &option).await? {
            Reply::Vote(result) => self.remote(result),
            other => Err(Self::unexpected(&other)),
        }
    }
}
