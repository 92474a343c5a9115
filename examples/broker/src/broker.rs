//! The broker's shared state: the storage, who this node is, and what the API handlers share.
//! Everything below the socket comes from streamlog's public API.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use anyhow::Context;
use streamlog::group::coordinator::GroupCoordinatorConfig;
use streamlog::group::{LocalGroupDriver, OffsetsTopicConfig};
use streamlog::storage::TopicConfig;
use streamlog::txn::{LocalTxnDriver, TxnCoordinatorConfig};
use streamlog::{Log, Storage};

use crate::config::BrokerConfig;
use crate::groups::{self, Groups};
use crate::meta;
use crate::metrics::Metrics;

/// One node: shared by every connection in an `Arc`.
#[derive(Debug)]
pub struct Broker {
    /// The settings it was started with.
    pub config: BrokerConfig,
    /// Topics and partitions.
    pub storage: Arc<Storage>,
    /// `cluster.id` from `meta.properties`.
    pub cluster_id: String,
    /// The host clients are told to connect to.
    pub advertised_host: String,
    /// The port clients are told to connect to.
    pub advertised_port: i32,
    /// streamlog's transaction coordinator over this storage: producer ids (idempotent and
    /// transactional), `__transaction_state`, markers. One request at a time.
    pub txn: Mutex<LocalTxnDriver>,
    /// streamlog's group coordinator over this storage: `__consumer_offsets`, groups,
    /// rebalances, committed offsets.
    pub groups: Arc<Groups>,
    /// Salted, hashed SASL credentials (from the data directory), when SASL is on.
    pub sasl: Option<crate::sasl::Credentials>,
    /// The ACLs (from the data directory) and `super.users`, when `[authorizer]` is set.
    pub acls: Option<crate::acl::Authorizer>,
    /// Counters and histograms for the metrics endpoint.
    pub metrics: Metrics,
}

impl Broker {
    /// Opens the data directory and prepares the broker for a listener bound at `bound`.
    pub fn open(config: BrokerConfig, bound: SocketAddr) -> anyhow::Result<Broker> {
        let storage = config.storage_config()?;
        Self::open_with(config, bound, storage)
    }

    /// [`Broker::open`] with storage settings of the caller's (a simulated filesystem in
    /// tests).
    pub fn open_with(
        config: BrokerConfig,
        bound: SocketAddr,
        storage: streamlog::storage::StorageConfig,
    ) -> anyhow::Result<Broker> {
        std::fs::create_dir_all(&config.data_dir)
            .with_context(|| format!("creating {}", config.data_dir.display()))?;
        let cluster_id = meta::load_or_create(&config.data_dir, config.node_id)?;
        let storage = Arc::new(
            Storage::open(&config.data_dir, storage)
                .with_context(|| format!("opening {}", config.data_dir.display()))?,
        );
        let group_config = GroupCoordinatorConfig {
            offsets_topic_num_partitions: config.offsets_topic_num_partitions,
            group_initial_rebalance_delay_ms: config.group_initial_rebalance_delay_ms,
            group_min_session_timeout_ms: config.group_min_session_timeout_ms,
            group_max_session_timeout_ms: config.group_max_session_timeout_ms,
            ..GroupCoordinatorConfig::default()
        };
        let mut offsets = OffsetsTopicConfig::default();
        offsets.num_partitions = config.offsets_topic_num_partitions;
        let group_driver = LocalGroupDriver::open(
            Arc::clone(&storage),
            group_config,
            &offsets,
            meta::random_u64(),
            groups::now_ms(),
        )
        .context("loading the group coordinator")?;
        // AddOffsetsToTxn must name the offsets partition the group coordinator uses: the
        // topic's actual partition count (an existing topic keeps its own).
        let offsets_partitions = storage
            .partition_count(streamlog::group::OFFSETS_TOPIC)
            .context("the offsets topic")?;
        let txn_config = TxnCoordinatorConfig {
            transaction_state_partitions: config.transaction_state_log_num_partitions,
            consumer_offsets_partitions: offsets_partitions,
            ..TxnCoordinatorConfig::default()
        };
        let mut txn = LocalTxnDriver::open(Arc::clone(&storage), txn_config)
            .context("loading the transaction coordinator")?;
        // Transaction markers written to `__consumer_offsets` settle transactional commits.
        txn.set_offsets_marker_hook(group_driver.marker_hook());
        let sasl = match &config.sasl {
            Some(s) => Some(crate::sasl::Credentials::sync(&config.data_dir, &s.users)?),
            None => None,
        };
        let acls = match &config.authorizer {
            Some(a) => Some(crate::acl::Authorizer::open(&config.data_dir, a.clone())?),
            None => None,
        };
        let (advertised_host, advertised_port) = match &config.advertised_listener {
            Some(l) => {
                let (h, p) = l
                    .rsplit_once(':')
                    .context("advertised_listener must be HOST:PORT")?;
                (
                    h.to_string(),
                    p.parse().context("advertised_listener port")?,
                )
            }
            None => (bound.ip().to_string(), i32::from(bound.port())),
        };
        Ok(Broker {
            config,
            storage,
            cluster_id,
            advertised_host,
            advertised_port,
            txn: Mutex::new(txn),
            groups: Arc::new(Groups::new(group_driver)),
            sasl,
            acls,
            metrics: Metrics::default(),
        })
    }

