#!/usr/bin/env bash
# Run the whole test suite against real services: starts (or installs) Redis
# and PostgreSQL first. Extra arguments go to `cargo test`. Ends with one
# summary line over every test binary.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/services.sh
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
cargo test --workspace --no-fail-fast "$@" 2>&1 | tee "$log" || status=$?
# The engine's integration tests once more, on a 3-primary Redis Cluster
# that each test binary starts for itself (engine/tests/common/cluster.rs).
if [ "$#" -eq 0 ]; then
  echo "--- the engine's integration tests on Redis Cluster"
  SLUICE_TEST_CLUSTER=1 cargo test --no-fail-fast -p sluice-engine --test queue_api --test worker --test fleet --test partitioned 2>&1 | tee -a "$log" || status=$?
fi
passed=$(grep -Eo '^test result: [a-zA-Z]+\. [0-9]+ passed' "$log" | awk '{s+=$4} END {print s+0}')
failed=$(grep -Eo '; [0-9]+ failed' "$log" | awk '{s+=$2} END {print s+0}')
echo
echo "summary: ${passed} passed, ${failed} failed"
exit "$status"
