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
The broker's consume runs --consume-rounds times with Fetch sent by sendfile (the default)
and as many times copied (`fetch_sendfile = false`), alternating, the broker restarted on the
same data directory for each consume (the data stays in the page cache); the broker's CPU is
its exited process's rusage (microseconds) less a broker started and stopped idle; the
medians of each are reported, per MB of values and per MB of stored batches (what a Fetch
sends). Because 100 B
lz4 messages make little data for a Fetch to move, each round also consumes a second topic of
--bulk-mb MB of 10 KiB incompressible values (produced once, uncompressed): there copying is
most of a Fetch's work, and the CPU sendfile saves shows.
Then acks=all produce latency (one message in flight, --latency-samples of them) beside a
bare 100 B write + fdatasync in the same directory, p50/p99 of each.
librdkafka's mock keeps only the newest 5 MiB (and 100,000 batches) of a partition, so its
consume is timed over the messages it kept (the row says how many) and scaled to per-message
rates.
Values (--values): `text` (default), log-like lines that lz4 compresses about 2x, all
different; `same`, 100 x's, which lz4 squeezes to almost nothing.
Everything is bounded by --time-limit seconds; a stage that overruns stops the run.
"""
import argparse
import glob
import os
import re
import resource
import statistics
import shutil
import subprocess
import sys
import tempfile
import time

from confluent_kafka import Consumer, Producer, TopicPartition, OFFSET_BEGINNING
from confluent_kafka.admin import AdminClient, NewTopic

TICK = os.sysconf("SC_CLK_TCK")
VALUE_BYTES = 100


BULK_VALUE_BYTES = 10 * 1024


def make_values(kind):
    """Values of 100 B, cycled through by the producer."""
    if kind == "same":
        return [b"x" * VALUE_BYTES]
    methods = ["GET", "POST", "PUT", "DELETE"]
    values = []
    for i in range(4096):
        line = (f"2026-12-02T18:{i % 60:02d}:{(i * 7) % 60:02d}.{(i * 7919) % 1000:03d}Z "
                f"{methods[i % 4]} /api/v1/items/{(i * 104729) % 99991} {200 + (i % 7) * 50} "
                f"{(i * 31) % 997}ms user={(i * 13) % 4099} ")
        values.append(line.encode().ljust(VALUE_BYTES, b".")[:VALUE_BYTES])
    return values


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


def start_broker(binary, workdir, deadline, sendfile=True):
    data = os.path.join(workdir, "data")
    config = os.path.join(workdir, "broker.toml")
    with open(config, "w") as f:
        f.write(f'listen = "127.0.0.1:0"\ndata_dir = "{data}"\n'
                "offsets_topic_num_partitions = 1\ntransaction_state_log_num_partitions = 1\n"
                f"fetch_sendfile = {'true' if sendfile else 'false'}\n")
    err = open(os.path.join(workdir, "broker.err"), "a")
    proc = subprocess.Popen([binary, "--config", config], stdout=subprocess.PIPE, stderr=err, text=True)
    while True:
        deadline.left("broker start")
        line = proc.stdout.readline()
        if not line:
            sys.exit("broker exited before listening")
        m = re.match(r"listening on (\S+)", line)
        if m:
            return proc, m.group(1)


def stop_broker(proc):
    """Stops the broker; returns the CPU seconds (user + system) it used in its life."""
    if proc is None:
        return 0.0
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(30)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def stored_bytes(workdir, topic):
    """Bytes of the partition's segment files: what consuming all of it fetches."""
    return sum(os.path.getsize(p) for p in glob.glob(os.path.join(workdir, "data", f"{topic}-0", "*.log")))


def produce(bootstrap, topic, n, deadline, values, extra=None):
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
    for i in range(n):
        value = values[i % len(values)]
        while True:
            try:
                p.produce(topic, value, partition=0, on_delivery=report)
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


def consume(bootstrap, topic, n, deadline, value_size=VALUE_BYTES):
    """Reads the first n messages of partition 0 and times it."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench", "enable.auto.commit": False,
                  "fetch.wait.max.ms": 10})
    c.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
    got = 0
    value_bytes = 0
    start = time.monotonic()
    while got < n:
        msgs = c.consume(10_000, timeout=0.5)
        for m in msgs:
            if m.error():
                sys.exit(f"consume error: {m.error()}")
            value_bytes += len(m.value())
        got += len(msgs)
        deadline.left("consume")
    elapsed = time.monotonic() - start
    c.close()
    if got < n or value_bytes < n * value_size:
        sys.exit(f"consumed {got} messages of {topic}, {value_bytes} B of values; expected {n}, {n * value_size} B")
    return elapsed


def progress(what):
    """Each stage's figures on stderr as it ends, so a run stopped by the time limit still shows them."""
    print(f"[{time.strftime('%H:%M:%S')}] {what}", file=sys.stderr, flush=True)


