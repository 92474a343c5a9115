//! The replicated state: Kafka-style cluster metadata (what KRaft's controller keeps) and the
//! commands that change it.
//!
//! Every node applies the same committed commands in the same order, so `apply` is
//! deterministic: no clocks, no randomness (a topic id is derived from the log id of the
//! command creating it). Each request carries a client id and a sequence number; a request
//! applied before (a client retrying after a leader died) gets the first answer again and
//! changes nothing, so every acknowledged write takes effect exactly once.

use std::collections::BTreeMap;

use openraft::LogId;
use serde::{Deserialize, Serialize};
use streamlog::raft::StateMachineData;

use crate::TypeConfig;

/// A broker of the cluster, as registered with the controller.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Broker {
    /// `broker.id`.
    pub id: i32,
    /// Where clients reach it, `host:port`.
    pub address: String,
    /// `broker.rack`, if set.
    pub rack: Option<String>,
    /// A fenced broker leads nothing and is out of every ISR.
    pub fenced: bool,
    /// Raised at every registration (a restarted broker registers again).
    pub epoch: u64,
}

/// The state of one partition: what a Kafka-style replication controller decides.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionState {
    /// The assigned replicas, preferred leader first.
    pub replicas: Vec<i32>,
    /// The leader, or -1 when none is eligible.
    pub leader: i32,
    /// Raised at every leader change.
    pub leader_epoch: i32,
    /// The in-sync replicas.
    pub isr: Vec<i32>,
    /// Raised at every change of leader or ISR.
    pub partition_epoch: i32,
}

/// A topic: id, partitions and configs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Topic {
    /// The topic id (hex, derived from the log id that created it).
    pub id: String,
    /// Index of the Raft entry that created it: equal on every node when applied once.
    pub created_at: u64,
    /// The partitions, by partition index.
    pub partitions: Vec<PartitionState>,
    /// Topic configs (`retention.ms`, `cleanup.policy`, ...).
    pub configs: BTreeMap<String, String>,
}

/// The whole replicated state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metadata {
    /// Brokers by id.
    pub brokers: BTreeMap<i32, Broker>,
    /// Topics by name.
    pub topics: BTreeMap<String, Topic>,
    /// The last request applied per client, and its answer (deduplication of retries).
    pub sessions: BTreeMap<u64, (u64, Response)>,
}

/// A change to the metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// Registers (or re-registers) a broker, unfenced.
    RegisterBroker {
        /// `broker.id`.
        id: i32,
        /// `host:port`.
        address: String,
        /// `broker.rack`.
        rack: Option<String>,
    },
    /// Fences a broker: every partition it leads elects a new leader from its ISR.
    FenceBroker {
        /// The broker.
        id: i32,
    },
    /// Unfences a broker.
    UnfenceBroker {
        /// The broker.
        id: i32,
    },
    /// Creates a topic, replicas assigned round-robin over the unfenced brokers.
    CreateTopic {
        /// The topic name.
        name: String,
        /// How many partitions.
        partitions: u32,
        /// Replicas per partition.
        replication_factor: u16,
        /// Topic configs.
        configs: BTreeMap<String, String>,
    },
    /// Deletes a topic.
    DeleteTopic {
        /// The topic name.
        name: String,
    },
    /// A leader's report of a partition's new ISR (Kafka's AlterPartition).
    AlterPartition {
        /// The topic.
        topic: String,
        /// The partition index.
        partition: u32,
        /// The new ISR.
        isr: Vec<i32>,
    },
}

/// A command from one client, numbered for deduplication.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    /// The client's id (random per client process).
    pub client: u64,
    /// The client's sequence number, rising by one per new request.
    pub seq: u64,
    /// What to change.
    pub command: Command,
}

/// What one Raft entry carries: the requests the leader gathered while its previous entry
/// was being made durable, applied in order, each answered on its own.
///
/// Why entries carry batches: openraft 0.9's core appends one entry per `client_write` and
/// waits for that append's flush before it takes the next request, so one entry per
/// request would cost one fsync per request however many clients wait (see
/// [`crate::node::Node::write`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proposal {
    /// The requests, in the order they are applied.
    pub requests: Vec<Request>,
}

/// What applying a request answered.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    /// Not a client request (blank or membership entry).
    #[default]
    None,
    /// Done; for `CreateTopic` the new topic's id.
    Ok {
        /// The topic id, for `CreateTopic`.
        topic_id: Option<String>,
    },
    /// Refused with a Kafka error name (`TOPIC_ALREADY_EXISTS`, ...).
    Error(String),
}

