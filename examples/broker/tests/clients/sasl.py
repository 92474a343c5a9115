"""SASL: PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512 with the right password are served
(confluent-kafka and kafka-python); a wrong password, an unknown user and a client that does
not authenticate get nothing."""
from confluent_kafka import KafkaException, Producer
from confluent_kafka.admin import AdminClient
from kafka import KafkaConsumer, TopicPartition as KpTp

from common import bootstrap, check, confluent_consumer, consume_all

b = bootstrap()


def sasl(mechanism, user="alice", password="alice-secret"):
    return {"security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": mechanism,
            "sasl.username": user, "sasl.password": password}


def refused(conf, timeout=10):
    try:
        AdminClient({"bootstrap.servers": b, **conf}).list_topics(timeout=timeout)
    except KafkaException:
        return True
    return False


for mechanism in ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"):
    topic = f"sasl-{mechanism.lower()}"
    p = Producer({"bootstrap.servers": b, "acks": "all", **sasl(mechanism)})
    errors = []
    for i in range(5):
        p.produce(topic, value=f"{mechanism}-{i}".encode(), on_delivery=lambda err, msg: err and errors.append(err))
    check(p.flush(60) == 0 and not errors, f"{mechanism}: produce {errors}")
    c = confluent_consumer(b, topic, 1, **sasl(mechanism))
    got = [m.value().decode() for m in consume_all(c, 5, deadline_s=60)]
    check(got == [f"{mechanism}-{i}" for i in range(5)], f"{mechanism}: consumed {got}")
    c.close()
    check(refused(sasl(mechanism, password="wrong")), f"{mechanism}: a wrong password was served")
    check(refused(sasl(mechanism, user="mallory")), f"{mechanism}: an unknown user was served")

for mechanism in ("PLAIN", "SCRAM-SHA-256"):
    kp = KafkaConsumer(bootstrap_servers=b, security_protocol="SASL_PLAINTEXT", sasl_mechanism=mechanism,
                       sasl_plain_username="alice", sasl_plain_password="alice-secret",
                       auto_offset_reset="earliest", enable_auto_commit=False, group_id=None,
                       consumer_timeout_ms=30000)
    kp.assign([KpTp("sasl-plain", 0)])
    got = [r.value.decode() for _, r in zip(range(5), kp)]
    kp.close()
    check(got == [f"PLAIN-{i}" for i in range(5)], f"kafka-python {mechanism}: {got}")

check(refused({}, timeout=5), "a client without SASL was served")
print("sasl ok")
