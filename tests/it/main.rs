//! The integration tests, gathered in one binary (one build, one link): each module is one
//! scenario, named after what it proves.

mod common;
mod storage_util;

mod append_assigns_offsets_and_leader_epoch;
mod append_replicated_checks_continuity;
mod arbitrary_bytes_never_panic;
mod checkpoint_fsync_error_poisons;
mod checkpoint_never_passes_a_concurrent_truncation;
mod clean_reopen_loads_indexes_without_scanning;
mod cli;
mod cli_follow_sync_and_recovery_notes;
mod compaction_concurrent_with_appends;
mod compaction_crash_simfs;
mod compaction_interop;
mod compaction_model;
mod compaction_producer_hooks;
mod compaction_readers_keep_old_view;
mod compaction_rejects_keyless_records;
mod compaction_respects_bounds_and_lag;
mod compaction_swap_outside_writer_lock;
mod compression_type_applied_on_append;
mod corrupt_and_missing_index_files_recovered;
mod corrupt_batch_rejected_and_log_intact;
mod corruption_detected;
mod crash_kill_process;
mod crash_simfs;
mod delete_records_before_advances_start;
mod direct_io_serves_unwritten_tail_from_memory;
mod directory_lock_excludes_second_writer;
mod enospc_mid_append_keeps_log_consistent;
mod flush_policy;
mod fsync_eio_poisons_log;
mod fuzz_corpus;
mod fuzz_corpus_group_records;
mod fuzz_corpus_recover_segment;
mod golden_batches;
mod group_bytes_match_kafka_python;
mod group_coordinator_resumes_from_offset_store;
mod group_coordinator_simulation;
mod group_driver_acknowledges_only_durable_records;
mod group_driver_txn_offsets_follow_end_txn;
mod group_offsets_bad_input_is_refused;
mod group_offsets_reload_rebuilds_state;
mod group_txn_offsets_pending_until_marker;
mod high_watermark_bounds_consumer_reads;
mod index_files_parse_independently;
mod index_load_serialised;
mod index_rebuilt_when_corrupt;
mod index_rebuilt_when_missing;
#[cfg(feature = "ingest")]
mod ingest_agent_commits_positions_with_records;
#[cfg(feature = "ingest")]
mod ingest_agent_never_polls_a_failed_source;
#[cfg(feature = "ingest")]
mod ingest_agent_waits_for_wakes;
#[cfg(feature = "ingest")]
mod ingest_bad_files_are_counted_and_skipped;
#[cfg(feature = "cli")]
mod ingest_config_refuses_unknown_keys;
#[cfg(feature = "ingest")]
mod ingest_file_source_follows_rotations;
#[cfg(feature = "ingest-postgres")]
mod ingest_postgres_cdc_mirrors_table;
#[cfg(all(feature = "ingest-postgres", feature = "cli"))]
mod ingest_postgres_exactly_once_under_sigkill;
#[cfg(feature = "ingest-postgres")]
mod ingest_postgres_query_reads_late_commit;
#[cfg(feature = "cli")]
mod ingest_rotation_torture;
mod interop_codecs;
mod invalid_config_refused_on_open;
mod last_stable_offset_waits_for_replicated_marker;
mod leader_epoch_cache_follows_the_log;
mod log_append_time_matches_kafka;
mod log_append_time_stamps_batches;
mod log_cut_inside_batch_header;
mod log_is_send_sync;
mod log_model;
mod log_smoke;
mod max_message_bytes_enforced;
mod partitioner_matches_kafka_python;
mod preallocated_segment_blocks;
mod producer_dump_shows_producer_state;
mod producer_duplicates_survive_reopen_and_crash;
mod producer_files_arbitrary_bytes_never_panic;
mod producer_sequence_and_epoch_errors;
mod producer_state_follows_retention_and_expiry;
mod producer_state_from_replicated_appends;
mod producer_state_rebuilt_after_unclean_open;
#[cfg(feature = "openraft")]
mod raft_store;
#[cfg(feature = "openraft")]
mod raft_store_crash_simfs;
mod read_at_log_end_is_empty;
mod read_only_open_never_writes;
mod read_out_of_range_is_typed_error;
mod read_racing_truncation_retries;
mod read_respects_upper_bound;
mod read_returns_at_least_one_batch;
mod read_slice_matches_bytes;
mod read_spans_segments;
mod readers_see_whole_batches_during_appends;
mod readers_wait_for_appends;
mod record_fast_paths_agree;
mod record_round_trip;
mod recovery_resumes_at_checkpointed_position;
mod replication_simulation;
mod retention_crash_mid_deletion_reopens;
mod retention_deletes_old_prefix;
mod retention_deletes_outside_writer_lock;
mod retention_future_timestamps_do_not_pin_segments;
mod retention_readers_keep_reading;
mod roll_fsyncs_deferred_outside_writer_lock;
mod roll_on_full_index;
mod roll_on_relative_offset_overflow;
mod roll_on_size;
mod roll_on_time;
mod sealed_indexes_durable_across_power_cut;
mod segment_base_beyond_relative_offsets_refused;
mod segment_files_interop;
mod simfs_semantics;
mod storage_adopts_kafka_layout;
mod storage_compaction_within_file_budget;
mod storage_concurrent_appends_under_eviction;
mod storage_delete_topic_crash_safe;
mod storage_lru_reopen;
mod storage_maintenance_uses_close_summaries;
mod storage_opens_partitions_outside_its_lock;
mod storage_topic_config_persisted;
mod storage_topic_configs_take_effect;
mod storage_topic_names_validated;
mod timestamp_lookup_matches_model;
mod timestamps_out_of_range_refused;
mod truncate_power_loss_keeps_a_whole_prefix;
mod truncate_to_drops_tail;
mod txn_compaction_empties_aborted_last_batch_and_drops_markers;
mod txn_compaction_keeps_last_batches_and_drops_aborted;
mod txn_compaction_model;
mod txn_coordinator_rejects_bad_input;
mod txn_coordinator_simulation;
mod txn_driver_finishes_commit_after_crash;
mod txn_index_and_snapshot_rebuilt_when_corrupt;
mod txn_log_records_match_kafka_vectors;
mod txn_read_committed_model;
mod unclean_reopen_recovers_tail;
mod valid_crc_impossible_fields;
mod verify_reports_damaged_txnindex_and_snapshot;