impl Metadata {
    fn unfenced(&self) -> Vec<i32> {
        self.brokers
            .values()
            .filter(|b| !b.fenced)
            .map(|b| b.id)
            .collect()
    }

    /// Executes the request at `position` in the entry at `log_id`.
    fn execute(&mut self, log_id: &LogId<u64>, position: usize, command: &Command) -> Response {
        let ok = Response::Ok { topic_id: None };
        let error = |name: &str| Response::Error(name.to_string());
        match command {
            Command::RegisterBroker { id, address, rack } => {
                let epoch = self.brokers.get(id).map_or(0, |b| b.epoch + 1);
                self.brokers.insert(
                    *id,
                    Broker {
                        id: *id,
                        address: address.clone(),
                        rack: rack.clone(),
                        fenced: false,
                        epoch,
                    },
                );
                ok
            }
            Command::FenceBroker { id } => {
                let Some(broker) = self.brokers.get_mut(id) else {
                    return error("BROKER_ID_NOT_REGISTERED");
                };
                broker.fenced = true;
                let fenced = *id;
                for topic in self.topics.values_mut() {
                    for p in &mut topic.partitions {
                        if !p.isr.contains(&fenced) {
                            continue;
                        }
                        p.isr.retain(|&r| r != fenced);
                        if p.leader == fenced {
                            // The next in-sync replica in assignment order leads.
                            p.leader = p
                                .replicas
                                .iter()
                                .copied()
                                .find(|r| p.isr.contains(r))
                                .unwrap_or(-1);
                            p.leader_epoch += 1;
                        }
                        p.partition_epoch += 1;
                    }
                }
                ok
            }
            Command::UnfenceBroker { id } => match self.brokers.get_mut(id) {
                Some(broker) => {
                    broker.fenced = false;
                    ok
                }
                None => error("BROKER_ID_NOT_REGISTERED"),
            },
            Command::CreateTopic {
                name,
                partitions,
                replication_factor,
                configs,
            } => {
                if self.topics.contains_key(name) {
                    return error("TOPIC_ALREADY_EXISTS");
                }
                let brokers = self.unfenced();
                let rf = usize::from(*replication_factor);
                if rf == 0 || rf > brokers.len() {
                    return error("INVALID_REPLICATION_FACTOR");
                }
                if *partitions == 0 {
                    return error("INVALID_PARTITIONS");
                }
                // 128 bits like Kafka's topic ids: term, entry index, place in the entry.
                let id = format!(
                    "{:016x}{:012x}{:04x}",
                    log_id.leader_id.term, log_id.index, position
                );
                let partitions = (0..*partitions as usize)
                    .map(|p| {
                        let replicas: Vec<i32> = (0..rf)
                            .filter_map(|r| brokers.get((p + r) % brokers.len()).copied())
                            .collect();
                        PartitionState {
                            leader: replicas.first().copied().unwrap_or(-1),
                            leader_epoch: 0,
                            isr: replicas.clone(),
                            replicas,
                            partition_epoch: 0,
                        }
                    })
                    .collect();
                self.topics.insert(
                    name.clone(),
                    Topic {
                        id: id.clone(),
                        created_at: log_id.index,
                        partitions,
                        configs: configs.clone(),
                    },
                );
                Response::Ok { topic_id: Some(id) }
            }
            Command::DeleteTopic { name } => match self.topics.remove(name) {
                Some(_) => ok,
                None => error("UNKNOWN_TOPIC_OR_PARTITION"),
            },
            Command::AlterPartition {
                topic,
                partition,
                isr,
            } => {
                let Some(p) = self
                    .topics
                    .get_mut(topic)
                    .and_then(|t| t.partitions.get_mut(*partition as usize))
                else {
                    return error("UNKNOWN_TOPIC_OR_PARTITION");
                };
                if !p.isr.contains(&p.leader) && p.leader >= 0 {
                    return error("INVALID_REQUEST");
                }
                if !isr.contains(&p.leader) || isr.iter().any(|r| !p.replicas.contains(r)) {
                    return error("INVALID_REQUEST");
                }
                p.isr = isr.clone();
                p.partition_epoch += 1;
                ok
            }
        }
    }
}

