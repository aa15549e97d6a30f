#!/usr/bin/env bash
# Run the whole test suite against real services: starts (or installs) Redis
# and PostgreSQL first. Extra arguments go to `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/services.sh
exec cargo test --workspace "$@"
