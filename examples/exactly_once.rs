//! Exactly-once consume-transform-produce in one process, with the transaction coordinator
//! (`LocalTxnDriver`) and the group coordinator (`LocalGroupDriver`) on one `Storage`.
//!
//! An application reads orders from `orders`, writes one line per order to `totals`, and
//! commits the position it read up to with the group `billing` *inside the same
//! transaction* (AddOffsetsToTxn + TxnOffsetCommit). The committed offset becomes visible
//! when the COMMIT marker reaches `__consumer_offsets` and vanishes on ABORT, so after any
//! failure the application resumes from exactly what the committed transactions consumed:
//!
//! 1. a transaction commits orders 0–1 and the offset 2;
//! 2. a transaction over orders 2–3 aborts: its output and its offset commit vanish, and the
//!    application rewinds to the committed offset;
//! 3. orders 2–3 again, committed;
//! 4. the instance processing orders 4–5 hangs mid-transaction and a new instance of the
//!    same `transactional.id` starts: the old transaction is aborted, the zombie's offset
//!    commit and EndTxn are refused with PRODUCER_FENCED, and the new instance resumes from
//!    the committed offset 4;
//! 5. after a restart of both coordinators the group's offset is still 6, and a
//!    read_committed reader of `totals` sees each order exactly once.
//!
//! Run with `cargo run --example exactly_once`.

use std::sync::Arc;

use streamlog::group::coordinator::{
    GroupCoordinatorConfig, OffsetCommitPartition, OffsetFetchRequest, Request, Response,
    TopicPartition as GroupTopicPartition, TxnOffsetCommitRequest,
};
use streamlog::group::{LocalGroupDriver, OffsetsTopicConfig};
use streamlog::storage::{Storage, StorageConfig, TopicConfig};
use streamlog::txn::{
    AddOffsetsToTxnRequest, InitProducerIdRequest, KafkaCode, LocalTxnDriver, TopicPartition,
    TxnCoordinatorConfig,
};
use streamlog::{BatchBuilder, BatchOptions};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

const APP: &str = "billing-app"; // the transactional.id
const GROUP: &str = "billing"; // the consumer group
const T0: i64 = 1_700_000_000_000;

/// The two coordinators of one node, joined by the marker hook: every COMMIT or ABORT
/// marker the transaction coordinator writes to `__consumer_offsets` is applied by the
/// group coordinator (the pending offsets become committed, or are dropped).
struct Node {
    storage: Arc<Storage>,
    txn: LocalTxnDriver,
    groups: LocalGroupDriver,
    next_request: u64,
}

impl Node {
    fn open(storage: Arc<Storage>, seed: u64) -> Result<Node> {
        let groups = LocalGroupDriver::open(
            Arc::clone(&storage),
            GroupCoordinatorConfig::default(),
            &OffsetsTopicConfig::default(),
            seed,
            T0,
        )?;
        let mut txn = LocalTxnDriver::open(Arc::clone(&storage), TxnCoordinatorConfig::default())?;
        txn.set_offsets_marker_hook(groups.marker_hook());
        Ok(Node {
            storage,
            txn,
            groups,
            next_request: 0,
        })
    }

    fn group_request(&mut self, request: Request) -> Result<Response> {
        self.next_request += 1;
        let id = self.next_request;
        let answers = self.groups.handle(T0, id, request);
        answers
            .into_iter()
            .find(|(r, _)| *r == id)
            .map(|(_, response)| response)
            .ok_or_else(|| "the group coordinator did not answer".into())
    }

    /// OffsetFetch with require_stable: where the group resumes reading `orders`.
    fn committed_position(&mut self) -> Result<i64> {
        let response = self.group_request(Request::OffsetFetch(OffsetFetchRequest {
            group_id: GROUP.into(),
            partitions: Some(vec![GroupTopicPartition::new("orders", 0)]),
            require_stable: true,
        }))?;
        let Response::OffsetFetch(r) = response else {
            return Err("not an OffsetFetch answer".into());
        };
        let p = r.partitions.first().ok_or("no partition in the answer")?;
        assert_eq!(p.error_code, KafkaCode::NONE);
        Ok(p.committed_offset.max(0))
    }
}

