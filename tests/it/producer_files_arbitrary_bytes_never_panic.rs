//! `.snapshot` and `.txnindex` bytes from disk are untrusted: any bytes parse or fail with
//! a typed error, and a valid snapshot with any byte changed is refused (its CRC-32C).

use std::path::Path;

use proptest::prelude::*;
use streamlog::producer::{parse_snapshot_file, parse_txn_index_file};
use streamlog::Error;

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..600)) {
        match parse_snapshot_file(Path::new("x.snapshot"), &data) {
            Ok(_) | Err(Error::CorruptSnapshot { .. }) => {}
            Err(e) => panic!("unexpected error {e}"),
        }
        match parse_txn_index_file(Path::new("00000000000000000000.txnindex"), &data) {
            Ok(entries) => prop_assert_eq!(entries.len() * 34, data.len()),
            Err(Error::CorruptTxnIndex { .. }) => {}
            Err(e) => panic!("unexpected error {e}"),
        }
    }

    #[test]
    fn huge_counts_are_refused(count in any::<i32>(), tail in proptest::collection::vec(any::<u8>(), 0..40)) {
        // A version-2 snapshot whose CRC is right but whose producer count is not.
        let mut body = 0i64.to_be_bytes().to_vec();
        body.extend_from_slice(&count.to_be_bytes());
        body.extend_from_slice(&tail);
        let mut bytes = 2i16.to_be_bytes().to_vec();
        bytes.extend_from_slice(&crc32c::crc32c(&body).to_be_bytes());
        bytes.extend_from_slice(&body);
        let _ = parse_snapshot_file(Path::new("x.snapshot"), &bytes);
    }
}
