"""Bad inputs on raw sockets, each followed by a client that still works."""
import socket
import struct
import sys

from confluent_kafka import Producer
from kafka import KafkaProducer

from common import bootstrap, check, confluent_consumer, consume_all, create_topic

b = bootstrap()
host, port = b.rsplit(":", 1)
MAX_CONNECTIONS = int(sys.argv[2])
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


# A length prefix over socket.request.max.bytes, and a negative one.
for prefix in (struct.pack(">i", 0x7FFFFFFF), struct.pack(">i", -1)):
    s = conn()
    s.sendall(prefix)
    check(closed_by_broker(s), f"length prefix {prefix.hex()} closes the connection")
    s.close()
client_still_works()

# Garbage: a plausible length, then noise (an unknown API key), and noise after a valid header.
for payload in (bytes(range(251, 256)) * 12, struct.pack(">hhi", 0, 9, 1) + b"\xff" * 40):
    s = conn()
    s.sendall(struct.pack(">i", len(payload)) + payload)
    check(closed_by_broker(s), "garbage closes the connection")
    s.close()
client_still_works()

# A truncated request: the length promises more than arrives before the client stops sending.
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
client_still_works()

# ApiVersions at an unknown version: a v0 answer with UNSUPPORTED_VERSION and the real ranges.
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

# A flood of connections: at most max_connections are served, the rest closed at once. (The
# clients above may still hold a few connections, so count rather than pick which.)
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
client_still_works()
print("bad inputs ok")
