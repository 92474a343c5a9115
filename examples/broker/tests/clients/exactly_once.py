"""Exactly-once consume-transform-produce: a transactional producer turns every input record
into one output record and commits the consumer's offsets in the same transaction
(AddOffsetsToTxn, TxnOffsetCommit). One transaction is aborted and redone from the
committed offsets; read_committed, the output holds each input once, and the group's
committed offsets are the input's end."""
from confluent_kafka import Producer, TopicPartition
from confluent_kafka import ConsumerGroupTopicPartitions
from confluent_kafka.admin import AdminClient

from common import (bootstrap, check, confluent_consumer, consume_all, create_topic, group_consumer,
                    poll_until, produce_values)

b = bootstrap()
IN, OUT, GROUP, N = "eos-in", "eos-out", "eos-group", 300
create_topic(b, IN, 2)
create_topic(b, OUT, 2)
produce_values(b, IN, [f"x{i}" for i in range(N)])

consumer = group_consumer(b, GROUP, **{"isolation.level": "read_committed"})
consumer.subscribe([IN])
producer = Producer({"bootstrap.servers": b, "transactional.id": "eos-1", "linger.ms": 5})
producer.init_transactions(60)

done, aborted_once = set(), [False]
def transform(batch):
    producer.begin_transaction()
    for m in batch:
        producer.produce(OUT, key=m.key(), value=m.value().decode().upper().encode())
    producer.send_offsets_to_transaction(consumer.position(consumer.assignment()),
                                         consumer.consumer_group_metadata(), 60)
    if not aborted_once[0] and len(done) > N // 3:
        # Abort one transaction: its output and its offsets vanish; the consumer goes back
        # to the committed offsets and does the same records again.
        producer.abort_transaction(60)
        aborted_once[0] = True
        committed = consumer.committed(consumer.assignment(), timeout=30)
        for tp in committed:
            consumer.seek(TopicPartition(tp.topic, tp.partition, tp.offset if tp.offset >= 0 else 0))
        return
    producer.commit_transaction(60)
    done.update(m.value().decode() for m in batch)

batch = []
def collect(c, m):
    batch.append(m)
    if len(batch) >= 25:
        transform(batch[:])
        batch.clear()
poll_until([consumer], lambda: len(done) + len(batch) >= N and aborted_once[0], deadline_s=150, on_message=collect)
if batch:
    transform(batch[:])
check(aborted_once[0], "one transaction was aborted")

out = confluent_consumer(b, OUT, 2, **{"isolation.level": "read_committed"})
got = [m.value().decode() for m in consume_all(out, N, deadline_s=60)]
check(sorted(got) == sorted(f"X{i}" for i in range(N)), f"each output once: {len(got)} records, {len(set(got))} distinct")
out.close()

admin = AdminClient({"bootstrap.servers": b})
req = ConsumerGroupTopicPartitions(GROUP, [TopicPartition(IN, 0), TopicPartition(IN, 1)])
offsets = admin.list_consumer_group_offsets([req])[GROUP].result(30).topic_partitions
check(sum(tp.offset for tp in offsets) == N, f"committed offsets {offsets}")
consumer.close()
print("exactly once ok")
