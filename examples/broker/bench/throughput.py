"""Throughput of the broker beside librdkafka's mock cluster, with the same client, in one run.

    python examples/broker/bench/throughput.py --broker target/release/broker [--messages 500000]

Run it with the Python of the client tests' venv (confluent-kafka pinned in
examples/broker/tests/clients/requirements.txt). It starts the broker on a free loopback port
with a temporary data directory (on the same filesystem as --tmp), then for each target
(the streamlog broker, librdkafka's in-process mock cluster via `test.mock.num.brokers`):
  * produces --messages messages of 100 B (acks=1, lz4, linger.ms=5) and times it to the
    last delivery report;
  * consumes them back from the beginning and times it;
  * reports messages/s, MB/s (of values) and, for the broker, its CPU seconds per MB
    (utime+stime from /proc/PID/stat; the mock runs inside the client's process, so only the
    client process's CPU is given for it).
Then acks=all produce latency (one message in flight, --latency-samples of them) beside a
bare 100 B write + fdatasync in the same directory, p50/p99 of each.
Everything is bounded by --time-limit seconds; a stage that overruns stops the run.
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

from confluent_kafka import Consumer, Producer, TopicPartition, OFFSET_BEGINNING
from confluent_kafka.admin import AdminClient, NewTopic

TICK = os.sysconf("SC_CLK_TCK")
VALUE = b"x" * 100


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime


class Deadline:
    def __init__(self, seconds):
        self.end = time.monotonic() + seconds

    def left(self, what):
        left = self.end - time.monotonic()
        if left <= 0:
            sys.exit(f"time limit reached during {what}")
        return left


def start_broker(binary, workdir, deadline):
    data = os.path.join(workdir, "data")
    config = os.path.join(workdir, "broker.toml")
    with open(config, "w") as f:
        f.write(f'listen = "127.0.0.1:0"\ndata_dir = "{data}"\n'
                "offsets_topic_num_partitions = 1\ntransaction_state_log_num_partitions = 1\n")
    err = open(os.path.join(workdir, "broker.err"), "w")
    proc = subprocess.Popen([binary, "--config", config], stdout=subprocess.PIPE, stderr=err, text=True)
    while True:
        deadline.left("broker start")
        line = proc.stdout.readline()
        if not line:
            sys.exit("broker exited before listening")
        m = re.match(r"listening on (\S+)", line)
        if m:
            return proc, m.group(1)


def produce(bootstrap, topic, n, deadline, extra=None):
    conf = {"bootstrap.servers": bootstrap, "acks": 1, "compression.type": "lz4", "linger.ms": 5,
            "queue.buffering.max.messages": 1_000_000}
    conf.update(extra or {})
    p = Producer(conf)
    failed = []
    done = [0]

    def report(err, _msg):
        done[0] += 1
        if err:
            failed.append(err)

    start = time.monotonic()
    for _ in range(n):
        while True:
            try:
                p.produce(topic, VALUE, partition=0, on_delivery=report)
                break
            except BufferError:
                p.poll(0.01)
                deadline.left("produce")
        p.poll(0)
    while done[0] < n:
        p.poll(0.1)
        deadline.left("produce (delivery reports)")
    elapsed = time.monotonic() - start
    if failed:
        sys.exit(f"{len(failed)} deliveries failed, first: {failed[0]}")
    return elapsed, p


def consume(bootstrap, topic, n, deadline):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench", "enable.auto.commit": False,
                  "fetch.wait.max.ms": 10})
    c.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
    got = 0
    start = time.monotonic()
    while got < n:
        msgs = c.consume(10_000, timeout=0.5)
        for m in msgs:
            if m.error():
                sys.exit(f"consume error: {m.error()}")
        got += len(msgs)
        deadline.left("consume")
    elapsed = time.monotonic() - start
    c.close()
    return elapsed


def percentiles(samples):
    s = sorted(samples)
    return s[len(s) // 2], s[min(len(s) - 1, (len(s) * 99) // 100)]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--broker", required=True, help="the broker binary (cargo build --release -p streamlog-broker)")
    ap.add_argument("--messages", type=int, default=500_000)
    ap.add_argument("--latency-samples", type=int, default=2000)
    ap.add_argument("--time-limit", type=float, default=600)
    ap.add_argument("--tmp", default=None, help="where the data directory goes")
    args = ap.parse_args()
    deadline = Deadline(args.time_limit)
    work = tempfile.mkdtemp(prefix="streamlog-bench-", dir=args.tmp)
    broker, addr = start_broker(args.broker, work, deadline)
    mb = args.messages * len(VALUE) / 1e6
    rows = []
    try:
        admin = AdminClient({"bootstrap.servers": addr})
        admin.create_topics([NewTopic("bench", 1, 1)])["bench"].result(30)
        me = os.getpid()

        # streamlog
        b0, c0 = cpu_seconds(broker.pid), cpu_seconds(me)
        t_p, p = produce(addr, "bench", args.messages, deadline)
        del p
        b1, c1 = cpu_seconds(broker.pid), cpu_seconds(me)
        t_c = consume(addr, "bench", args.messages, deadline)
        b2, c2 = cpu_seconds(broker.pid), cpu_seconds(me)
        rows.append(("streamlog", "produce", t_p, (b1 - b0) / mb, (c1 - c0) / mb))
        rows.append(("streamlog", "consume", t_c, (b2 - b1) / mb, (c2 - c1) / mb))

        # librdkafka's mock cluster: the producer owns it; its brokers listen on loopback, so
        # the consumer reaches them through the address Metadata gives.
        c0 = cpu_seconds(me)
        t_p, owner = produce("", "bench", args.messages, deadline, {"test.mock.num.brokers": 1})
        c1 = cpu_seconds(me)
        brokers = owner.list_topics(timeout=10).brokers
        mock = ",".join(f"{b.host}:{b.port}" for b in brokers.values())
        t_c = consume(mock, "bench", args.messages, deadline)
        c2 = cpu_seconds(me)
        rows.append(("mock", "produce", t_p, None, (c1 - c0) / mb))
        rows.append(("mock", "consume", t_c, None, (c2 - c1) / mb))
        owner.flush(10)
        del owner

        # acks=all latency beside a bare fdatasync
        lat = Producer({"bootstrap.servers": addr, "acks": "all", "linger.ms": 0, "enable.idempotence": True})
        samples = []
        for _ in range(args.latency_samples):
            done = []
            start = time.perf_counter()
            lat.produce("bench", VALUE, partition=0, on_delivery=lambda err, msg: done.append(err))
            while not done:
                lat.poll(0.05)
                deadline.left("acks=all latency")
            if done[0]:
                sys.exit(f"acks=all produce failed: {done[0]}")
            samples.append(time.perf_counter() - start)
        sync = []
        fd = os.open(os.path.join(work, "fdatasync.bin"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        for _ in range(args.latency_samples):
            start = time.perf_counter()
            os.write(fd, VALUE)
            os.fdatasync(fd)
            sync.append(time.perf_counter() - start)
            deadline.left("fdatasync")
        os.close(fd)
    finally:
        broker.terminate()
        try:
            broker.wait(30)
        except subprocess.TimeoutExpired:
            broker.kill()
        shutil.rmtree(work, ignore_errors=True)

    print(f"{args.messages} messages of {len(VALUE)} B ({mb:.0f} MB of values), acks=1, lz4, linger.ms=5")
    print(f"{'target':10} {'stage':8} {'msg/s':>10} {'MB/s':>7} {'broker CPU s/MB':>16} {'client CPU s/MB':>16}")
    for target, stage, t, bcpu, ccpu in rows:
        bc = f"{bcpu:.4f}" if bcpu is not None else "in-process"
        print(f"{target:10} {stage:8} {args.messages / t:10.0f} {mb / t:7.1f} {bc:>16} {ccpu:16.4f}")
    p50, p99 = percentiles(samples)
    s50, s99 = percentiles(sync)
    print(f"acks=all produce latency ({len(samples)} sequential): p50 {p50 * 1e3:.3f} ms, p99 {p99 * 1e3:.3f} ms")
    print(f"bare 100 B write + fdatasync ({len(sync)}):          p50 {s50 * 1e3:.3f} ms, p99 {s99 * 1e3:.3f} ms")


if __name__ == "__main__":
    main()