/// One instance of the application: its producer id and epoch, and its sequence numbers.
struct Producer {
    pid: i64,
    epoch: i16,
    sequences: [i32; 2],
}

impl Producer {
    /// initTransactions(): InitProducerId, retried while a previous instance's transaction
    /// is being aborted (CONCURRENT_TRANSACTIONS is retriable).
    fn init(node: &mut Node) -> Result<Producer> {
        // In-process markers are written before InitProducerId returns: one retry suffices.
        for _ in 0..3 {
            let p = node
                .txn
                .init_producer_id(InitProducerIdRequest::transactional(APP, 60_000))?;
            match p.error {
                KafkaCode::NONE => {
                    return Ok(Producer {
                        pid: p.producer_id,
                        epoch: p.producer_epoch,
                        sequences: [0, 0],
                    })
                }
                KafkaCode::CONCURRENT_TRANSACTIONS => continue,
                e => return Err(format!("InitProducerId: {e}").into()),
            }
        }
        Err("InitProducerId: still CONCURRENT_TRANSACTIONS".into())
    }

    /// Reads orders `from..to`, writes one line per order to `totals` (partitioned by
    /// order number), and commits offset `to` for the group, all in the open transaction.
    /// Returns the TxnOffsetCommit's error code (the transaction is left open for EndTxn).
    fn process(&mut self, node: &mut Node, from: i64, to: i64) -> Result<KafkaCode> {
        self.produce(node, from, to)?;
        self.commit_offsets(node, to)
    }

    /// The transformation: orders `from..to` in, lines out, and the group's offsets
    /// partition added to the transaction.
    fn produce(&mut self, node: &mut Node, from: i64, to: i64) -> Result<()> {
        let orders = node.storage.partition("orders", 0)?;
        let mut lines: [Vec<String>; 2] = Default::default();
        for record in orders.records_from(from).take((to - from) as usize) {
            let record = record?;
            let order = String::from_utf8_lossy(record.value().unwrap_or_default()).into_owned();
            lines[(record.offset() % 2) as usize].push(format!("billed {order}"));
        }
        let partitions = (0..2).map(|p| TopicPartition::new("totals", p)).collect();
        let added = node
            .txn
            .add_partitions_to_txn(APP, self.pid, self.epoch, partitions)?;
        assert_eq!(added.error(), KafkaCode::NONE);
        for (p, lines) in lines.iter().enumerate() {
            if lines.is_empty() {
                continue;
            }
            let mut b = BatchBuilder::new(BatchOptions {
                producer_id: self.pid,
                producer_epoch: self.epoch,
                base_sequence: self.sequences[p],
                transactional: true,
                ..BatchOptions::default()
            });
            for line in lines {
                b.append(T0, None, Some(line.as_bytes()), &[])?;
            }
            node.storage
                .partition("totals", p as u32)?
                .append(&b.build()?)?;
            self.sequences[p] += lines.len() as i32;
        }
        // sendOffsetsToTransaction(), first half: the group's offsets partition joins the
        // transaction.
        let added = node.txn.add_offsets_to_txn(AddOffsetsToTxnRequest {
            transactional_id: APP.into(),
            producer_id: self.pid,
            producer_epoch: self.epoch,
            group_id: GROUP.into(),
        })?;
        assert_eq!(added, KafkaCode::NONE);
        Ok(())
    }

    /// sendOffsetsToTransaction(), second half: TxnOffsetCommit, written to
    /// `__consumer_offsets` as a transactional batch of this producer, pending until the
    /// transaction's marker.
    fn commit_offsets(&mut self, node: &mut Node, to: i64) -> Result<KafkaCode> {
        let response = node.group_request(Request::TxnOffsetCommit(TxnOffsetCommitRequest {
            transactional_id: APP.into(),
            group_id: GROUP.into(),
            producer_id: self.pid,
            producer_epoch: self.epoch,
            generation_id: -1,
            member_id: String::new(),
            group_instance_id: None,
            partitions: vec![OffsetCommitPartition {
                topic: "orders".into(),
                partition: 0,
                committed_offset: to,
                committed_leader_epoch: -1,
                committed_metadata: None,
            }],
        }))?;
        let Response::TxnOffsetCommit(r) = response else {
            return Err("not a TxnOffsetCommit answer".into());
        };
        Ok(r.partitions
            .first()
            .map_or(KafkaCode::NONE, |p| p.error_code))
    }

