"""After a SIGKILL and restart: every acknowledged message is at its offset, exactly once."""
import json
import sys
from collections import Counter

from confluent_kafka import TopicPartition

from common import bootstrap, check, confluent_consumer, consume_all

b, acked_path = bootstrap(), sys.argv[2]
TOPIC, PARTITIONS = "crash", 2
with open(acked_path) as f:
    acked = json.load(f)
c = confluent_consumer(b, TOPIC, PARTITIONS)
ends = [c.get_watermark_offsets(TopicPartition(TOPIC, q), timeout=30)[1] for q in range(PARTITIONS)]
check(sum(ends) >= len(acked), f"log ends {ends} hold fewer than the {len(acked)} acknowledged")
msgs = consume_all(c, sum(ends))
at = {(m.partition(), m.offset()): m.value().decode() for m in msgs}
for part, off, value in acked:
    check(at.get((part, off)) == value, f"acknowledged {value} at {part}/{off}, found {at.get((part, off))}")
counts = Counter(m.value().decode() for m in msgs)
dups = [v for v, n in counts.items() if n > 1]
check(not dups, f"duplicates: {dups[:5]}")
c.close()
print(f"crash ok: {len(acked)} acknowledged, {len(msgs)} stored")
