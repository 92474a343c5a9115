"""TLS listener: clients trusting the broker's CA produce and consume (confluent-kafka and
kafka-python); a client trusting another CA is refused and gets no data."""
import sys
import time

from confluent_kafka import KafkaException, Producer
from confluent_kafka.admin import AdminClient
from kafka import KafkaConsumer, TopicPartition as KpTp

from common import bootstrap, check, confluent_consumer, consume_all

b = bootstrap()
GOOD_CA, WRONG_CA = sys.argv[2], sys.argv[3]
ssl = {"security.protocol": "SSL", "ssl.ca.location": GOOD_CA}

p = Producer({"bootstrap.servers": b, "acks": "all", **ssl})
errors = []
for i in range(10):
    p.produce("secure", value=f"s{i}".encode(), on_delivery=lambda err, msg: err and errors.append(err))
check(p.flush(60) == 0 and not errors, f"produce over TLS: {errors}")
c = confluent_consumer(b, "secure", 1, **ssl)
got = [m.value().decode() for m in consume_all(c, 10, deadline_s=60)]
check(got == [f"s{i}" for i in range(10)], f"consumed over TLS: {got}")
c.close()

kp = KafkaConsumer(bootstrap_servers=b, security_protocol="SSL", ssl_cafile=GOOD_CA,
                   auto_offset_reset="earliest", enable_auto_commit=False, group_id=None)
kp.assign([KpTp("secure", 0)])
got, deadline = [], time.monotonic() + 60
while len(got) < 10 and time.monotonic() < deadline:
    for recs in kp.poll(timeout_ms=1000).values():
        got.extend(r.value.decode() for r in recs)
kp.close()
check(got == [f"s{i}" for i in range(10)], f"kafka-python over TLS: {got}")

# The wrong CA: the handshake fails, the client sees no metadata.
wrong = AdminClient({"bootstrap.servers": b, "security.protocol": "SSL", "ssl.ca.location": WRONG_CA})
try:
    md = wrong.list_topics(timeout=10)
    refused = False
except KafkaException:
    refused = True
check(refused, "a client trusting another CA was served")
# Plaintext on the TLS port is not served either.
plain = AdminClient({"bootstrap.servers": b})
try:
    plain.list_topics(timeout=5)
    refused = False
except KafkaException:
    refused = True
check(refused, "a plaintext client was served on the TLS listener")
print("tls ok")
