"""Metadata and topic administration through confluent-kafka's and kafka-python's admin clients."""
from confluent_kafka import KafkaException, KafkaError
from confluent_kafka.admin import (AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, NewPartitions,
                                  NewTopic, ResourceType)
from kafka.admin import KafkaAdminClient, NewTopic as KpNewTopic

from common import bootstrap, check, confluent_consumer, consume_all

b = bootstrap()
admin = AdminClient({"bootstrap.servers": b})


def error_of(future):
    try:
        future.result(30)
    except KafkaException as e:
        return e.args[0].code()
    return None


fs = admin.create_topics([NewTopic("alpha", 3, 1), NewTopic("beta", 1, 1, config={"retention.ms": "1000"})])
for name, f in fs.items():
    check(error_of(f) is None, f"create {name}")
check(error_of(admin.create_topics([NewTopic("alpha", 1, 1)])["alpha"]) == KafkaError.TOPIC_ALREADY_EXISTS, "duplicate topic refused")
check(error_of(admin.create_topics([NewTopic("gamma", 1, 3)])["gamma"]) == KafkaError.INVALID_REPLICATION_FACTOR, "replication factor 3 refused")
check(error_of(admin.create_topics([NewTopic("bad name!", 1, 1)])["bad name!"]) == KafkaError.TOPIC_EXCEPTION, "invalid name refused")
check(error_of(admin.create_topics([NewTopic("delta", 1, 1, config={"no.such.config": "1"})])["delta"]) == KafkaError.INVALID_CONFIG, "unknown config refused")

md = admin.list_topics(timeout=30)
check(len(md.topics["alpha"].partitions) == 3, "alpha has 3 partitions")
check(len(md.topics["beta"].partitions) == 1, "beta has 1 partition")
check(list(md.brokers) == [1], f"one broker, id 1: {md.brokers}")
check(all(p.leader == 1 and p.replicas == [1] and p.isrs == [1] for p in md.topics["alpha"].partitions.values()), "leader 1 everywhere")

check(error_of(admin.create_partitions([NewPartitions("alpha", 5)])["alpha"]) is None, "alpha to 5 partitions")
check(len(admin.list_topics(timeout=30).topics["alpha"].partitions) == 5, "alpha has 5 partitions")
check(error_of(admin.create_partitions([NewPartitions("alpha", 2)])["alpha"]) == KafkaError.INVALID_PARTITIONS, "shrinking refused")

res = ConfigResource(ResourceType.TOPIC, "beta")
configs = admin.describe_configs([res])[res].result(30)
check(configs["retention.ms"].value == "1000", f"retention.ms override: {configs['retention.ms']}")
check(not configs["retention.ms"].is_default, "retention.ms is an override")
check(configs["cleanup.policy"].value == "delete" and configs["cleanup.policy"].is_default, "cleanup.policy default")
broker_res = ConfigResource(ResourceType.BROKER, "1")
broker_configs = admin.describe_configs([broker_res])[broker_res].result(30)
check(broker_configs["num.partitions"].value == "1", "broker num.partitions")

# IncrementalAlterConfigs: SET and APPEND change only their keys; a bad value changes nothing.
alpha = ConfigResource(ResourceType.TOPIC, "alpha", incremental_configs=[
    ConfigEntry("retention.ms", "3600000", incremental_operation=AlterConfigOpType.SET),
    ConfigEntry("cleanup.policy", "compact", incremental_operation=AlterConfigOpType.APPEND),
])
check(error_of(admin.incremental_alter_configs([alpha])[alpha]) is None, "incremental alter alpha")
bad = ConfigResource(ResourceType.TOPIC, "alpha", incremental_configs=[
    ConfigEntry("retention.ms", "1", incremental_operation=AlterConfigOpType.SET),
    ConfigEntry("segment.bytes", "lots", incremental_operation=AlterConfigOpType.SET),
])
check(error_of(admin.incremental_alter_configs([bad])[bad]) == KafkaError.INVALID_CONFIG, "bad value refused")
# Kafka's configs without effect on this broker (librdkafka's 0092 sets message.format.version)
# are accepted, kept and described; a value Kafka would refuse is refused.
old_format = ConfigResource(ResourceType.TOPIC, "alpha", incremental_configs=[
    ConfigEntry("message.format.version", "0.10.0.0", incremental_operation=AlterConfigOpType.SET),
])
check(error_of(admin.incremental_alter_configs([old_format])[old_format]) is None, "message.format.version accepted")
bad_format = ConfigResource(ResourceType.TOPIC, "alpha", incremental_configs=[
    ConfigEntry("message.format.version", "nonsense", incremental_operation=AlterConfigOpType.SET),
])
check(error_of(admin.incremental_alter_configs([bad_format])[bad_format]) == KafkaError.INVALID_CONFIG,
      "bad message.format.version refused")
# The configs that shape the log's files and flushes are wired to it; Kafka's "never" is
# Long.MAX_VALUE; max.compaction.lag.ms below min.compaction.lag.ms is a conflict.
wired = {"segment.index.bytes": "65536", "index.interval.bytes": "0", "flush.messages": "1",
         "flush.ms": "9223372036854775807", "max.compaction.lag.ms": "60000"}
wired_res = ConfigResource(ResourceType.TOPIC, "alpha", incremental_configs=[
    ConfigEntry(k, v, incremental_operation=AlterConfigOpType.SET) for k, v in wired.items()])
