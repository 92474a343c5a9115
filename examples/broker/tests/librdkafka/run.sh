#!/usr/bin/env bash
# librdkafka's own test suite (its tests/ directory) against this broker, by hand (not in CI).
#
#   examples/broker/tests/librdkafka/run.sh            # the allow-listed tests
#   ALL=1 examples/broker/tests/librdkafka/run.sh      # every broker test (to revise the list)
#
# Checks librdkafka out at a pinned commit outside the project (LIBRDKAFKA_DIR, default
# ~/.cache/streamlog-librdkafka), builds the library and its test-runner once (needs gcc, make,
# zlib1g-dev, libzstd-dev, libssl-dev), builds the broker (release), starts it on a free
# loopback port with a temporary data directory and runs the tests with a hard time limit
# (SUITE_TIMEOUT seconds, default 1800), telling the tests the broker is Kafka 3.9.0 (BROKER_VERSION). Prints passed / failed / skipped; the full log is
# in $LIBRDKAFKA_DIR/tests/streamlog-suite.log. Exits non-zero when an allow-listed test fails.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../../../.." && pwd)"
dir="${LIBRDKAFKA_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/streamlog-librdkafka}"
rev="${LIBRDKAFKA_REV:-4c3b017c3de8d9c10de12b9eec0ea688e8d5787d}"
url="${LIBRDKAFKA_URL:-https://github.com/confluentinc/librdkafka}"
limit="${SUITE_TIMEOUT:-1800}"
parallel="${SUITE_PARALLEL:-4}"

if [ ! -d "$dir/.git" ]; then
    git clone --quiet "$url" "$dir"
fi
if [ "$(git -C "$dir" rev-parse HEAD)" != "$rev" ]; then
    git -C "$dir" fetch --quiet origin "$rev" 2>/dev/null || true
    git -C "$dir" checkout --quiet "$rev"
    rm -f "$dir/tests/test-runner"
fi
if [ ! -x "$dir/tests/test-runner" ]; then
    (cd "$dir" && ./configure --disable-gssapi --disable-curl >/dev/null \
        && make -j"$(nproc)" libs >/dev/null && make -j"$(nproc)" -C tests build >/dev/null)
fi

# BROKER_BIN: an already built broker (e.g. target/debug/broker) instead of a release build.
broker_bin="${BROKER_BIN:-}"
if [ -z "$broker_bin" ]; then
    cargo build --release --quiet --manifest-path "$root/Cargo.toml" -p streamlog-broker
    broker_bin="$root/target/release/broker"
fi

work="$(mktemp -d)"
broker_pid=""
cleanup() {
    if [ -n "$broker_pid" ]; then kill "$broker_pid" 2>/dev/null || true; wait "$broker_pid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

# Kafka's settings for a test cluster: groups start without the initial rebalance delay.
cat >"$work/broker.toml" <<TOML
listen = "127.0.0.1:0"
data_dir = "$work/data"
group_initial_rebalance_delay_ms = 0
offsets_topic_num_partitions = 4
transaction_state_log_num_partitions = 4
TOML
"$broker_bin" --config "$work/broker.toml" >"$work/broker.out" 2>"$work/broker.err" &
broker_pid=$!
addr=""
for _ in $(seq 1 300); do
    addr="$(sed -n 's/^listening on //p' "$work/broker.out")"
    [ -n "$addr" ] && break
    kill -0 "$broker_pid" 2>/dev/null || { cat "$work/broker.err" >&2; exit 1; }
    sleep 0.1
done
[ -n "$addr" ] || { echo "broker did not start" >&2; exit 1; }
echo "broker at $addr (data in $work/data)"

printf 'bootstrap.servers=%s\n' "$addr" >"$work/test.conf"
if [ -n "${ALL:-}" ]; then
    tests=""
else
    # One test number a line; comments after '#'.
    tests="$(sed 's/#.*//' "$here/allowlist.txt" | tr -s ' \t\n' ',' | sed 's/^,//; s/,$//')"
fi

log="$dir/tests/streamlog-suite.log"
set +e
(cd "$dir/tests" && LD_LIBRARY_PATH=../src:../src-cpp TESTS="$tests" RDKAFKA_TEST_CONF="$work/test.conf" \
    timeout --kill-after=30 "$limit" ./test-runner -L -Q -E -K -p"$parallel" -V "${BROKER_VERSION:-3.9.0}") >"$log" 2>&1
status=$?
set -e

# The runner's summary table: one `| NNNN_name | STATUS | ...` row a test (the last one counts).
summary="$(sed 's/\x1b\[[0-9;]*m//g' "$log" | grep -E '^\|[[:space:]]+[0-9]{4}_' | awk -F'|' '{gsub(/ /,"",$2); gsub(/ /,"",$3); last[$2]=$3} END {for (t in last) print t, last[t]}' | sort)"
echo "$summary" | awk '{print $2}' | sort | uniq -c
echo "$summary" | awk '$2 == "FAILED" {print "failed:", $1}'
[ "$status" -eq 124 ] && echo "suite stopped after ${limit}s" >&2
echo "log: $log"
exit "$status"
