"""ACLs: a super user (admin) grants alice WRITE and READ on one topic and READ on one group
through the Admin API; alice produces and consumes in the group (confluent-kafka and
kafka-python); bob, authenticated but granted nothing, is denied with Kafka's
TOPIC_AUTHORIZATION_FAILED / GROUP_AUTHORIZATION_FAILED and gets no data; only admin may
read or change the ACLs; deleting alice's group ACL denies her the group."""
import time

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import (AclBinding, AclBindingFilter, AclOperation, AclPermissionType,
                                   AdminClient, NewTopic, ResourcePatternType, ResourceType)
from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition as KpTp
from kafka import admin as kp_acl
from kafka.errors import ClusterAuthorizationFailedError

from common import bootstrap, check, consume_all

b = bootstrap()
TOPIC, GROUP = "acl-orders", "acl-group"


def user(name):
    return {"bootstrap.servers": b, "security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "PLAIN",
            "sasl.username": name, "sasl.password": f"{name}-secret"}


admin = AdminClient(user("admin"))
admin.create_topics([NewTopic(TOPIC, 1, 1), NewTopic("acl-secret", 1, 1)])[TOPIC].result(30)


def allow(rt, name, principal, op):
    return AclBinding(rt, name, ResourcePatternType.LITERAL, principal, "*", op, AclPermissionType.ALLOW)


grants = [
    allow(ResourceType.TOPIC, TOPIC, "User:alice", AclOperation.WRITE),
    allow(ResourceType.TOPIC, TOPIC, "User:alice", AclOperation.READ),
    allow(ResourceType.GROUP, GROUP, "User:alice", AclOperation.READ),
    # A prefixed grant: alice may describe every topic named acl-*.
    AclBinding(ResourceType.TOPIC, "acl-", ResourcePatternType.PREFIXED, "User:alice", "*",
               AclOperation.DESCRIBE, AclPermissionType.ALLOW),
]
for f in admin.create_acls(grants, request_timeout=30).values():
    f.result(30)
everything = AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, None, None,
                              AclOperation.ANY, AclPermissionType.ANY)
listed = admin.describe_acls(everything, request_timeout=30).result(30)
check(len(listed) == 4, f"describe_acls as admin: {listed}")

# bob may neither read nor change ACLs: CLUSTER_AUTHORIZATION_FAILED (kafka-python raises it;
# confluent-kafka 2.16 turns a DescribeAcls error into an empty list).
bob_admin = KafkaAdminClient(bootstrap_servers=b, security_protocol="SASL_PLAINTEXT", sasl_mechanism="PLAIN",
                             sasl_plain_username="bob", sasl_plain_password="bob-secret")
kp_any = kp_acl.ACLFilter(principal=None, host="*", operation=kp_acl.ACLOperation.ANY,
                          permission_type=kp_acl.ACLPermissionType.ANY,
                          resource_pattern=kp_acl.ResourcePatternFilter(
                              kp_acl.ResourceType.ANY, None, kp_acl.ACLResourcePatternType.ANY))
try:
    r = bob_admin.describe_acls(kp_any)
    check(False, f"bob described the ACLs: {r}")
except ClusterAuthorizationFailedError:
    pass
bob_confluent = AdminClient(user("bob"))
check(bob_confluent.describe_acls(everything, request_timeout=30).result(30) == [],
      "confluent-kafka showed bob ACLs")
bob_grant = kp_acl.ACL(principal="User:bob", host="*", operation=kp_acl.ACLOperation.ALL,
                       permission_type=kp_acl.ACLPermissionType.ALLOW,
                       resource_pattern=kp_acl.ResourcePattern(kp_acl.ResourceType.TOPIC, TOPIC))
created = bob_admin.create_acls([bob_grant])
check(not created["succeeded"] and len(created["failed"]) == 1
      and "ClusterAuthorizationFailed" in repr(created["failed"]), f"bob create_acls: {created}")
bob_admin.close()

