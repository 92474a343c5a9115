"""A group of two rebalancing with the assignor given on the command line (range or
cooperative-sticky): both members share the partitions, one leaves, the survivor takes over
every partition and, with the commits the leaver made, the group consumes every message."""
import sys

from confluent_kafka import KafkaError

from common import bootstrap, check, create_topic, group_consumer, poll_until, produce_values

b = bootstrap()
ASSIGNOR = sys.argv[2]
TOPIC, GROUP, PARTITIONS, N = f"rebalance-{ASSIGNOR}", f"g-{ASSIGNOR}", 4, 400
create_topic(b, TOPIC, PARTITIONS)
produce_values(b, TOPIC, [f"a{i}" for i in range(N)])

consumed, refused = {}, []
def record(c, m):
    consumed.setdefault(m.value().decode(), 0)
    consumed[m.value().decode()] += 1
    # Commit what each member consumed, so the survivor resumes after it. The commit is
    # asynchronous: one poll loop drives both members, and a member's synchronous commit can
    # wait behind its own JoinGroup (a broker answers a connection's requests in order, and
    # the JoinGroup waits for the other member, which only this loop's next poll moves on).
    # Commits on one connection are applied in the order sent, so every commit sent before a
    # member gives up a partition is applied before the partition's next owner fetches it.
    c.commit(message=m, asynchronous=True)

def committed(err, partitions):
    """on_commit: a commit racing a rebalance gets Kafka's answer for it (the member's
    generation is over) and is not retried: its message may come again."""
    codes = [err.code()] if err is not None else [
        tp.error.code() for tp in partitions if tp.error is not None]
    for code in codes:
        check(code in (KafkaError.ILLEGAL_GENERATION, KafkaError.REBALANCE_IN_PROGRESS,
                       KafkaError.UNKNOWN_MEMBER_ID), f"commit failed: {err} {partitions}")
    if codes:
        refused.append(codes[0])  # one commit (one message) refused

conf = {"partition.assignment.strategy": ASSIGNOR, "on_commit": committed}
c1, c2 = group_consumer(b, GROUP, **conf), group_consumer(b, GROUP, **conf)
c1.subscribe([TOPIC])
c2.subscribe([TOPIC])

def owned(c):
    return {tp.partition for tp in c.assignment()}

# Both members hold two partitions each, disjoint.
poll_until([c1, c2], lambda: len(owned(c1)) == 2 and len(owned(c2)) == 2 and not owned(c1) & owned(c2),
           on_message=record)
check(owned(c1) | owned(c2) == set(range(PARTITIONS)), f"{owned(c1)} {owned(c2)}")
c2.close()  # LeaveGroup: the survivor is told to rebalance at its next heartbeat.

poll_until([c1], lambda: owned(c1) == set(range(PARTITIONS)), on_message=record)
# Everything produced before and after the handover reaches the survivor.
produce_values(b, TOPIC, [f"b{i}" for i in range(N)])
expected = {f"a{i}" for i in range(N)} | {f"b{i}" for i in range(N)}
poll_until([c1], lambda: expected <= set(consumed), on_message=record)
check(set(consumed) == expected, "nothing unexpected")
c1.close()  # Serves the last commits' callbacks.
# Commits are per message, so at most the message in flight at the handover repeats.
dups = [v for v, n in consumed.items() if n > 1]
check(len(dups) <= PARTITIONS + len(refused), f"redelivered: {dups}, refused commits: {refused}")
print(f"group rebalance with {ASSIGNOR} ok: {len(refused)} commits refused, {len(dups)} redelivered")
