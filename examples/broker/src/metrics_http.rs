//! The metrics endpoint: any HTTP GET on `metrics_listen` gets the Prometheus text.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use streamlog::group::coordinator::{ListGroupsRequest, Request, Response};

use crate::broker::Broker;

/// Groups by state, from the group coordinator.
async fn group_states(broker: &Arc<Broker>) -> String {
    let request = Request::ListGroups(ListGroupsRequest::default());
    let mut by_state: BTreeMap<String, u64> = BTreeMap::new();
    if let Some(Response::ListGroups(r)) = broker.groups.call(request).await {
        for g in r.groups {
            *by_state.entry(g.group_state).or_default() += 1;
        }
    }
    let mut out = String::from("# TYPE streamlog_broker_groups gauge\n");
    for (state, n) in by_state {
        let _ = writeln!(out, "streamlog_broker_groups{{state=\"{state}\"}} {n}");
    }
    out
}

/// Serves metrics until the task is dropped.
pub async fn serve(listener: TcpListener, broker: Arc<Broker>) {
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            tokio::task::yield_now().await;
            continue;
        };
        let broker = Arc::clone(&broker);
        tokio::spawn(async move {
            // The request head only; bounded in size and time.
            let mut head = Vec::with_capacity(1024);
            let read = async {
                let mut buf = [0u8; 1024];
                while head.len() < 16 * 1024 && !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return false,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                true
            };
            if !matches!(
                tokio::time::timeout(Duration::from_secs(5), read).await,
                Ok(true)
            ) {
                return;
            }
            let partitions: u64 = broker
                .storage
                .topics()
                .iter()
                .filter_map(|t| broker.storage.partition_count(t).ok())
                .map(u64::from)
                .sum();
            let mut body = broker.metrics.render(partitions);
            body.push_str(&group_states(&broker).await);
            let response = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = tokio::time::timeout(
                Duration::from_secs(5),
                stream.write_all(response.as_bytes()),
            )
            .await;
        });
    }
}
