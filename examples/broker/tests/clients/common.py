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


def produce_values(bootstrap_servers, topic, values, partition=None, **extra):
    """Produces `values` (strings) with acks=all and checks every one was acknowledged."""
    from confluent_kafka import Producer
    conf = {"bootstrap.servers": bootstrap_servers, "acks": "all", "linger.ms": 5}
    conf.update(extra)
    p = Producer(conf)
    errors = []
    for v in values:
        kwargs = {} if partition is None else {"partition": partition}
        p.produce(topic, key=v.encode(), value=v.encode(),
                  on_delivery=lambda err, msg: err and errors.append(err), **kwargs)
    check(p.flush(60) == 0 and not errors, f"produce to {topic}: {errors[:3]}")


def group_consumer(bootstrap_servers, group, **extra):
    """A confluent-kafka consumer in `group`, committing only when told."""
    from confluent_kafka import Consumer
    conf = {
        "bootstrap.servers": bootstrap_servers,
        "group.id": group,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "session.timeout.ms": 10000,
        "heartbeat.interval.ms": 500,
    }
    conf.update(extra)
    return Consumer(conf)


def poll_until(consumers, done, deadline_s=90, on_message=None):
    """Polls every consumer in turn (their rebalance callbacks run in poll) until `done()`."""
    deadline = time.monotonic() + deadline_s
    while not done():
        check(time.monotonic() < deadline, "condition not reached before the deadline")
        for c in consumers:
            m = c.poll(0.2)
            if m is None:
                continue
            check(m.error() is None, f"consumer error: {m.error()}")
            if on_message:
                on_message(c, m)
