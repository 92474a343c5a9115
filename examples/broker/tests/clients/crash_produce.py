"""Produces with acks=all and writes every acknowledged (partition, offset, value) to a file."""
import json
import sys

from confluent_kafka import Producer

from common import bootstrap, check, create_topic

b, out_path = bootstrap(), sys.argv[2]
TOPIC, PARTITIONS, N = "crash", 2, 5000
create_topic(b, TOPIC, PARTITIONS)
p = Producer({"bootstrap.servers": b, "enable.idempotence": True, "acks": "all", "linger.ms": 2})
acked, errors = [], []


def delivered(err, msg):
    if err:
        errors.append(str(err))
    else:
        acked.append([msg.partition(), msg.offset(), msg.value().decode()])


for i in range(N):
    p.produce(TOPIC, key=str(i % 13), value=f"m{i}", on_delivery=delivered)
    if i % 500 == 0:
        p.poll(0)
check(p.flush(120) == 0, "all delivered")
check(not errors, f"errors: {errors[:5]}")
with open(out_path, "w") as f:
    json.dump(acked, f)
print(f"ACKED {len(acked)}")
