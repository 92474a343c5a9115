//! The group coordinator (classic protocol) as a sans-IO state machine: requests and
//! `tick(now)` in; responses, records for `__consumer_offsets` and the next deadline out.
//!
//! It builds on the record types of [`crate::group`] and answers with
//! [`KafkaCode`](crate::KafkaCode)s. Work in progress (issue 12).