check(error_of(admin.incremental_alter_configs([wired_res])[wired_res]) is None, "wired log configs set")
conflict = ConfigResource(ResourceType.TOPIC, "alpha", incremental_configs=[
    ConfigEntry("min.compaction.lag.ms", "120000", incremental_operation=AlterConfigOpType.SET)])
check(error_of(admin.incremental_alter_configs([conflict])[conflict]) == KafkaError.INVALID_CONFIG,
      "min.compaction.lag.ms above max.compaction.lag.ms refused")
res_alpha = ConfigResource(ResourceType.TOPIC, "alpha")
configs = admin.describe_configs([res_alpha])[res_alpha].result(30)
check(all(configs[k].value == v and not configs[k].is_default for k, v in wired.items()),
      f"wired configs described: {[configs[k] for k in wired]}")
check(configs["min.compaction.lag.ms"].value == "0", "the refused conflict changed nothing")
check(configs["message.format.version"].value == "0.10.0.0", f"alpha format: {configs['message.format.version']}")
# Every described value is a valid value (librdkafka's 0092 sends them back with AlterConfigs).
check(all(c.value not in (None, "") for c in configs.values()), f"empty described values: {configs}")
check(configs["retention.ms"].value == "3600000", f"alpha retention.ms: {configs['retention.ms']}")
check(set(configs["cleanup.policy"].value.split(",")) == {"compact", "delete"}, f"alpha policy: {configs['cleanup.policy']}")

# DeleteRecords: the log start moves; consumers start there.
from confluent_kafka import Producer, TopicPartition
p = Producer({"bootstrap.servers": b})
failures = []
for i in range(10):
    # alpha is compacted now: records need keys.
    p.produce("alpha", key=str(i).encode(), value=str(i).encode(), partition=0,
              on_delivery=lambda err, msg: err and failures.append(err))
check(p.flush(30) == 0 and not failures, f"produce to alpha: {failures}")
deleted = admin.delete_records([TopicPartition("alpha", 0, 6)])
low = list(deleted.values())[0].result(30).low_watermark
check(low == 6, f"low watermark after DeleteRecords: {low}")
consumer = confluent_consumer(b, "alpha", 1)
got = [m.value().decode() for m in consume_all(consumer, 4, deadline_s=60)]
check(got == ["6", "7", "8", "9"], f"after DeleteRecords: {got}")
lo, hi = consumer.get_watermark_offsets(TopicPartition("alpha", 0), timeout=30)
check((lo, hi) == (6, 10), f"watermarks {lo} {hi}")
consumer.close()

# librdkafka's 0011: one batch with keyless records for compacted alpha. The keyless ones fail
# with INVALID_RECORD (Produce v8+ record_errors names them), the rest of the batch with
# _INVALID_DIFFERENT_RECORD; nothing of it is stored.
batcher = Producer({"bootstrap.servers": b, "linger.ms": 2000, "batch.num.messages": 10})
results = []
for i in range(10):
    batcher.produce("alpha", key=None if i % 5 == 0 else b"k", value=b"v", partition=0,
                    on_delivery=lambda err, msg: results.append(err))
check(batcher.flush(30) == 0 and len(results) == 10, f"batch delivered: {results}")
invalid = [e for e in results if e is not None and e.code() == KafkaError.INVALID_RECORD]
check(len(invalid) == 2 and all(e is not None for e in results), f"per-record errors: {results}")
watcher = confluent_consumer(b, "alpha", 1)
lo, hi = watcher.get_watermark_offsets(TopicPartition("alpha", 0), timeout=30)
watcher.close()
check(hi == 10, f"refused batch not stored: high watermark {hi}")

# librdkafka's 0030: OffsetCommit to a topic that does not exist answers
# UNKNOWN_TOPIC_OR_PARTITION for each of its partitions.
from confluent_kafka import Consumer
committer = Consumer({"bootstrap.servers": b, "group.id": "commit-unknown"})
try:
    committed = committer.commit(offsets=[TopicPartition("no-such-topic", 0, 123),
                                          TopicPartition("no-such-topic", 1, 456)], asynchronous=False)
    codes = [tp.error.code() if tp.error else None for tp in committed]
except KafkaException as e:
    codes = [e.args[0].code()]
check(codes and all(c == KafkaError.UNKNOWN_TOPIC_OR_PART for c in codes), f"commit to unknown topic: {codes}")
committer.close()
check("no-such-topic" not in admin.list_topics(timeout=30).topics, "commit created no topic")

cluster = admin.describe_cluster(request_timeout=30).result(30)
check(len(cluster.nodes) == 1 and cluster.controller.id == 1 and len(cluster.cluster_id) == 22, f"cluster: {cluster}")

check(error_of(admin.delete_topics(["beta"])["beta"]) is None, "delete beta")
check("beta" not in admin.list_topics(timeout=30).topics, "beta gone")
check(error_of(admin.delete_topics(["beta"])["beta"]) == KafkaError.UNKNOWN_TOPIC_OR_PART, "deleting a missing topic")

kp = KafkaAdminClient(bootstrap_servers=b, request_timeout_ms=30000)
kp.create_topics([KpNewTopic("epsilon", 2, 1)])
check({"alpha", "epsilon"} <= set(kp.list_topics()), "kafka-python sees the topics")
kp.delete_topics(["epsilon"])
kp.close()
print("admin ok")
