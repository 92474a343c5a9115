//! The broker's settings: command-line flags over an optional TOML file over Kafka's
//! defaults. Keys are Kafka's broker config names with `_` for `.` (TOML would read a dotted
//! key as nested tables); topic defaults keep Kafka's topic config names as quoted keys.
//!
//! ```toml
//! listen = "127.0.0.1:9092"
//! data_dir = "./streamlog-data"
//! node_id = 1
//! socket_request_max_bytes = 104857600
//! queued_max_request_bytes = 536870912
//! max_connections = 1000
//!
//! [topic_defaults]
//! "retention.ms" = "604800000"
//! "segment.bytes" = "1073741824"
//! ```

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use serde::Deserialize;
use streamlog::storage::{StorageConfig, TopicConfig};

/// Every setting of the broker, with Kafka's defaults where Kafka has the setting.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BrokerConfig {
    /// Address the Kafka listener binds (loopback by default). Port 0 picks a free port; the
    /// bound address is printed on stdout as `listening on ADDR`.
    pub listen: SocketAddr,
    /// `advertised.listeners`' host and port as `HOST:PORT`: what Metadata tells clients to
    /// connect to. Defaults to the bound address.
    pub advertised_listener: Option<String>,
    /// `log.dirs` (one directory).
    pub data_dir: PathBuf,
    /// `node.id`.
    pub node_id: i32,
    /// `socket.request.max.bytes`: a larger length prefix closes the connection.
    pub socket_request_max_bytes: u32,
    /// `queued.max.request.bytes`: bytes of requests being read or handled, across all
    /// connections. A connection whose request would go over waits (its socket unread) until
    /// memory frees, as Kafka mutes it; the read deadline still runs. At least
    /// `socket_request_max_bytes`.
    pub queued_max_request_bytes: u64,
    /// `max.connections`: connections over the limit are closed as soon as accepted.
    pub max_connections: usize,
    /// `connections.max.idle.ms`: a connection that sends nothing for this long is closed.
    pub connections_max_idle_ms: u64,
    /// Once the first byte of a request has arrived, the whole request must arrive within
    /// this time or the connection is closed (a slow-request deadline; Kafka has no such
    /// setting, it relies on the idle timeout).
    pub request_read_timeout_ms: u64,
    /// `auto.create.topics.enable`.
    pub auto_create_topics_enable: bool,
    /// `num.partitions`: partitions of auto-created topics and of CreateTopics asking for -1.
    pub num_partitions: u32,
    /// `fetch.max.bytes` upper bound the broker applies to any fetch (Kafka's 55 MiB).
    pub fetch_max_bytes: u32,
    /// On plaintext listeners, Fetch sends record batches from the segment files with
    /// `sendfile(2)` (Linux), never through the broker's memory. `false` copies them as TLS
    /// listeners must (to measure what `sendfile` saves). Kafka has no such setting.
    pub fetch_sendfile: bool,
    /// `transaction.state.log.num.partitions`: partitions of `__transaction_state`, fixed
    /// when the topic is first created.
    pub transaction_state_log_num_partitions: u32,
    /// `offsets.topic.num.partitions`: partitions of `__consumer_offsets`, fixed when the
    /// topic is first created.
    pub offsets_topic_num_partitions: u32,
    /// `group.initial.rebalance.delay.ms`: how long the first rebalance of an empty group
    /// waits for more members.
    pub group_initial_rebalance_delay_ms: i64,
    /// `group.min.session.timeout.ms`.
    pub group_min_session_timeout_ms: i32,
    /// `group.max.session.timeout.ms`.
    pub group_max_session_timeout_ms: i32,
    /// `log.flush.scheduler.interval.ms`: how often logs are checked against their
    /// `flush.ms` (Kafka's default is never, which leaves `flush.ms` without effect; here 1 s).
    pub log_flush_scheduler_interval_ms: u64,
    /// Address of the Prometheus-text metrics endpoint (`GET /metrics`); none by default.
    pub metrics_listen: Option<SocketAddr>,
    /// SASL on the listener (`[sasl]`): clients must authenticate first.
    pub sasl: Option<crate::sasl::SaslConfig>,
    /// ACLs (`[authorizer]`): when present every request is authorized, deny by default.
    pub authorizer: Option<crate::acl::AuthorizerConfig>,
    /// TLS for the listener (`[tls]`); plaintext when absent.
    pub tls: Option<crate::tls::TlsConfig>,
    /// Topic configs applied to topics without an override, under Kafka's names.
    pub topic_defaults: BTreeMap<String, String>,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        BrokerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 9092)),
            advertised_listener: None,
            data_dir: PathBuf::from("./streamlog-data"),
            node_id: 1,
            socket_request_max_bytes: 104_857_600,
            queued_max_request_bytes: 512 * 1024 * 1024,
            max_connections: 1000,
            connections_max_idle_ms: 600_000,
            request_read_timeout_ms: 30_000,
            auto_create_topics_enable: true,
            num_partitions: 1,
            fetch_max_bytes: 55 * 1024 * 1024,
            fetch_sendfile: true,
            transaction_state_log_num_partitions: 50,
            offsets_topic_num_partitions: 50,
            group_initial_rebalance_delay_ms: 3_000,
            group_min_session_timeout_ms: 6_000,
            group_max_session_timeout_ms: 1_800_000,
            log_flush_scheduler_interval_ms: 1_000,
            metrics_listen: None,
            sasl: None,
            authorizer: None,
            tls: None,
            topic_defaults: BTreeMap::new(),
        }
    }
}