def percentiles(samples):
    s = sorted(samples)
    return s[len(s) // 2], s[min(len(s) - 1, (len(s) * 99) // 100)]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--broker", required=True, help="the broker binary (cargo build --release -p streamlog-broker)")
    ap.add_argument("--messages", type=int, default=500_000)
    ap.add_argument("--values", choices=["text", "same"], default="text")
    ap.add_argument("--consume-rounds", type=int, default=3,
                    help="broker consumes with sendfile, and as many copied, alternating")
    ap.add_argument("--bulk-mb", type=int, default=256,
                    help="MB of 10 KiB incompressible values in the second topic each round consumes")
    ap.add_argument("--latency-samples", type=int, default=2000)
    ap.add_argument("--time-limit", type=float, default=900)
    ap.add_argument("--tmp", default=None, help="where the data directory goes")
    args = ap.parse_args()
    deadline = Deadline(args.time_limit)
    values = make_values(args.values)
    work = tempfile.mkdtemp(prefix="streamlog-bench-", dir=args.tmp)
    broker, addr = start_broker(args.broker, work, deadline)
    mb = args.messages * VALUE_BYTES / 1e6
    rows = []
    consumes = {True: [], False: []}  # sendfile -> [(seconds, broker CPU s, client CPU s)]
    try:
        admin = AdminClient({"bootstrap.servers": addr})
        admin.create_topics([NewTopic("bench", 1, 1)])["bench"].result(30)
        del admin
        me = os.getpid()

        # streamlog: produce, then consume rounds alternating sendfile and copy
        b0, c0 = cpu_seconds(broker.pid), cpu_seconds(me)
        t_p, p = produce(addr, "bench", args.messages, deadline, values)
        del p
        b1, c1 = cpu_seconds(broker.pid), cpu_seconds(me)
        rows.append(("streamlog", "produce", t_p, (b1 - b0) / mb, (c1 - c0) / mb))
        progress(f"streamlog produce: {args.messages / t_p:.0f} msg/s, broker CPU {b1 - b0:.2f} s")
        bulk_n = max(1, args.bulk_mb * 1_000_000 // BULK_VALUE_BYTES)
        bulk_values = [os.urandom(BULK_VALUE_BYTES) for _ in range(64)]
        _, p = produce(addr, "bulk", bulk_n, deadline, bulk_values, {"compression.type": "none"})
        del p
        stored_mb = stored_bytes(work, "bench") / 1e6
        bulk_mb = stored_bytes(work, "bulk") / 1e6
        # Each consume gets a broker of its own, so its CPU is the exited process's rusage
        # (microseconds, where /proc's ticks are 10 ms), less an idle broker's start and stop.
        idle = {True: [], False: []}
        for round_ in range(args.consume_rounds):
            for sendfile in (True, False):
                mode = "sendfile" if sendfile else "copied"
                stop_broker(broker)
                broker, addr = start_broker(args.broker, work, deadline, sendfile)
                idle[sendfile].append(stop_broker(broker))
                timed = []
                for topic, n, size in (("bench", args.messages, VALUE_BYTES), ("bulk", bulk_n, BULK_VALUE_BYTES)):
                    broker, addr = start_broker(args.broker, work, deadline, sendfile)
                    c1 = cpu_seconds(me)
                    t = consume(addr, topic, n, deadline, size)
                    c2 = cpu_seconds(me)
                    timed.append((t, stop_broker(broker), c2 - c1))
                    broker = None
                (t_c, b_c, c_c), (t_b, b_b, _) = timed
                consumes[sendfile].append((t_c, b_c, c_c, t_b, b_b))
                progress(f"consume round {round_ + 1} ({mode}): idle broker {idle[sendfile][-1]:.3f} s; bench "
                         f"{args.messages / t_c:.0f} msg/s, broker CPU {b_c:.3f} s; bulk {bulk_mb / t_b:.1f} MB/s, "
                         f"broker CPU {b_b:.3f} s")
                broker, addr = start_broker(args.broker, work, deadline, sendfile)
        for sendfile in (True, False):
            base = statistics.median(idle[sendfile])
            consumes[sendfile] = [(t_c, max(0.0, b_c - base), c_c, t_b, max(0.0, b_b - base))
                                  for t_c, b_c, c_c, t_b, b_b in consumes[sendfile]]
        for sendfile, label in ((True, "consume, sendfile"), (False, "consume, copied")):
            runs = consumes[sendfile]
            t_c = statistics.median(r[0] for r in runs)
            rows.append(("streamlog", label, t_c, statistics.median(r[1] for r in runs) / mb,
                         statistics.median(r[2] for r in runs) / mb))

        # librdkafka's mock cluster: the producer owns it; its brokers listen on loopback, so
        # the consumer reaches them through the address Metadata gives.
        c0 = cpu_seconds(me)
        t_p, owner = produce("", "bench", args.messages, deadline, values, {"test.mock.num.brokers": 1})
        c1 = cpu_seconds(me)
        brokers = owner.list_topics(timeout=10).brokers
        mock = ",".join(f"{b.host}:{b.port}" for b in brokers.values())
        # The mock keeps only the newest 5 MiB (and 100,000 batches) of a partition and drops
        # the rest (librdkafka's rdkafka_mock.c): its consume is timed over what it kept.
        probe = Consumer({"bootstrap.servers": mock, "group.id": "bench-probe"})
        low, high = probe.get_watermark_offsets(TopicPartition("bench", 0), timeout=10)
        probe.close()
        mock_n = high - low
        mock_mb = mock_n * VALUE_BYTES / 1e6
        t_c = consume(mock, "bench", mock_n, deadline)
        c2 = cpu_seconds(me)
        rows.append(("mock", "produce", t_p, None, (c1 - c0) / mb))
        rows.append(("mock", f"consume ({mock_n})", t_c * args.messages / mock_n, None, (c2 - c1) / mock_mb))
        progress(f"mock: produce {args.messages / t_p:.0f} msg/s; it kept {mock_n} messages, "
                 f"consumed at {mock_n / t_c:.0f} msg/s")
        owner.flush(10)
        del owner

        # acks=all latency beside a bare fdatasync
        lat = Producer({"bootstrap.servers": addr, "acks": "all", "linger.ms": 0, "enable.idempotence": True})
        samples = []
        # The first sends also connect, fetch metadata and get a producer id: not timed.
        for i in range(-10, args.latency_samples):
            done = []
            start = time.perf_counter()
            lat.produce("bench", values[i % len(values)], partition=0,
                        on_delivery=lambda err, msg: done.append(err))
            while not done:
                lat.poll(0.05)
                deadline.left("acks=all latency")
            if done[0]:
                sys.exit(f"acks=all produce failed: {done[0]}")
            if i >= 0:
                samples.append(time.perf_counter() - start)
        lat.flush(10)
        del lat
        sync = []
        fd = os.open(os.path.join(work, "fdatasync.bin"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        for i in range(args.latency_samples):
            start = time.perf_counter()
            os.write(fd, values[i % len(values)])
            os.fdatasync(fd)
            sync.append(time.perf_counter() - start)
            deadline.left("fdatasync")
        os.close(fd)
    finally:
        stop_broker(broker)
        shutil.rmtree(work, ignore_errors=True)

    print(f"{args.messages} messages of {VALUE_BYTES} B ({mb:.0f} MB of values, {args.values}; "
          f"{stored_mb:.1f} MB stored), acks=1, lz4, linger.ms=5; "
          f"broker consume: median of {args.consume_rounds} rounds each")
    print(f"{'target':10} {'stage':18} {'msg/s':>10} {'MB/s':>7} {'broker CPU s/MB':>16} "
          f"{'per stored MB':>14} {'client CPU s/MB':>16}")
    for target, stage, t, bcpu, ccpu in rows:
        bc = f"{bcpu:.4f}" if bcpu is not None else "in-process"
        stored = f"{bcpu * mb / stored_mb:.4f}" if bcpu is not None and stage.startswith("consume") else ""
        print(f"{target:10} {stage:18} {args.messages / t:10.0f} {mb / t:7.1f} {bc:>16} {stored:>14} {ccpu:16.4f}")
    print("broker CPU while consuming, sendfile vs copied (medians):")
    for name, col, t_col, size in (("bench (100 B, lz4)", 1, 0, stored_mb), ("bulk (10 KiB, none)", 4, 3, bulk_mb)):
        sf = statistics.median(r[col] for r in consumes[True])
        cp = statistics.median(r[col] for r in consumes[False])
        t_sf = statistics.median(r[t_col] for r in consumes[True])
        t_cp = statistics.median(r[t_col] for r in consumes[False])
        saved = f"{(1 - sf / cp) * 100:.0f}% less" if cp > 0 else "-"
        print(f"  {name:20} {size:7.1f} MB stored: {sf:.2f} s vs {cp:.2f} s ({saved}); "
              f"{sf / size * 1e3:.3f} vs {cp / size * 1e3:.3f} ms per stored MB; "
              f"{size / t_sf:.1f} vs {size / t_cp:.1f} MB/s")
    p50, p99 = percentiles(samples)
    s50, s99 = percentiles(sync)
    print(f"acks=all produce latency ({len(samples)} sequential): p50 {p50 * 1e3:.3f} ms, p99 {p99 * 1e3:.3f} ms")
    print(f"bare 100 B write + fdatasync ({len(sync)}):          p50 {s50 * 1e3:.3f} ms, p99 {s99 * 1e3:.3f} ms")


if __name__ == "__main__":
    main()
