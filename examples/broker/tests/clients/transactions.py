"""Transactions: one aborted between two committed; read_committed and read_uncommitted views."""
import time

from confluent_kafka import Producer, TopicPartition
from kafka import KafkaConsumer, TopicPartition as KpTp

from common import bootstrap, check, confluent_consumer, consume_all, create_topic

b = bootstrap()
TOPIC = "txn"
create_topic(b, TOPIC, 1)
p = Producer({"bootstrap.servers": b, "transactional.id": "tx-1", "linger.ms": 1})
p.init_transactions(60)
for name, count, commit in (("first", 10, True), ("aborted", 10, False), ("second", 5, True)):
    p.begin_transaction()
    for i in range(count):
        p.produce(TOPIC, key=name.encode(), value=f"{name}-{i}".encode())
    p.flush(60)
    if commit:
        p.commit_transaction(60)
    else:
        p.abort_transaction(60)

committed = [f"first-{i}" for i in range(10)] + [f"second-{i}" for i in range(5)]
everything = [f"first-{i}" for i in range(10)] + [f"aborted-{i}" for i in range(10)] + committed[10:]

rc = confluent_consumer(b, TOPIC, 1, **{"isolation.level": "read_committed"})
got = [m.value().decode() for m in consume_all(rc, len(committed), deadline_s=60)]
check(got == committed, f"read_committed: {got}")
low, high = rc.get_watermark_offsets(TopicPartition(TOPIC, 0), timeout=30)
# 25 records and 3 markers.
check(high == 28, f"high watermark {high}")
rc.close()

ru = confluent_consumer(b, TOPIC, 1, **{"isolation.level": "read_uncommitted"})
got = [m.value().decode() for m in consume_all(ru, len(everything), deadline_s=60)]
check(got == everything, f"read_uncommitted: {got}")
ru.close()

kp = KafkaConsumer(bootstrap_servers=b, group_id=None, enable_auto_commit=False,
                   isolation_level="read_committed", auto_offset_reset="earliest")
kp.assign([KpTp(TOPIC, 0)])
kp.seek_to_beginning()
got, deadline = [], time.monotonic() + 60
while len(got) < len(committed) and time.monotonic() < deadline:
    for recs in kp.poll(timeout_ms=1000).values():
        got.extend(r.value.decode() for r in recs)
kp.close()
check(got == committed, f"kafka-python read_committed: {got}")
print("transactions ok")
