#!/usr/bin/env bash
# Run the whole test suite against real services: starts (or installs) Redis
# and PostgreSQL first. Extra arguments go to `cargo nextest run` (or to
# `cargo test` where cargo-nextest is missing). Ends with one summary line
# over every test binary.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/services.sh
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
if cargo nextest --version >/dev/null 2>&1; then
  # cargo-nextest runs the tests of every binary side by side, more at a
  # time than there are cores, since most wait on a service
  # (.config/nextest.toml); `cargo test` would run the binaries one after
  # the other. It runs no doc tests: cargo test runs those after it.
  started=$SECONDS
  cargo nextest run --workspace --no-fail-fast "$@" 2>&1 | tee "$log" || status=$?
  echo "--- the workspace's tests took $((SECONDS - started)) s"
  # Its summary ("N tests run: P passed, F failed, S skipped") as the one
  # line per binary that the count at the end reads.
  python3 scripts/nextest-summary.py < "$log" >> "$log" || status=1
  if [ "$#" -eq 0 ]; then
    cargo test --workspace --doc 2>&1 | tee -a "$log" || status=$?
  fi
else
  cargo test --workspace --no-fail-fast "$@" 2>&1 | tee "$log" || status=$?
fi
# Three more steps, side by side since each mostly waits: the engine's
# integration tests on Redis Cluster, the Kubernetes manifests and the HTTP
# API against its OpenAPI document. Each writes to a file of its own, shown
# (and counted) when all three are done.

# The engine's integration tests once more, on a 3-primary Redis Cluster
# that each test process starts for itself (testkit/src/cluster.rs): the
# engine's one integration-test binary, built by the step above, run four
# times at once, each time for one of the four modules that run on a
# cluster (a filter that starts with `<module>::`). It runs as it is, from
# the engine's directory as cargo would. Asking cargo to run it (`cargo
# test -p sluice-engine --test integration`) resolves features for that
# target alone: syn without `fold` and `visit`, which only other members'
# proc-macros ask for, so every dependency from proc-macro2 up was built a
# second time.
cluster_step() {
  echo "--- the engine's integration tests on Redis Cluster"
  local bin failed=0 n=0 pids=() modules=(queue_api worker fleet partitioned)
  bin=$(cargo test --workspace --no-run --message-format=json 2>/dev/null |
    python3 scripts/test-binaries.py sluice-engine integration) || failed=1
  if [ -z "$bin" ] || [ ! -x "$bin" ]; then
    echo "test result: FAILED. 0 passed; 1 failed (the engine's test binary was not found: $bin)"
    return 1
  fi
  for module in "${modules[@]}"; do
    n=$((n + 1))
    # Only the tests of `module`: libtest's filter matches anywhere in a
    # name, and `--skip` leaves out names that hold `module::` deeper down.
    (cd engine && SLUICE_TEST_CLUSTER=1 "$bin" "$module::" --skip "::$module::") > "$steps/cluster-$n" 2>&1 &
    pids+=("$!")
  done
  n=0
  for pid in "${pids[@]}"; do
    n=$((n + 1))
    wait "$pid" || failed=1
    cat "$steps/cluster-$n"
    # A filter that matches nothing (a module renamed) would pass with 0
    # tests run: that fails the step.
    if ! grep -Eq '^running [1-9][0-9]* tests?$' "$steps/cluster-$n"; then
      echo "test result: FAILED. 0 passed; 1 failed (no test of ${modules[$((n - 1))]}:: ran on the cluster)"
      failed=1
    fi
  done
  return "$failed"
}

# The Kubernetes manifests: rendered, validated against a pinned Kubernetes
# version, and their probes asked of the binary the tests just built.
kubernetes_step() {
  echo "--- the Kubernetes manifests (deploy/kubernetes)"
  if python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore \
    'kubernetes-validate==1.37.0' 'PyYAML>=6' &&
    python3 scripts/check-kubernetes.py target/debug/sluice redis://127.0.0.1:6379/; then
    echo "test result: ok. 1 passed; 0 failed (kubernetes manifests)"
  else
    echo "test result: FAILED. 0 passed; 1 failed (kubernetes manifests)"
    return 1
  fi
}

# The HTTP API against its own OpenAPI document: schemathesis, every
# check, against a live `sluice serve` built by the tests above.
openapi_step() {
  echo "--- the HTTP API against its OpenAPI document (schemathesis)"
  if ./scripts/check-openapi.sh target/debug/sluice redis://127.0.0.1:6379/; then
    echo "test result: ok. 1 passed; 0 failed (openapi conformance)"
  else
    echo "test result: FAILED. 0 passed; 1 failed (openapi conformance)"
    return 1
  fi
}

if [ "$#" -eq 0 ]; then
  steps=$(mktemp -d)
  trap 'rm -rf "$log" "$steps"' EXIT
  started=$SECONDS
  pids=()
  for step in cluster_step kubernetes_step openapi_step; do
    "$step" > "$steps/$step" 2>&1 &
    pids+=("$!")
  done
  for pid in "${pids[@]}"; do
    wait "$pid" || status=1
  done
  for step in cluster_step kubernetes_step openapi_step; do
    tee -a "$log" < "$steps/$step"
  done
  echo "--- the three steps took $((SECONDS - started)) s side by side"
fi
# Lines of a test's own output, which nextest shows indented, are not
# counted: only each binary's (or step's) result line at the line start.
passed=$(grep -Eo '^test result: [a-zA-Z]+\. [0-9]+ passed' "$log" | awk '{s+=$4} END {print s+0}')
failed=$(grep -E '^test result: ' "$log" | grep -Eo '; [0-9]+ failed' | awk '{s+=$2} END {print s+0}')
echo
echo "summary: ${passed} passed, ${failed} failed"
exit "$status"
