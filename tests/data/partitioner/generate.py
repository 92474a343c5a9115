#!/usr/bin/env python3
"""Regenerates murmur2_vectors.json with kafka-python's murmur2 (a port of the Java
client's Utils.murmur2), an implementation independent of streamlog's.

    python3 -m venv /tmp/kp && /tmp/kp/bin/pip install kafka-python==3.0.12
    /tmp/kp/bin/python tests/data/partitioner/generate.py > tests/data/partitioner/murmur2_vectors.json
"""
import json
import random

from kafka.partitioner.default import murmur2

PARTITION_COUNTS = [1, 2, 3, 7, 10, 12, 50, 100, 1000, 2147483647]


def main():
    rng = random.Random(20261124)
    keys = [b"", b"a", b"ab", b"abc", b"abcd", b"abcde", b"21", b"foobar",
            b"a-little-bit-long-string", b"a-little-bit-longer-string",
            b"a-little-bit-long-string-longer", b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
            b"user-42", b"order:0001", "κλειδί".encode(), bytes(range(256))]
    for length in range(0, 40):
        keys.append(bytes(rng.randrange(256) for _ in range(length)))
    for _ in range(40):
        keys.append(bytes(rng.randrange(256) for _ in range(rng.randrange(40, 300))))
    out = []
    for key in keys:
        h = murmur2(key)
        positive = h & 0x7FFFFFFF
        out.append({
            "key_hex": key.hex(),
            "murmur2": h - (1 << 32) if h >= 1 << 31 else h,
            "partitions": {str(n): positive % n for n in PARTITION_COUNTS},
        })
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
