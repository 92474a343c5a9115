"""20,000 keyed lz4 messages from an idempotent acks=all producer, consumed exactly once in per-key order."""
from collections import defaultdict

from confluent_kafka import Producer, TopicPartition

from common import bootstrap, check, confluent_consumer, consume_all, create_topic

b = bootstrap()
TOPIC, PARTITIONS, KEYS, N = "orders", 4, 50, 20_000
create_topic(b, TOPIC, PARTITIONS)

p = Producer({
    "bootstrap.servers": b,
    "enable.idempotence": True,
    "acks": "all",
    "compression.type": "lz4",
    "linger.ms": 5,
})
errors, acked = [], [0]


def delivered(err, msg):
    if err:
        errors.append(err)
    else:
        acked[0] += 1


for i in range(N):
    key = f"key-{i % KEYS}"
    p.produce(TOPIC, key=key, value=f"{key}:{i // KEYS}", on_delivery=delivered)
    if i % 1000 == 0:
        p.poll(0)
check(p.flush(120) == 0, "every message delivered before the deadline")
check(not errors, f"delivery errors: {errors[:5]}")
check(acked[0] == N, f"{acked[0]} acknowledged")

c = confluent_consumer(b, TOPIC, PARTITIONS)
msgs = consume_all(c, N)
seen = defaultdict(list)
for m in msgs:
    key, seq = m.value().decode().split(":")
    check(m.key().decode() == key, "key matches value")
    seen[key].append(int(seq))
check(len(msgs) == N, f"{len(msgs)} consumed")
for key, seqs in seen.items():
    check(seqs == list(range(N // KEYS)), f"{key}: in order, each once")
# Nothing else in the log: the high watermarks add up to N (no duplicate appends).
total = sum(c.get_watermark_offsets(TopicPartition(TOPIC, q), timeout=30)[1] for q in range(PARTITIONS))
check(total == N, f"log holds {total} records")
c.close()
print("idempotent lz4 ok")
