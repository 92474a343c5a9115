"""Bad inputs on raw sockets, one kind per run (the first argument after the address names
it): each is answered with Kafka's error or a closed connection, then a client still works and
the messages stored before are still there, unchanged, at their offsets."""
import socket
import struct
import sys

from confluent_kafka import Producer
from kafka import KafkaProducer

from common import bootstrap, check, confluent_consumer, consume_all, create_topic

b = bootstrap()
host, port = b.rsplit(":", 1)
CASE = sys.argv[2]
MAX_CONNECTIONS = int(sys.argv[3]) if len(sys.argv) > 3 else 0
TIMEOUT = 20  # every socket wait is bounded
round_no = [0]


def conn():
    s = socket.create_connection((host, int(port)), timeout=TIMEOUT)
    s.settimeout(TIMEOUT)
    return s


def closed_by_broker(s):
    """True when the broker closes the connection (EOF or reset) before the timeout."""
    try:
        while True:
            data = s.recv(65536)
            if not data:
                return True
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


def api_versions_frame(version, correlation_id=5):
    header = struct.pack(">hhi", 18, version, correlation_id) + struct.pack(">h", 4) + b"test"
    if version >= 3:
        header += b"\x00"  # header tagged fields
        body = b"\x05test\x021\x00"  # client_software_name, _version (compact), tagged fields
    else:
        body = b""
    payload = header + body
    return struct.pack(">i", len(payload)) + payload


def read_response(s):
    def exact(n):
        buf = b""
        while len(buf) < n:
            chunk = s.recv(n - len(buf))
            check(chunk, "connection closed mid-response")
            buf += chunk
        return buf
    (size,) = struct.unpack(">i", exact(4))
    return exact(size)


def client_still_works():
    round_no[0] += 1
    topic = f"after-bad-input-{round_no[0]}"
    create_topic(b, topic, 1)
    kp = KafkaProducer(bootstrap_servers=b, acks="all")
    kp.send(topic, b"kafka-python").get(timeout=30)
    kp.close()
    p = Producer({"bootstrap.servers": b, "acks": "all"})
    p.produce(topic, b"confluent")
    check(p.flush(30) == 0, "confluent produce")
    c = confluent_consumer(b, topic, 1)
    values = [m.value() for m in consume_all(c, 2, deadline_s=30)]
    c.close()
    check(values == [b"kafka-python", b"confluent"], f"read back {values}")




def produce_frame(records, correlation_id=9, version=3):
    """A Produce request (v3, acks=all) of `records` to intact/0."""
    header = struct.pack(">hhi", 0, version, correlation_id) + struct.pack(">h", 4) + b"test"
    topic = b"intact"
    body = (struct.pack(">h", -1) + struct.pack(">hi", -1, 10000) + struct.pack(">i", 1)
            + struct.pack(">h", len(topic)) + topic + struct.pack(">i", 1) + struct.pack(">i", 0)
            + struct.pack(">i", len(records)) + records)
    payload = header + body
    return struct.pack(">i", len(payload)) + payload


def produce_error(resp):
    """The partition error code of a Produce v3 response."""
    (corr, _topics, name_len) = struct.unpack(">iih", resp[:10])
    at = 10 + name_len
    (_parts, _index, error) = struct.unpack(">iih", resp[at:at + 10])
    return error


def batch(crc=0xDEADBEEF, claimed_extra=0):
    """A v2 record batch header and one record's worth of bytes, with the given CRC; its length
    field claims `claimed_extra` more bytes than follow."""
    records = b"\x10\x00\x00\x00\x02k\x02v\x00"
    after_length = (struct.pack(">ib", -1, 2) + struct.pack(">I", crc)
                    + struct.pack(">hiqqqhii", 0, 0, 0, 0, -1, -1, -1, 1) + records)
    return struct.pack(">qi", 0, len(after_length) + claimed_extra) + after_length


STORED = [f"kept-{i}".encode() for i in range(3)]


def store_some():
    create_topic(b, "intact", 1)
    p = Producer({"bootstrap.servers": b, "acks": "all"})
    for v in STORED:
        p.produce("intact", v)
    check(p.flush(30) == 0, "storing the first messages")


