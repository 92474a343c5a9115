"""SASL_SSL: SCRAM and PLAIN over the TLS listener (confluent-kafka and kafka-python); a wrong
password is refused."""
import sys

from confluent_kafka import KafkaException, Producer
from confluent_kafka.admin import AdminClient
from kafka import KafkaConsumer, TopicPartition as KpTp

from common import bootstrap, check, confluent_consumer, consume_all

b = bootstrap()
CA = sys.argv[2]


def sasl_ssl(mechanism, password="alice-secret"):
    return {"bootstrap.servers": b, "security.protocol": "SASL_SSL", "ssl.ca.location": CA,
            "sasl.mechanism": mechanism, "sasl.username": "alice", "sasl.password": password}


for mechanism in ("SCRAM-SHA-512", "PLAIN"):
    topic = f"sasl-ssl-{mechanism.lower()}"
    p = Producer({**sasl_ssl(mechanism), "acks": "all"})
    errors = []
    for i in range(5):
        p.produce(topic, value=f"{mechanism}-{i}".encode(), on_delivery=lambda err, msg: err and errors.append(err))
    check(p.flush(60) == 0 and not errors, f"{mechanism}: produce {errors}")
    c = confluent_consumer(b, topic, 1, **sasl_ssl(mechanism))
    got = [m.value().decode() for m in consume_all(c, 5, deadline_s=60)]
    check(got == [f"{mechanism}-{i}" for i in range(5)], f"{mechanism}: consumed {got}")
    c.close()
    wrong = AdminClient(sasl_ssl(mechanism, password="wrong"))
    try:
        wrong.list_topics(timeout=10)
        check(False, f"{mechanism}: a wrong password was served over TLS")
    except KafkaException:
        pass

kp = KafkaConsumer(bootstrap_servers=b, security_protocol="SASL_SSL", ssl_cafile=CA,
                   sasl_mechanism="SCRAM-SHA-256", sasl_plain_username="alice",
                   sasl_plain_password="alice-secret", auto_offset_reset="earliest",
                   enable_auto_commit=False, group_id=None, consumer_timeout_ms=30000)
kp.assign([KpTp("sasl-ssl-plain", 0)])
got = [r.value.decode() for _, r in zip(range(5), kp)]
kp.close()
check(got == [f"PLAIN-{i}" for i in range(5)], f"kafka-python SASL_SSL SCRAM-SHA-256: {got}")
print("sasl_ssl ok")
