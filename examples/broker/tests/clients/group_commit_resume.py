"""Commit halfway and resume in the same group: a confluent consumer commits after half the
messages and leaves; a second confluent consumer, then a kafka-python one, resume from the
committed offsets. The group is then listed, described and deleted through the admin API."""
from confluent_kafka import TopicPartition, ConsumerGroupTopicPartitions
from confluent_kafka.admin import AdminClient
from kafka import KafkaConsumer, TopicPartition as KpTp

from common import bootstrap, check, create_topic, group_consumer, poll_until, produce_values

b = bootstrap()
TOPIC, GROUP, N = "resume", "resumers", 1000
create_topic(b, TOPIC, 2)
produce_values(b, TOPIC, [f"m{i}" for i in range(N)])

first = group_consumer(b, GROUP)
first.subscribe([TOPIC])
got1 = []
poll_until([first], lambda: len(got1) >= N // 2, on_message=lambda c, m: got1.append(m.value().decode()))
committed = first.commit(asynchronous=False)
check(all(tp.error is None for tp in committed), f"commit: {committed}")
positions = {tp.partition: tp.offset for tp in committed}
# A partition the consumer has read nothing from yet has no position to commit (-1001).
check(sum(o for o in positions.values() if o >= 0) == len(got1), f"committed {positions} after {len(got1)} messages")
first.close()

# The committed offsets as the coordinator stored them (OffsetFetch).
admin = AdminClient({"bootstrap.servers": b})
req = ConsumerGroupTopicPartitions(GROUP, [TopicPartition(TOPIC, 0), TopicPartition(TOPIC, 1)])
fetched = admin.list_consumer_group_offsets([req])[GROUP].result(30)
check({tp.partition: tp.offset for tp in fetched.topic_partitions} == positions, f"fetched {fetched}")

second = group_consumer(b, GROUP)
second.subscribe([TOPIC])
got2 = []
poll_until([second], lambda: len(got1) + len(got2) >= N, on_message=lambda c, m: got2.append(m.value().decode()))
check(sorted(got1 + got2) == sorted(f"m{i}" for i in range(N)), "every message once across the two consumers")
second.commit(asynchronous=False)
second.close()

# kafka-python in the same group: everything is committed, so nothing comes back; its view
# of the committed offsets is the log end.
kp = KafkaConsumer(bootstrap_servers=b, group_id=GROUP, enable_auto_commit=False,
                   auto_offset_reset="earliest", consumer_timeout_ms=3000)
committed_kp = {p: kp.committed(KpTp(TOPIC, p)) for p in (0, 1)}
check(sum(committed_kp.values()) == N, f"kafka-python sees commits {committed_kp}")
kp.close()

groups = admin.list_consumer_groups(request_timeout=30).result(30)
check(GROUP in [g.group_id for g in groups.valid], f"listed: {groups.valid}")
desc = admin.describe_consumer_groups([GROUP])[GROUP].result(30)
check(str(desc.state).endswith("EMPTY") and not desc.members, f"described: {desc}")
admin.delete_consumer_groups([GROUP], request_timeout=30)[GROUP].result(30)
check(GROUP not in [g.group_id for g in admin.list_consumer_groups(request_timeout=30).result(30).valid], "deleted")
print("group commit and resume ok")
