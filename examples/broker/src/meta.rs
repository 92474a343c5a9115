//! `meta.properties` in the data directory, as Kafka keeps it: the cluster id, made once
//! when the directory is first used, and the node id, which must not change afterwards.

use std::path::Path;

use anyhow::{bail, Context};

use crate::durable_file;

/// The file's name, Kafka's.
pub const META_PROPERTIES: &str = "meta.properties";

/// Reads the data directory's cluster id, creating `meta.properties` on first use; fails
/// when the directory belongs to another node id.
pub fn load_or_create(data_dir: &Path, node_id: i32) -> anyhow::Result<String> {
    let path = data_dir.join(META_PROPERTIES);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let get = |key: &str| {
                text.lines()
                    .filter_map(|l| l.split_once('='))
                    .find(|(k, _)| k.trim() == key)
                    .map(|(_, v)| v.trim().to_string())
            };
            let cluster_id = get("cluster.id").context("meta.properties has no cluster.id")?;
            if let Some(stored) = get("node.id") {
                if stored != node_id.to_string() {
                    bail!(
                        "{} belongs to node.id {stored}, not {node_id}",
                        data_dir.display()
                    );
                }
            }
            Ok(cluster_id)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let cluster_id = new_cluster_id();
            let text = format!("version=1\ncluster.id={cluster_id}\nnode.id={node_id}\n");
            durable_file::write(&path, &text)
                .with_context(|| format!("writing {}", path.display()))?;
            Ok(cluster_id)
        }
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// 64 random bits: `RandomState` is seeded from the OS's randomness, mixed with the clock.
/// Enough for ids that only have to differ between data directories or runs.
pub fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    h.finish()
}

/// A random 16-byte id in Kafka's form (URL-safe base64 without padding, 22 characters).
fn new_cluster_id() -> String {
    let mut bytes = [0u8; 16];
    for chunk in bytes.chunks_mut(8) {
        chunk.copy_from_slice(&random_u64().to_le_bytes());
    }
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut bits: u128 = u128::from_le_bytes(bytes);
    (0..22)
        .map(|_| {
            let c = ALPHABET[(bits & 63) as usize] as char;
            bits >>= 6;
            c
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_id_is_kept_and_node_id_checked() {
        let dir = tempfile::tempdir().unwrap();
        let id = load_or_create(dir.path(), 1).unwrap();
        assert_eq!(id.len(), 22);
        assert_eq!(load_or_create(dir.path(), 1).unwrap(), id);
        assert!(load_or_create(dir.path(), 2).is_err());
    }
}
