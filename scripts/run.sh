#!/usr/bin/env bash
# Run Sluice on this machine against the local Redis (started if none
# answers): a worker pool and a producer on the `demo` queue, with live
# stats, until Ctrl-C. `SLUICE_REDIS_URL` points it at another Redis.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/services.sh
exec cargo run --release -p sluice-engine --example quickstart -- "$@"