impl BrokerConfig {
    /// Reads a TOML file; absent keys keep their defaults, unknown keys are an error.
    pub fn from_file(path: &Path) -> anyhow::Result<BrokerConfig> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading config file {}", path.display()))?;
        Self::from_toml(&text).with_context(|| format!("in config file {}", path.display()))
    }

    /// Parses TOML text.
    pub fn from_toml(text: &str) -> anyhow::Result<BrokerConfig> {
        let config: BrokerConfig = toml::from_str(text)?;
        config.check()?;
        Ok(config)
    }

    fn check(&self) -> anyhow::Result<()> {
        if self.socket_request_max_bytes < 8 {
            bail!("socket_request_max_bytes must be at least 8");
        }
        if self.queued_max_request_bytes < u64::from(self.socket_request_max_bytes) {
            bail!("queued_max_request_bytes must be at least socket_request_max_bytes");
        }
        if self.num_partitions == 0
            || self.transaction_state_log_num_partitions == 0
            || self.offsets_topic_num_partitions == 0
        {
            bail!("num_partitions, transaction_state_log_num_partitions and offsets_topic_num_partitions must be at least 1");
        }
        if self.log_flush_scheduler_interval_ms == 0 {
            bail!("log_flush_scheduler_interval_ms must be at least 1");
        }
        self.storage_config()?;
        if let Some(tls) = &self.tls {
            tls.acceptor()?;
        }
        Ok(())
    }

    /// The storage settings: Kafka's defaults with `topic_defaults` applied.
    pub fn storage_config(&self) -> anyhow::Result<StorageConfig> {
        let overrides = TopicConfig::from_map(&self.topic_defaults).context("topic_defaults")?;
        let mut storage = StorageConfig::default();
        storage.defaults = overrides
            .resolve_checked(&storage.defaults)
            .context("topic_defaults")?;
        Ok(storage)
    }

    /// `connections.max.idle.ms` as a duration.
    pub fn idle_timeout(&self) -> Duration {
        Duration::from_millis(self.connections_max_idle_ms)
    }

    /// The slow-request deadline as a duration.
    pub fn request_read_timeout(&self) -> Duration {
        Duration::from_millis(self.request_read_timeout_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_overrides_defaults_and_rejects_unknown_keys() {
        let c = BrokerConfig::from_toml(
            "listen = \"127.0.0.1:0\"\nmax_connections = 3\n[topic_defaults]\n\"retention.ms\" = \"1000\"\n",
        )
        .unwrap();
        assert_eq!(c.max_connections, 3);
        assert_eq!(c.listen.port(), 0);
        assert_eq!(c.socket_request_max_bytes, 104_857_600);
        assert_eq!(
            c.storage_config().unwrap().defaults.log.retention_ms,
            Some(1000)
        );
        assert!(BrokerConfig::from_toml("no_such_key = 1").is_err());
        assert!(BrokerConfig::from_toml("[topic_defaults]\n\"retention.ms\" = \"soon\"").is_err());
    }
}
