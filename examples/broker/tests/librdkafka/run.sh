#!/usr/bin/env bash
# librdkafka's own test suite (its tests/ directory) against this broker, by hand (not in CI).
#
#   examples/broker/tests/librdkafka/run.sh            # the allow-listed tests
#   ALL=1 examples/broker/tests/librdkafka/run.sh      # every broker test (to revise the list)
#   TESTS=0012,0029 examples/broker/tests/librdkafka/run.sh   # some of them
#
# Checks librdkafka out at a pinned commit outside the project (LIBRDKAFKA_DIR, default
# ~/.cache/streamlog-librdkafka), builds the library and its test-runner once (needs gcc, make,
# zlib1g-dev, libzstd-dev, libssl-dev), builds the broker (release), starts it on a free
# loopback port with a temporary data directory and runs the tests with a hard time limit
# (SUITE_TIMEOUT seconds, default 1800; TEST_TIMEOUT a test, default 600; SUITE_PARALLEL
# tests at a time, default 4, each in its own test-runner), telling the tests the broker is Kafka 3.9.0 (BROKER_VERSION). Prints passed / failed / skipped; the full log is
# in $LIBRDKAFKA_DIR/tests/streamlog-suite.log, the summary in streamlog-suite.summary. Exits
# non-zero when an allow-listed test fails.
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

# Kafka's settings for a test cluster: groups start without the initial rebalance delay;
# auto-created topics have 4 partitions, as the suite assumes (0029, 0056 produce to
# partitions 1-3 of topics they never create).
cat >"$work/broker.toml" <<TOML
listen = "127.0.0.1:0"
data_dir = "$work/data"
num_partitions = 4
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
    tests="$(cd "$dir/tests" && ls [0-9][0-9][0-9][0-9]-* | cut -c1-4 | sort -u)"
else
    # One test number a line; comments after '#'.
    tests="$(sed 's/#.*//' "$here/allowlist.txt" | tr -s ' \t' '\n' | grep -E '^[0-9]{4}$' | sort -u)"
fi
# TESTS=NNNN[,NNNN...] narrows the run to those numbers (while fixing one test).
if [ -n "${TESTS:-}" ]; then
    tests="$(echo "$tests" | grep -E "^(${TESTS//,/|})$" || true)"
fi

# One test-runner a test number: a test that times out makes the runner kill its own
# process, which would take every test running beside it along. SUITE_PARALLEL runners at
# a time, each under TEST_TIMEOUT seconds, the whole under SUITE_TIMEOUT.
logs="$dir/tests/streamlog-suite"
rm -rf "$logs"
mkdir -p "$logs"
export LIBRDKAFKA_TESTS_DIR="$dir/tests" RDKAFKA_TEST_CONF="$work/test.conf" LOGS="$logs" \
    TEST_TIMEOUT="${TEST_TIMEOUT:-600}" BROKER_VERSION="${BROKER_VERSION:-3.9.0}"
set +e
echo "$tests" | timeout --kill-after=30 "$limit" xargs -P"$parallel" -I{} sh -c '
    cd "$LIBRDKAFKA_TESTS_DIR" && LD_LIBRARY_PATH=../src:../src-cpp TESTS={} \
        timeout --kill-after=10 "$TEST_TIMEOUT" ./test-runner -L -Q -E -K -p1 -V "$BROKER_VERSION" \
        >"$LOGS/{}.log" 2>&1
    echo "exit $?" >>"$LOGS/{}.log"'
status=$?
set -e
log="$dir/tests/streamlog-suite.log"
cat "$logs"/*.log >"$log"

# Each runner's verdicts: `Test NNNN_name PASSED|FAILED|SKIPPED` lines and `### Test
# "NNNN_name" failed` (a failure, a timeout), the last one a test counts. The runner aborts
# at teardown after its last verdict (exit 134, "free(): invalid pointer"), before its summary
# table, so the table is not used. A runner with no verdict ran nothing (all its tests
# filtered out by -L/-E/-K: FILTERED) or was killed from outside (NO_RESULT).
summary="$(for f in "$logs"/*.log; do
    n="$(basename "$f" .log)"
    rows="$(sed 's/\x1b\[[0-9;]*m//g' "$f" \
        | grep -oE '(Test [0-9]{4}_[A-Za-z0-9_]+ (PASSED|FAILED|SKIPPED))|(### Test "[0-9]{4}_[A-Za-z0-9_]+[^"]*" failed)' \
        | sed -E 's/^### Test "([0-9]{4}_[A-Za-z0-9_]+)[^"]*" failed$/\1 FAILED/; s/^Test //' \
        | awk '{last[$1]=$2} END {for (t in last) print t, last[t]}')"
    if [ -n "$rows" ]; then echo "$rows"
    elif grep -q 'ALL TESTS PASSED' "$f"; then echo "${n}_ FILTERED"
    else echo "${n}_ NO_RESULT"; fi
done | sort)"
echo "$summary" >"$dir/tests/streamlog-suite.summary"
echo "$summary" | awk '{print $2}' | sort | uniq -c
echo "$summary" | awk '$2 != "PASSED" && $2 != "SKIPPED" && $2 != "FILTERED" {print $2 ":", $1}'
[ "$status" -eq 124 ] && echo "suite stopped after ${limit}s" >&2
echo "log: $log (one file a test in $logs)"
failed="$(echo "$summary" | awk '$2 != "PASSED" && $2 != "SKIPPED" && $2 != "FILTERED"' | wc -l)"
# xargs says 123 when a runner exited non-zero: the teardown abort above does every time.
[ "$status" -ne 0 ] && [ "$status" -ne 123 ] && exit "$status"
[ "$failed" -eq 0 ]
