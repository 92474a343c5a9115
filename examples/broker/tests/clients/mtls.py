"""mTLS: the listener requires client certificates of its CA; a certificate's subject is the
principal (`User:CN=alice`, Kafka's default mapping of the RFC 2253 name), and ACLs on it
decide: admin (a super user by certificate) grants alice a topic; alice produces and
consumes (confluent-kafka and kafka-python), bob is denied with TOPIC_AUTHORIZATION_FAILED; a
certificate from another CA, or none, is refused at the handshake."""
import os
import sys

from confluent_kafka import KafkaError, KafkaException, Producer
from confluent_kafka.admin import (AclBinding, AclBindingFilter, AclOperation, AclPermissionType,
                                   AdminClient, NewTopic, ResourcePatternType, ResourceType)
from kafka import KafkaConsumer, TopicPartition as KpTp

from common import bootstrap, check, confluent_consumer, consume_all

b = bootstrap()
PKI = sys.argv[2]
CA = os.path.join(PKI, "ca.pem")
TOPIC = "mtls-orders"
ALICE = "User:CN=alice"


def cert(name):
    return {"bootstrap.servers": b, "security.protocol": "SSL", "ssl.ca.location": CA,
            "ssl.certificate.location": os.path.join(PKI, f"{name}.pem"),
            "ssl.key.location": os.path.join(PKI, f"{name}-key.pem")}


def refused(conf):
    admin = AdminClient(conf)
    try:
        admin.list_topics(timeout=10)
    except KafkaException:
        return True
    return False


admin = AdminClient(cert("admin"))
admin.create_topics([NewTopic(TOPIC, 1, 1)])[TOPIC].result(30)
grants = [AclBinding(ResourceType.TOPIC, TOPIC, ResourcePatternType.LITERAL, ALICE, "*", op,
                     AclPermissionType.ALLOW) for op in (AclOperation.WRITE, AclOperation.READ)]
grants.append(AclBinding(ResourceType.GROUP, "mtls-", ResourcePatternType.PREFIXED, ALICE, "*",
                         AclOperation.READ, AclPermissionType.ALLOW))
for f in admin.create_acls(grants, request_timeout=30).values():
    f.result(30)
everything = AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, None, None,
                              AclOperation.ANY, AclPermissionType.ANY)
principals = {a.principal for a in admin.describe_acls(everything, request_timeout=30).result(30)}
check(principals == {ALICE}, f"ACL principals {principals}")

p = Producer({**cert("alice"), "acks": "all"})
errors = []
for i in range(5):
    p.produce(TOPIC, value=f"m{i}".encode(), on_delivery=lambda err, msg: err and errors.append(err))
check(p.flush(60) == 0 and not errors, f"alice produce over mTLS: {errors}")
c = confluent_consumer(b, TOPIC, 1, **{**cert("alice"), "group.id": "mtls-readers"})
got = [m.value().decode() for m in consume_all(c, 5, deadline_s=60)]
check(got == [f"m{i}" for i in range(5)], f"alice consumed {got}")
c.close()

kp = KafkaConsumer(bootstrap_servers=b, security_protocol="SSL", ssl_cafile=CA,
                   ssl_certfile=os.path.join(PKI, "alice.pem"), ssl_keyfile=os.path.join(PKI, "alice-key.pem"),
                   auto_offset_reset="earliest", enable_auto_commit=False, group_id=None,
                   consumer_timeout_ms=30000)
kp.assign([KpTp(TOPIC, 0)])
got = [r.value.decode() for _, r in zip(range(5), kp)]
kp.close()
check(got == [f"m{i}" for i in range(5)], f"kafka-python alice over mTLS: {got}")

p = Producer({**cert("bob"), "acks": "all", "message.timeout.ms": 20000})
errors = []
p.produce(TOPIC, value=b"bob", on_delivery=lambda err, msg: err and errors.append(err.code()))
p.flush(30)
check(errors == [KafkaError.TOPIC_AUTHORIZATION_FAILED], f"bob produce: {errors}")

# mallory's certificate says CN=alice but another CA signed it; a client without one fails too.
check(refused(cert("mallory")), "a certificate of another CA was accepted")
check(refused({"bootstrap.servers": b, "security.protocol": "SSL", "ssl.ca.location": CA}),
      "a client without a certificate was served")
print("mtls ok")
