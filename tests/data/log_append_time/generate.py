#!/usr/bin/env python3
"""Writes kafka_log_append_time.bin/.json: a LogAppendTime batch as Kafka stores it.

kafka-python (an independent implementation) encodes an idempotent CreateTime producer
batch; then the broker's LogAppendTime stamping is applied as Kafka's LogValidator does to
a v2 batch it keeps in place (DefaultRecordBatch.setMaxTimestamp): the timestamp-type
attribute bit is set, maxTimestamp becomes the append time, and the CRC-32C is recomputed.
The base timestamp and every record's timestamp delta stay the producer's create times,
which is also what Kafka's MemoryRecordsBuilder writes when it builds a LogAppendTime batch.
The .json is kafka-python's own decoding of the result (check_golden.py --json).

Run with the kafka-python-check venv:  $VENV/bin/python generate.py
"""
import os
import struct
import subprocess
import sys

import crc32c
from kafka.record.default_records import DefaultRecordBatchBuilder

HERE = os.path.dirname(os.path.abspath(__file__))
APPEND_TIME = 1_700_000_999_999
CREATE = [1_700_000_000_000, 1_700_000_000_040, 1_699_999_999_990, 1_700_000_000_700]
RECORDS = [
    (b"user-1", b"clicked", [("trace", b"42"), ("empty", b"")]),
    (None, b"no key", []),
    (b"user-2", None, [("none", None)]),
    (b"", b"", []),
]

b = DefaultRecordBatchBuilder(magic=2, compression_type=0, is_transactional=False,
                              producer_id=9001, producer_epoch=2, base_sequence=17,
                              batch_size=1 << 20)
for offset, (ts, (key, value, headers)) in enumerate(zip(CREATE, RECORDS)):
    b.append(offset, timestamp=ts, key=key, value=value, headers=headers)
buf = bytearray(b.build())

# The broker's stamping (offsets 21: attributes i16, 35: max timestamp i64, 17: CRC u32).
attrs, = struct.unpack_from(">h", buf, 21)
struct.pack_into(">h", buf, 21, attrs | 0x08)
struct.pack_into(">q", buf, 35, APPEND_TIME)
struct.pack_into(">I", buf, 17, crc32c.crc32c(bytes(buf[21:])))

out = os.path.join(HERE, "kafka_log_append_time.bin")
with open(out, "wb") as f:
    f.write(buf)
check = os.path.join(HERE, "..", "..", "..", "..", "shared", "tools", "check_golden.py")
if len(sys.argv) > 1:
    check = sys.argv[1]
decoded = subprocess.run([sys.executable, check, out, "--json"], check=True,
                         capture_output=True, text=True).stdout
with open(os.path.join(HERE, "kafka_log_append_time.json"), "w") as f:
    f.write(decoded)
