"""Writes valid `.snapshot` seeds (into corpus/producer_files/) for the `producer_files` fuzz target: our version 2
layout and Kafka's version 1 (see src/producer/snapshot.rs for both layouts)."""
import struct
from pathlib import Path


def crc32c(data: bytes) -> int:
    # Castagnoli polynomial, reflected, as in the `crc32c` crate.
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def snapshot(version: int, body: bytes) -> bytes:
    return struct.pack(">hI", version, crc32c(body)) + body


def v2_entry(pid, epoch, coord_epoch, txn_first, last_ts, batches):
    out = struct.pack(">qhiqqi", pid, epoch, coord_epoch, txn_first, last_ts, len(batches))
    for last_seq, last_offset, delta, ts in batches:
        out += struct.pack(">iqiq", last_seq, last_offset, delta, ts)
    return out


def v1_entry(pid, epoch, last_seq, last_offset, delta, ts, coord_epoch, txn_first):
    return struct.pack(">qhiqiqiq", pid, epoch, last_seq, last_offset, delta, ts, coord_epoch, txn_first)


here = Path(__file__).parent / "corpus" / "producer_files"
seeds = {
    "v2_empty.bin": snapshot(2, struct.pack(">qi", 0, 0)),
    "v2_two_producers.bin": snapshot(
        2,
        struct.pack(">qi", 1, 2)
        + v2_entry(3, 0, -1, -1, 1_700_000_000_000, [(4, 10, 4, 1_700_000_000_000)])
        + v2_entry(
            7, 2, 5, 12, 1_700_000_000_500,
            [(i * 5 + 4, 20 + i * 5, 4, 1_700_000_000_100 + i) for i in range(5)],
        ),
    ),
    "v1_kafka_one_producer.bin": snapshot(1, struct.pack(">i", 1) + v1_entry(77, 2, 9, 40, 4, 1234, 5, 36)),
    "v1_kafka_no_batch.bin": snapshot(1, struct.pack(">i", 1) + v1_entry(8, 0, -1, -1, 0, -1, -1, -1)),
}
for name, data in seeds.items():
    (here / name).write_bytes(data)
