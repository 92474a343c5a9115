//! Counters and latency histograms, rendered in Prometheus' text format by the metrics
//! endpoint (`metrics_listen`).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds (seconds) of the latency histograms' buckets.
const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

/// What the broker counts.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Requests answered, by API name and the response's first error code (-1: the
    /// connection was closed instead).
    requests: Mutex<BTreeMap<(&'static str, i16), u64>>,
    /// Request bytes read.
    pub bytes_in: AtomicU64,
    /// Response bytes written.
    pub bytes_out: AtomicU64,
    /// Record-batch bytes appended by producers.
    pub bytes_appended: AtomicU64,
    /// Record-batch bytes sent to consumers.
    pub bytes_fetched: AtomicU64,
    /// Of those, the bytes sent from segment files by `sendfile` (plaintext listeners; the
    /// last byte of a response that ends with records is read and written, see `zero_copy`).
    pub fetch_sendfile_bytes: AtomicU64,
    /// Of those, the bytes read into the broker's memory and written from there (TLS, or
    /// `fetch_sendfile = false`).
    pub fetch_copied_bytes: AtomicU64,
    /// Connections open now.
    pub connections: AtomicU64,
    /// Connections closed for exceeding `max_connections`.
    pub connections_refused: AtomicU64,
    /// Bytes of requests being read or handled now (`queued_max_request_bytes` bounds it).
    pub queued_request_bytes: AtomicU64,
    /// The most `queued_request_bytes` has been.
    pub queued_request_bytes_peak: AtomicU64,
    /// Produce latency.
    pub produce: Histogram,
    /// Fetch latency (long-poll waits included).
    pub fetch: Histogram,
}

/// A fixed-bucket latency histogram.
#[derive(Debug, Default)]
pub struct Histogram {
    counts: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    /// Records one observation.
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        for (bound, c) in BUCKETS.iter().zip(&self.counts) {
            if secs <= *bound {
                c.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros
            .fetch_add(d.as_micros() as u64, Ordering::Relaxed);
    }

    fn render(&self, name: &str, out: &mut String) {
        let _ = writeln!(out, "# TYPE {name} histogram");
        for (bound, c) in BUCKETS.iter().zip(&self.counts) {
            let _ = writeln!(
                out,
                "{name}_bucket{{le=\"{bound}\"}} {}",
                c.load(Ordering::Relaxed)
            );
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum {sum}");
        let _ = writeln!(out, "{name}_count {count}");
    }
}

impl Metrics {
    /// Counts one answered request.
    pub fn request(&self, api: &'static str, error_code: i16) {
        let mut m = self
            .requests
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        *m.entry((api, error_code)).or_default() += 1;
    }

    /// The Prometheus text exposition; `partitions` is the current partition count.
    pub fn render(&self, partitions: u64) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "# TYPE streamlog_broker_requests_total counter");
        let requests = self
            .requests
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone();
        for ((api, code), n) in requests {
            let _ = writeln!(
                out,
                "streamlog_broker_requests_total{{api=\"{api}\",error_code=\"{code}\"}} {n}"
            );
        }
        let counter = |out: &mut String, name: &str, v: &AtomicU64, kind: &str| {
            let _ = writeln!(out, "# TYPE {name} {kind}");
            let _ = writeln!(out, "{name} {}", v.load(Ordering::Relaxed));
        };
        counter(
            &mut out,
            "streamlog_broker_bytes_in_total",
            &self.bytes_in,
            "counter",
        );
        counter(
            &mut out,
            "streamlog_broker_bytes_out_total",
            &self.bytes_out,
            "counter",
        );
        counter(
            &mut out,
            "streamlog_broker_appended_bytes_total",
            &self.bytes_appended,
            "counter",
        );
        counter(
            &mut out,
            "streamlog_broker_fetched_bytes_total",
            &self.bytes_fetched,
            "counter",
        );
        counter(
            &mut out,
            "streamlog_broker_fetch_sendfile_bytes_total",
            &self.fetch_sendfile_bytes,
            "counter",
        );
        counter(
            &mut out,
            "streamlog_broker_fetch_copied_bytes_total",
            &self.fetch_copied_bytes,
            "counter",
        );
        counter(
            &mut out,
            "streamlog_broker_connections",
            &self.connections,
            "gauge",
        );
        counter(
            &mut out,
            "streamlog_broker_connections_refused_total",
            &self.connections_refused,
            "counter",
        );
        counter(
            &mut out,
            "streamlog_broker_queued_request_bytes",
            &self.queued_request_bytes,
            "gauge",
        );
        counter(
            &mut out,
            "streamlog_broker_queued_request_bytes_peak",
            &self.queued_request_bytes_peak,
            "gauge",
        );
        let _ = writeln!(out, "# TYPE streamlog_broker_partitions gauge");
        let _ = writeln!(out, "streamlog_broker_partitions {partitions}");
        self.produce
            .render("streamlog_broker_produce_latency_seconds", &mut out);
        self.fetch
            .render("streamlog_broker_fetch_latency_seconds", &mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counts_and_buckets() {
        let m = Metrics::default();
        m.request("Produce", 0);
        m.request("Produce", 0);
        m.produce.observe(Duration::from_millis(2));
        let text = m.render(3);
        assert!(
            text.contains("streamlog_broker_requests_total{api=\"Produce\",error_code=\"0\"} 2")
        );
        assert!(text.contains("streamlog_broker_produce_latency_seconds_bucket{le=\"0.001\"} 0"));
        assert!(text.contains("streamlog_broker_produce_latency_seconds_bucket{le=\"0.0025\"} 1"));
        assert!(text.contains("streamlog_broker_partitions 3"));
    }
}