    fn end(&self, node: &mut Node, commit: bool) -> Result<KafkaCode> {
        Ok(node.txn.end_txn(APP, self.pid, self.epoch, commit)?)
    }
}

fn main() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let storage = Arc::new(Storage::open(dir.path(), StorageConfig::default())?);
    storage.create_topic("orders", 1, TopicConfig::new())?;
    storage.create_topic("totals", 2, TopicConfig::new())?;
    let orders = storage.partition("orders", 0)?;
    for i in 0..6 {
        let mut b = BatchBuilder::new(BatchOptions::default());
        b.append(T0, None, Some(format!("order {i}").as_bytes()), &[])?;
        orders.append(&b.build()?)?;
    }
    let mut node = Node::open(Arc::clone(&storage), 1)?;

    // 1. Orders 0–1 and the offset 2, committed together.
    let mut app = Producer::init(&mut node)?;
    let from = node.committed_position()?;
    assert_eq!(app.process(&mut node, from, from + 2)?, KafkaCode::NONE);
    assert_eq!(app.end(&mut node, true)?, KafkaCode::NONE);
    println!(
        "committed orders 0-1; group offset {}",
        node.committed_position()?
    );

    // 2. Orders 2–3 fail halfway: abort. The offset commit vanishes with the output.
    assert_eq!(app.process(&mut node, 2, 4)?, KafkaCode::NONE);
    assert_eq!(app.end(&mut node, false)?, KafkaCode::NONE);
    let from = node.committed_position()?;
    assert_eq!(from, 2);
    println!("aborted orders 2-3; group offset still {from}: rewind");

    // 3. Orders 2–3 again, committed.
    assert_eq!(app.process(&mut node, from, from + 2)?, KafkaCode::NONE);
    assert_eq!(app.end(&mut node, true)?, KafkaCode::NONE);

    // 4. This instance hangs after producing orders 4–5, before its offset commit; a new
    //    instance starts. Its InitProducerId aborts the open transaction with a bumped epoch
    //    (the ABORT marker reaches `totals` and `__consumer_offsets`), fencing the zombie.
    let zombie_pid = app.pid;
    app.produce(&mut node, 4, 6)?;
    let mut new = Producer::init(&mut node)?;
    assert_eq!(new.pid, zombie_pid);
    println!(
        "new instance: producer id {}, epoch {} (was {})",
        new.pid, new.epoch, app.epoch
    );
    let zombie = app.commit_offsets(&mut node, 6)?;
    assert_eq!(zombie, KafkaCode::PRODUCER_FENCED);
    assert_eq!(app.end(&mut node, true)?, KafkaCode::PRODUCER_FENCED);
    println!("zombie's offset commit and EndTxn: {zombie}");
    let from = node.committed_position()?;
    assert_eq!(from, 4);
    assert_eq!(new.process(&mut node, from, from + 2)?, KafkaCode::NONE);
    assert_eq!(new.end(&mut node, true)?, KafkaCode::NONE);

    // 5. Both coordinators restart from the storage: the group resumes at 6.
    drop(node);
    let mut node = Node::open(Arc::clone(&storage), 2)?;
    let resumed = node.committed_position()?;
    assert_eq!(resumed, 6);
    println!("after a restart the group resumes at offset {resumed}");

    // A read_committed reader of `totals` sees each order billed exactly once.
    let mut billed = Vec::new();
    for p in 0..2 {
        let log = storage.partition("totals", p)?;
        assert_eq!(log.last_stable_offset(), log.log_end_offset()); // nothing left undecided
        for record in log.records_committed(0) {
            billed.push(String::from_utf8_lossy(record?.value().unwrap_or_default()).into_owned());
        }
    }
    billed.sort();
    println!("totals, read_committed: {billed:?}");
    let expected: Vec<String> = (0..6).map(|i| format!("billed order {i}")).collect();
    assert_eq!(billed, expected);
    Ok(())
}
