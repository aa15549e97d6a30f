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
# The binaries the step above built are run as they are, from the engine's
# directory as cargo would. Asking cargo for them (`cargo test --workspace
# --test queue_api ...`) resolves features for those targets alone: syn
# without `fold` and `visit`, which only other members' proc-macros ask
# for, so every dependency from proc-macro2 up was built a second time.
if [ "$#" -eq 0 ]; then
  echo "--- the engine's integration tests on Redis Cluster"
  bins=$(cargo test --workspace --no-run --message-format=json 2>/dev/null |
    python3 scripts/test-binaries.py sluice-engine queue_api worker fleet partitioned) || status=$?
  if [ "$(printf '%s\n' "$bins" | grep -c .)" -ne 4 ]; then
    echo "test result: FAILED. 0 passed; 1 failed (cluster test binaries not found: $bins)" | tee -a "$log"
    status=1
  else
    for bin in $bins; do
      (cd engine && SLUICE_TEST_CLUSTER=1 "$bin") 2>&1 | tee -a "$log" || status=$?
    done
  fi
fi
# The Kubernetes manifests: rendered, validated against a pinned Kubernetes
# version, and their probes asked of the binary the tests just built.
if [ "$#" -eq 0 ]; then
  echo "--- the Kubernetes manifests (deploy/kubernetes)"
  k8s=0
  python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore \
    'kubernetes-validate==1.37.0' 'PyYAML>=6' || k8s=$?
  if [ "$k8s" -eq 0 ]; then
    python3 scripts/check-kubernetes.py target/debug/sluice redis://127.0.0.1:6379/ 2>&1 | tee -a "$log"
    k8s=${PIPESTATUS[0]}
  fi
  if [ "$k8s" -eq 0 ]; then
    echo "test result: ok. 1 passed; 0 failed (kubernetes manifests)" >> "$log"
  else
    echo "test result: FAILED. 0 passed; 1 failed (kubernetes manifests)" >> "$log"
    status=1
  fi
fi
# The HTTP API against its own OpenAPI document: schemathesis, every
# check, against a live `sluice serve` built by the tests above.
if [ "$#" -eq 0 ]; then
  echo "--- the HTTP API against its OpenAPI document (schemathesis)"
  api=0
  ./scripts/check-openapi.sh target/debug/sluice redis://127.0.0.1:6379/ 2>&1 | tee -a "$log" || api=$?
  if [ "$api" -eq 0 ]; then
    echo "test result: ok. 1 passed; 0 failed (openapi conformance)" >> "$log"
  else
    echo "test result: FAILED. 0 passed; 1 failed (openapi conformance)" >> "$log"
    status=1
  fi
fi
passed=$(grep -Eo '^test result: [a-zA-Z]+\. [0-9]+ passed' "$log" | awk '{s+=$4} END {print s+0}')
failed=$(grep -Eo '; [0-9]+ failed' "$log" | awk '{s+=$2} END {print s+0}')
echo
echo "summary: ${passed} passed, ${failed} failed"
exit "$status"