def store_intact():
    c = confluent_consumer(b, "intact", 1)
    got = [(m.offset(), m.value()) for m in consume_all(c, len(STORED), deadline_s=30)]
    c.close()
    check(got == list(enumerate(STORED)), f"stored messages after the bad input: {got}")


store_some()

if CASE == "oversized":
    # A length prefix over socket.request.max.bytes, and a negative one.
    for prefix in (struct.pack(">i", 0x7FFFFFFF), struct.pack(">i", -1)):
        s = conn()
        s.sendall(prefix)
        check(closed_by_broker(s), f"length prefix {prefix.hex()} closes the connection")
        s.close()

elif CASE == "garbage":
    # A plausible length, then noise (an unknown API key), and noise after a valid header.
    for payload in (bytes(range(251, 256)) * 12, struct.pack(">hhi", 0, 9, 1) + b"\xff" * 40):
        s = conn()
        s.sendall(struct.pack(">i", len(payload)) + payload)
        check(closed_by_broker(s), "garbage closes the connection")
        s.close()

elif CASE == "truncated":
    # The length promises more than arrives before the client stops sending.
    s = conn()
    frame = api_versions_frame(2)
    s.sendall(struct.pack(">i", len(frame) + 100) + frame[4:])
    s.shutdown(socket.SHUT_WR)
    check(closed_by_broker(s), "a truncated request closes the connection")
    s.close()
    # A slow one: part of a request, then silence past the read deadline.
    s = conn()
    s.sendall(frame[:7])
    check(closed_by_broker(s), "a stalled request is closed at the read deadline")
    s.close()

elif CASE == "unknown_api":
    # ApiVersions at an unknown version: a v0 answer with UNSUPPORTED_VERSION and the real
    # ranges, and the connection keeps serving.
    s = conn()
    s.sendall(api_versions_frame(99))
    resp = read_response(s)
    corr, error, n = struct.unpack(">ihi", resp[:10])
    check(corr == 5 and error == 35 and n >= 10, f"fallback: correlation {corr} error {error} apis {n}")
    keys = {struct.unpack(">hhh", resp[10 + 6 * i:16 + 6 * i])[0] for i in range(n)}
    check({0, 1, 2, 3, 18} <= keys, f"advertised keys {keys}")
    s.sendall(api_versions_frame(3, correlation_id=6))
    resp = read_response(s)
    check(struct.unpack(">ih", resp[:6]) == (6, 0), "then ApiVersions v3 answers on the same connection")
    s.close()
    # An unknown API key, and a known API at a version not served: the connection is closed.
    for key, version in ((999, 0), (0, 2), (1, 99)):
        s = conn()
        payload = struct.pack(">hhi", key, version, 7) + struct.pack(">h", 4) + b"test" + b"\x00" * 16
        s.sendall(struct.pack(">i", len(payload)) + payload)
        check(closed_by_broker(s), f"API {key} v{version} closes the connection")
        s.close()

elif CASE == "bad_batch":
    # A record batch with a wrong CRC, one whose length claims more bytes than it has, and
    # bytes that are no batch: CORRUPT_MESSAGE, nothing appended.
    for records in (batch(), batch(claimed_extra=50), b"\x00" * 20):
        s = conn()
        s.sendall(produce_frame(records))
        error = produce_error(read_response(s))
        check(error == 2, f"bad batch answered {error}, want CORRUPT_MESSAGE (2)")
        s.close()

elif CASE == "flood":
    # At most max_connections are served, the rest closed at once. (Clients above may still
    # hold a few connections, so count rather than pick which.)
    flood = [conn() for _ in range(MAX_CONNECTIONS + 5)]
    answered = 0
    for h in flood:
        try:
            h.sendall(api_versions_frame(0))
            read_response(h)
            answered += 1
        except (OSError, AssertionError):
            pass  # closed by the broker
    check(0 < answered <= MAX_CONNECTIONS, f"{answered} of {len(flood)} connections served, limit {MAX_CONNECTIONS}")
    for h in flood:
        h.close()

else:
    sys.exit(f"unknown case {CASE}")

store_intact()
client_still_works()
store_intact()
print(f"bad input {CASE} ok")
