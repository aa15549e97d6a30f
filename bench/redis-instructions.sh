#!/usr/bin/env bash
# Redis instructions per job for one bench scenario, counted by callgrind.
#
# Timed runs on a shared machine drift by 10-20 % between runs, which hides
# the engine changes worth making (a few percent each). Instructions that
# Redis executes are counted exactly, so two builds can be compared from
# one run each:
#
#   bench/redis-instructions.sh [scenario] [jobs] [bench binary]
#   bench/redis-instructions.sh e2e-priority 10000
#   bench/redis-instructions.sh e2e-priority 10000 /tmp/old/release/sluice-bench
#
# Starts a private redis-server under valgrind's callgrind on a free port,
# zeroes the counters once it is up, runs the scenario against it
# (SLUICE_BENCH_REDIS_URL), dumps the counters and prints instructions per
# job. Redis runs about 50 times slower under callgrind, so the worker
# batches more per call than in a timed run; compare builds with the same
# scenario and job count. Needs valgrind (`apt-get install -y valgrind`).
set -euo pipefail
cd "$(dirname "$0")/.."

scenario=${1:-e2e-priority}
jobs=${2:-10000}
bench=${3:-target/release/sluice-bench}

command -v valgrind >/dev/null || {
  echo "valgrind is missing: apt-get install -y valgrind" >&2
  exit 1
}
[ -x "$bench" ] || cargo build -p sluice-bench --release

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
out=$(mktemp -d)
valgrind --tool=callgrind --callgrind-out-file="$out/cg.out" \
  redis-server --bind 127.0.0.1 --port "$port" --save "" --appendonly no \
  >"$out/redis.log" 2>&1 &
vg=$!
trap 'kill "$vg" 2>/dev/null || true; wait "$vg" 2>/dev/null || true; rm -rf "$out"' EXIT

for _ in $(seq 1 100); do
  redis-cli -p "$port" ping >/dev/null 2>&1 && break
  sleep 0.2
done
callgrind_control -z "$vg" >/dev/null 2>&1
SLUICE_BENCH_REDIS_URL="redis://127.0.0.1:$port" "$bench" "$scenario" --jobs "$jobs" | grep 'jobs/s' || true
callgrind_control -d "$vg" >/dev/null 2>&1
dump=$(ls -t "$out"/cg.out.* | head -1)
total=$(grep -E '^(summary|totals):' "$dump" | head -1 | awk '{print $2}')
echo "redis instructions per job: $((total / jobs)) ($scenario, $jobs jobs, $bench)"
