//! Tests that count the whole process's open files and memory maps (in /proc/self), so they
//! need a process of their own: in the shared `it` binary other tests' files would be counted.

#[path = "../it/storage_util/mod.rs"]
mod storage_util;

mod storage_10k_partitions_within_file_budget;
