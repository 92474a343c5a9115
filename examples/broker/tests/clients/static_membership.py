"""Static membership: a member with group.instance.id restarts and gets its partitions back
without a rebalance: the other member's assignment callbacks do not fire again and the
group keeps two members."""
from confluent_kafka.admin import AdminClient

from common import bootstrap, check, create_topic, group_consumer, poll_until, produce_values

b = bootstrap()
TOPIC, GROUP = "static", "static-group"
create_topic(b, TOPIC, 2)
produce_values(b, TOPIC, [f"s{i}" for i in range(100)])

events = []
def dynamic_assigned(c, parts):
    events.append(("assign", sorted(p.partition for p in parts)))
def dynamic_revoked(c, parts):
    events.append(("revoke", sorted(p.partition for p in parts)))

conf = {"partition.assignment.strategy": "range", "session.timeout.ms": 30000}
dynamic = group_consumer(b, GROUP, **conf)
dynamic.subscribe([TOPIC], on_assign=dynamic_assigned, on_revoke=dynamic_revoked)
static = group_consumer(b, GROUP, **{**conf, "group.instance.id": "static-1"})
static.subscribe([TOPIC])

def owned(c):
    return {tp.partition for tp in c.assignment()}
poll_until([dynamic, static], lambda: len(owned(dynamic)) == 1 and len(owned(static)) == 1)
before = owned(static)
admin = AdminClient({"bootstrap.servers": b})
members = admin.describe_consumer_groups([GROUP])[GROUP].result(30).members
old_ids = {m.member_id for m in members if m.group_instance_id == "static-1"}
check(len(members) == 2 and len(old_ids) == 1, f"members: {members}")
settled = list(events)

# A static member's close sends no LeaveGroup; it restarts within the session timeout.
static.close()
static = group_consumer(b, GROUP, **{**conf, "group.instance.id": "static-1"})
static.subscribe([TOPIC])
poll_until([dynamic, static], lambda: owned(static) == before)

# New records on both partitions reach both members in the same generation.
produce_values(b, TOPIC, [f"t{i}" for i in range(20)])
seen = {"dynamic": 0, "static": 0}
def count(c, m):
    if m.value().decode().startswith("t"):
        seen["dynamic" if c is dynamic else "static"] += 1
poll_until([dynamic, static], lambda: seen["dynamic"] > 0 and seen["static"] > 0, on_message=count)
check(events == settled, f"the dynamic member saw a rebalance: {events[len(settled):]}")
members = admin.describe_consumer_groups([GROUP])[GROUP].result(30).members
new_ids = {m.member_id for m in members if m.group_instance_id == "static-1"}
check(len(members) == 2 and len(new_ids) == 1 and new_ids != old_ids, f"members after: {members}")
static.close()
dynamic.close()
print("static membership ok")