# alice: idempotent produce (WRITE on a topic stands in for IDEMPOTENT_WRITE), group consume.
p = Producer({**user("alice"), "acks": "all", "enable.idempotence": True})
errors = []
for i in range(10):
    p.produce(TOPIC, key=b"k", value=f"a{i}".encode(), on_delivery=lambda err, msg: err and errors.append(err))
check(p.flush(60) == 0 and not errors, f"alice produce: {errors}")
c = Consumer({**user("alice"), "group.id": GROUP, "auto.offset.reset": "earliest",
              "enable.auto.commit": False})
c.subscribe([TOPIC])
got = [m.value().decode() for m in consume_all(c, 10, deadline_s=60)]
check(got == [f"a{i}" for i in range(10)], f"alice consumed {got}")
c.commit(asynchronous=False)
c.close()
alice_admin = AdminClient(user("alice"))
md = alice_admin.list_topics(timeout=30)
check(set(md.topics) == {TOPIC, "acl-secret"}, f"alice sees {sorted(md.topics)}")

kp = KafkaConsumer(bootstrap_servers=b, security_protocol="SASL_PLAINTEXT", sasl_mechanism="PLAIN",
                   sasl_plain_username="alice", sasl_plain_password="alice-secret",
                   auto_offset_reset="earliest", enable_auto_commit=False, group_id=None,
                   consumer_timeout_ms=30000)
kp.assign([KpTp(TOPIC, 0)])
got = [r.value.decode() for _, r in zip(range(10), kp)]
kp.close()
check(got == [f"a{i}" for i in range(10)], f"kafka-python alice consumed {got}")

# bob: every produce is refused with TOPIC_AUTHORIZATION_FAILED, nothing is written.
p = Producer({**user("bob"), "acks": "all", "message.timeout.ms": 20000})
errors = []
for i in range(3):
    p.produce(TOPIC, value=f"b{i}".encode(), on_delivery=lambda err, msg: err and errors.append(err.code()))
p.flush(30)
check(errors == [KafkaError.TOPIC_AUTHORIZATION_FAILED] * 3, f"bob produce errors: {errors}")
check(len(bob_confluent.list_topics(timeout=30).topics) == 0, "bob sees topics")

# bob's consumer: authorization errors (29 for the topic, 30 for its group), never a message.
# (Its group is refused too: librdkafka looks up the coordinator of its group.id.)
c = Consumer({**user("bob"), "group.id": "bob-group", "enable.auto.commit": False})
c.assign([TopicPartition(TOPIC, 0, 0)])
seen, deadline = set(), time.monotonic() + 30
while not seen and time.monotonic() < deadline:
    m = c.poll(1.0)
    if m is None:
        continue
    check(m.error() is not None, f"bob received a message: {m.value()}")
    seen.add(m.error().code())
c.close()
check(seen <= {KafkaError.TOPIC_AUTHORIZATION_FAILED, KafkaError.GROUP_AUTHORIZATION_FAILED}
      and seen, f"bob consume errors: {seen}")

# Taking alice's group ACL away: GROUP_AUTHORIZATION_FAILED for her group.
group_filter = AclBindingFilter(ResourceType.GROUP, GROUP, ResourcePatternType.LITERAL, "User:alice",
                                None, AclOperation.ANY, AclPermissionType.ANY)
deleted = admin.delete_acls([group_filter], request_timeout=30)[group_filter].result(30)
check(len(deleted) == 1, f"deleted {deleted}")
c = Consumer({**user("alice"), "group.id": GROUP, "auto.offset.reset": "earliest",
              "enable.auto.commit": False})
c.subscribe([TOPIC])
seen, deadline = None, time.monotonic() + 30
while seen is None and time.monotonic() < deadline:
    m = c.poll(1.0)
    if m is None:
        continue
    check(m.error() is not None, f"alice consumed without her group ACL: {m.value()}")
    seen = m.error().code()
c.close()
check(seen == KafkaError.GROUP_AUTHORIZATION_FAILED, f"alice without group ACL: {seen}")
print("acl ok")