    /// The transaction coordinator, locked.
    pub fn txn(&self) -> std::sync::MutexGuard<'_, LocalTxnDriver> {
        self.txn
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The node id.
    pub fn node_id(&self) -> i32 {
        self.config.node_id
    }

    /// A partition's log, if the topic and partition exist.
    pub fn log(&self, topic: &str, partition: i32) -> streamlog::Result<Arc<Log>> {
        let p = u32::try_from(partition).map_err(|_| streamlog::Error::UnknownPartition {
            topic: topic.to_string(),
            partition: u32::MAX,
            partitions: self.storage.partition_count(topic).unwrap_or(0),
        })?;
        self.storage.partition(topic, p)
    }

    /// Creates `topic` with `num.partitions` partitions when auto-creation is on; whether
    /// it exists afterwards.
    pub fn auto_create(&self, topic: &str) -> bool {
        if self.storage.partition_count(topic).is_ok() {
            return true;
        }
        if !self.config.auto_create_topics_enable {
            return false;
        }
        match self
            .storage
            .create_topic(topic, self.config.num_partitions, TopicConfig::new())
        {
            Ok(()) => {
                tracing::info!(
                    topic,
                    partitions = self.config.num_partitions,
                    "auto-created topic"
                );
                true
            }
            Err(streamlog::Error::TopicExists { existing: None, .. }) => true,
            Err(e) => {
                tracing::debug!(topic, error = %e, "auto-creation refused");
                false
            }
        }
    }

    /// The partition's high watermark (on a single node, the log end offset: the log's
    /// default `HighWatermarkPolicy::LogEnd`).
    pub fn high_watermark(log: &Log) -> i64 {
        log.high_watermark()
    }
}

/// A broker for unit tests, on `dir`: one partition for each internal topic, no initial
/// rebalance delay, `tweak` applied to the config last.
#[cfg(test)]
pub fn test_broker(dir: &std::path::Path, tweak: impl FnOnce(&mut BrokerConfig)) -> Broker {
    let mut config = BrokerConfig {
        data_dir: dir.to_path_buf(),
        transaction_state_log_num_partitions: 1,
        offsets_topic_num_partitions: 1,
        group_initial_rebalance_delay_ms: 0,
        ..BrokerConfig::default()
    };
    tweak(&mut config);
    Broker::open(config, SocketAddr::from(([127, 0, 0, 1], 9092))).expect("test broker")
}
