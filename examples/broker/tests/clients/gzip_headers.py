"""kafka-python produces gzip batches with headers; kafka-python and confluent-kafka read back the same records."""
from kafka import KafkaProducer, KafkaConsumer, TopicPartition as KpTp

from common import bootstrap, check, confluent_consumer, consume_all, create_topic
import time

b = bootstrap()
TOPIC, PARTITIONS, N = "gz", 2, 500
create_topic(b, TOPIC, PARTITIONS)

prod = KafkaProducer(bootstrap_servers=b, compression_type="gzip", acks="all", linger_ms=5)
futures = []
for i in range(N):
    headers = [("idx", str(i).encode()), ("source", b"kafka-python"), ("empty", b"")]
    futures.append(prod.send(TOPIC, key=f"k{i % 7}".encode(), value=f"value-{i}".encode() * (1 + i % 3),
                             headers=headers, partition=i % PARTITIONS, timestamp_ms=1_700_000_000_000 + i))
prod.flush(60)
for f in futures:
    f.get(timeout=60)
prod.close()


def kp_records():
    c = KafkaConsumer(bootstrap_servers=b, group_id=None, enable_auto_commit=False,
                      auto_offset_reset="earliest", consumer_timeout_ms=2000)
    tps = [KpTp(TOPIC, q) for q in range(PARTITIONS)]
    c.assign(tps)
    c.seek_to_beginning(*tps)
    out = []
    deadline = time.monotonic() + 60
    while len(out) < N and time.monotonic() < deadline:
        for recs in c.poll(timeout_ms=1000).values():
            out.extend((r.partition, r.offset, r.key, r.value, [(k, v) for k, v in r.headers], r.timestamp)
                       for r in recs)
    c.close()
    return sorted(out)


def ck_records():
    c = confluent_consumer(b, TOPIC, PARTITIONS)
    out = [(m.partition(), m.offset(), m.key(), m.value(), [(k, v) for k, v in (m.headers() or [])],
            m.timestamp()[1]) for m in consume_all(c, N)]
    c.close()
    return sorted(out)


a, c = kp_records(), ck_records()
check(len(a) == N, f"kafka-python read {len(a)}")
check(a == c, "kafka-python and confluent-kafka read the same records")
for part, off, key, value, headers, ts in a:
    i = int(dict(headers)["idx"])
    check(value == f"value-{i}".encode() * (1 + i % 3) and key == f"k{i % 7}".encode(), f"record {i}")
    check(headers == [("idx", str(i).encode()), ("source", b"kafka-python"), ("empty", b"")], f"headers {i}")
    check(ts == 1_700_000_000_000 + i and part == i % PARTITIONS, f"timestamp/partition {i}")
print("gzip headers ok")