impl Metadata {
    /// Applies the request at `position` in the entry at `log_id`: executes it once per
    /// client sequence number, answering a retry of the last one with its first answer.
    pub fn apply_request(
        &mut self,
        log_id: &LogId<u64>,
        position: usize,
        request: &Request,
    ) -> Response {
        if let Some((seq, response)) = self.sessions.get(&request.client) {
            if request.seq == *seq {
                return response.clone(); // a retry of the last request: answered already
            }
            if request.seq < *seq {
                return Response::Error("OUT_OF_ORDER_SEQUENCE_NUMBER".into());
            }
        }
        let response = self.execute(log_id, position, &request.command);
        self.sessions
            .insert(request.client, (request.seq, response.clone()));
        response
    }
}

impl StateMachineData<TypeConfig> for Metadata {
    fn apply(&mut self, log_id: &LogId<u64>, proposal: &Proposal) -> Vec<Response> {
        proposal
            .requests
            .iter()
            .enumerate()
            .map(|(position, request)| self.apply_request(log_id, position, request))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use openraft::CommittedLeaderId;

    use super::*;

    fn at(index: u64) -> LogId<u64> {
        LogId::new(CommittedLeaderId::new(1, 1), index)
    }

    fn req(client: u64, seq: u64, command: Command) -> Request {
        Request {
            client,
            seq,
            command,
        }
    }

    fn register(id: i32) -> Command {
        Command::RegisterBroker {
            id,
            address: format!("b{id}:9092"),
            rack: None,
        }
    }

    #[test]
    fn topics_are_assigned_and_fencing_moves_leaders() {
        let mut m = Metadata::default();
        for (i, id) in [1, 2, 3].into_iter().enumerate() {
            m.apply_request(&at(i as u64), 0, &req(1, i as u64, register(id)));
        }
        let create = Command::CreateTopic {
            name: "t".into(),
            partitions: 3,
            replication_factor: 2,
            configs: BTreeMap::new(),
        };
        let r = m.apply_request(&at(5), 0, &req(1, 3, create.clone()));
        assert_eq!(
            r,
            Response::Ok {
                topic_id: Some(format!("{:016x}{:012x}{:04x}", 1, 5, 0))
            }
        );
        let t = &m.topics["t"];
        let replicas: Vec<_> = t.partitions.iter().map(|p| p.replicas.clone()).collect();
        assert_eq!(replicas, [vec![1, 2], vec![2, 3], vec![3, 1]]);
        // A retry answers the same and changes nothing; a new request with the name fails.
        assert_eq!(m.apply_request(&at(6), 0, &req(1, 3, create.clone())), r);
        assert_eq!(m.topics["t"].created_at, 5);
        assert_eq!(
            m.apply_request(&at(7), 0, &req(1, 4, create)),
            Response::Error("TOPIC_ALREADY_EXISTS".into())
        );
        m.apply_request(&at(8), 0, &req(2, 0, Command::FenceBroker { id: 2 }));
        let p: Vec<_> = m.topics["t"]
            .partitions
            .iter()
            .map(|p| (p.leader, p.leader_epoch, p.isr.clone()))
            .collect();
        assert_eq!(p, [(1, 0, vec![1]), (3, 1, vec![3]), (3, 0, vec![3, 1])]);
        assert_eq!(
            m.apply_request(&at(9), 0, &req(2, 0, Command::UnfenceBroker { id: 2 })),
            Response::Ok { topic_id: None },
            "seq 0 again: the retry's answer"
        );
    }

    #[test]
    fn a_proposal_applies_its_requests_in_order_each_answered() {
        let mut m = Metadata::default();
        let create = |name: &str| Command::CreateTopic {
            name: name.into(),
            partitions: 1,
            replication_factor: 1,
            configs: BTreeMap::new(),
        };
        let proposal = Proposal {
            requests: vec![
                req(1, 0, register(1)),
                req(2, 0, create("a")),
                req(3, 0, create("b")),
                req(2, 0, create("a")), // a retry in the same entry
                req(4, 0, create("a")),
            ],
        };
        let answers = m.apply(&at(7), &proposal);
        let id = |pos: u16| Response::Ok {
            topic_id: Some(format!("{:016x}{:012x}{pos:04x}", 1, 7)),
        };
        assert_eq!(
            answers,
            [
                Response::Ok { topic_id: None },
                id(1),
                id(2),
                id(1),
                Response::Error("TOPIC_ALREADY_EXISTS".into()),
            ]
        );
        assert_eq!(m.topics["a"].created_at, 7);
        assert_ne!(m.topics["a"].id, m.topics["b"].id);
    }
}
