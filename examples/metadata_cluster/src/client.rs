//! A client of the cluster: writes go to the leader (following the redirects nodes answer
//! with), and a write whose outcome is unknown is retried with the same sequence number,
//! so the state machine applies it once whatever happened to the first attempt.

use std::collections::HashMap;
use std::io;
use std::time::Duration;

use openraft::LogId;

use crate::metadata::{Command, Metadata, Request, Response};
use crate::network::Connection;
use crate::rpc::{Call, ClientError, Reply, Status};
use crate::Transport;

/// A client of the cluster (one request at a time).
pub struct Client<T: Transport> {
    transport: T,
    nodes: Vec<String>,
    conns: HashMap<String, Connection<T>>,
    /// Where requests go first: the last leader heard of.
    target: String,
    id: u64,
    next_seq: u64,
    /// How long one call may take.
    pub call_timeout: Duration,
    /// How long a write or read keeps retrying before it gives up.
    pub deadline: Duration,
    /// The pause before retrying when no leader is known.
    pub backoff: Duration,
}

impl<T: Transport> Client<T> {
    /// A client of the nodes at `nodes` (any order), with client id `id` (unique per
    /// client: it keys the deduplication of retries).
    pub fn new(transport: T, nodes: Vec<String>, id: u64) -> Self {
        let target = nodes.first().cloned().unwrap_or_default();
        Client {
            transport,
            nodes,
            conns: HashMap::new(),
            target,
            id,
            next_seq: 0,
            call_timeout: Duration::from_secs(3),
            deadline: Duration::from_secs(20),
            backoff: Duration::from_millis(50),
        }
    }

    /// Sends one call to the node at `addr`.
    pub async fn call(&mut self, addr: &str, call: &Call) -> io::Result<Reply> {
        let timeout = self.call_timeout;
        let conn = self
            .conns
            .entry(addr.to_string())
            .or_insert_with(|| Connection::new(self.transport.clone(), addr.to_string()));
        conn.call(call, timeout).await
    }

    /// The status of the node at `addr`.
    pub async fn status(&mut self, addr: &str) -> io::Result<Status> {
        match self.call(addr, &Call::Status).await? {
            Reply::Status(s) => Ok(s),
            other => Err(io::Error::other(format!("unexpected reply {other:?}"))),
        }
    }

    /// Writes `command` through the leader: the log id it was committed at and the state
    /// machine's answer. Retries (same sequence number) until [`Client::deadline`].
    pub async fn write(&mut self, command: Command) -> Result<(LogId<u64>, Response), ClientError> {
        let request = Request {
            client: self.id,
            seq: self.next_seq,
            command,
        };
        self.next_seq += 1;
        let call = Call::Write(request);
        self.with_leader(&call, |reply| match reply {
            Reply::Write(r) => Some(r),
            _ => None,
        })
        .await
    }

    /// Reads the metadata and the log id it reflects. `linearizable`: through the leader,
    /// after it confirmed leadership with a quorum (a read index), so the answer includes
    /// every write acknowledged before the call; otherwise from the first node that
    /// answers, possibly stale.
    pub async fn read(
        &mut self,
        linearizable: bool,
    ) -> Result<(Metadata, Option<LogId<u64>>), ClientError> {
        let call = Call::Read { linearizable };
        self.with_leader(&call, |reply| match reply {
            Reply::Read(r) => Some(r),
            _ => None,
        })
        .await
    }

    /// Sends `call` to the leader until it answers other than "not the leader", or the
    /// deadline passes.
    async fn with_leader<R>(
        &mut self,
        call: &Call,
        pick: impl Fn(Reply) -> Option<Result<R, ClientError>>,
    ) -> Result<R, ClientError> {
        let deadline = tokio::time::Instant::now() + self.deadline;
        let mut last = ClientError::Other("no node answered".into());
        let mut next = 0usize;
        loop {
            if tokio::time::Instant::now() >= deadline {
                return Err(last);
            }
            let target = self.target.clone();
            let redirected = match self.call(&target, call).await {
                Ok(reply) => match pick(reply) {
                    Some(Ok(r)) => return Ok(r),
                    Some(Err(ClientError::NotLeader(Some((_, addr))))) if addr != target => {
                        self.target = addr;
                        true
                    }
                    Some(Err(e)) => {
                        last = e;
                        false
                    }
                    None => {
                        last = ClientError::Other("unexpected reply".into());
                        false
                    }
                },
                Err(e) => {
                    last = ClientError::Other(format!("{target}: {e}"));
                    false
                }
            };
            if !redirected {
                // No leader known here: try the next node after a pause (an election
                // takes a few hundred milliseconds).
                next = next.wrapping_add(1);
                if let Some(addr) = self.nodes.get(next % self.nodes.len().max(1)) {
                    self.target = addr.clone();
                }
                tokio::time::sleep(self.backoff).await;
            }
        }
    }
}
