"""Helpers shared by the scenario scripts: every wait is bounded by a deadline."""
import sys
import time


def bootstrap():
    if len(sys.argv) < 2:
        sys.exit("usage: SCRIPT HOST:PORT [ARGS...]")
    return sys.argv[1]


def check(cond, what):
    if not cond:
        raise AssertionError(what)


def consume_all(consumer, expected, deadline_s=120):
    """Polls a confluent-kafka consumer until `expected` messages arrived or the deadline."""
    out = []
    deadline = time.monotonic() + deadline_s
    while len(out) < expected:
        check(time.monotonic() < deadline, f"only {len(out)} of {expected} messages before the deadline")
        for m in consumer.consume(num_messages=1000, timeout=1.0):
            check(m.error() is None, f"consumer error: {m.error()}")
            out.append(m)
    return out


def confluent_consumer(bootstrap_servers, topic, partitions, **extra):
    from confluent_kafka import Consumer, TopicPartition, OFFSET_BEGINNING
    conf = {
        "bootstrap.servers": bootstrap_servers,
        # assign() without a group: no coordinator is involved.
        "group.id": "unused",
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
    }
    conf.update(extra)
    c = Consumer(conf)
    c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
    return c


def create_topic(bootstrap_servers, name, partitions, config=None):
    from confluent_kafka.admin import AdminClient, NewTopic
    admin = AdminClient({"bootstrap.servers": bootstrap_servers})
    fs = admin.create_topics([NewTopic(name, partitions, 1, config=config or {})], request_timeout=30)
    fs[name].result(30)
