//! A replicated cluster-metadata store on openraft and streamlog: what Kafka 4 keeps in
//! KRaft (brokers, topics, partition leaders and ISRs), kept by three nodes that each
//! store their Raft log in a streamlog partition log.
//!
//! - [`metadata`]: the replicated state and its commands (deterministic, deduplicated).
//! - [`rpc`]: the wire, length-prefixed JSON frames over any byte stream.
//! - [`network`]: openraft's `RaftNetworkFactory` over a [`Transport`] (TCP here, turmoil's
//!   simulated TCP in the deterministic tests).
//! - [`node`]: one node: the log store, the state machine, openraft, and the request handler.
//! - [`client`]: writes through the leader (following redirects, retrying with the same
//!   sequence number), linearizable or local reads.
//!
//! The binary `metadata-cluster` runs a node (`node`) or a client command (`client`); see
//! the README's "Running under openraft" section.

use std::future::Future;
use std::io;
use std::io::Cursor;

use openraft::{BasicNode, Entry};
use tokio::io::{AsyncRead, AsyncWrite};

pub mod client;
pub mod metadata;
pub mod network;
pub mod node;
pub mod rpc;

openraft::declare_raft_types!(
    /// The cluster's openraft types: batches of metadata requests on u64 node ids reached at an address.
    pub TypeConfig:
        D = metadata::Proposal,
        R = Vec<metadata::Response>,
        NodeId = u64,
        Node = BasicNode,
        Entry = Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
);

/// How a node or client reaches another node by address.
pub trait Transport: Clone + Send + Sync + 'static {
    /// A connected byte stream.
    type Stream: AsyncRead + AsyncWrite + Unpin + Send + Sync + 'static;

    /// Connects to `addr` (`host:port`).
    fn connect(&self, addr: String) -> impl Future<Output = io::Result<Self::Stream>> + Send;
}

/// TCP through tokio.
#[derive(Debug, Clone, Copy, Default)]
pub struct Tcp;

impl Transport for Tcp {
    type Stream = tokio::net::TcpStream;

    async fn connect(&self, addr: String) -> io::Result<Self::Stream> {
        let stream = tokio::net::TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(stream)
    }
}
