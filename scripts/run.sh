#!/usr/bin/env bash
# Run Sluice on this machine: `sluice up` with config/sluice.toml (API and
# dashboard on http://127.0.0.1:8080/, workers for the configured queues,
# cron schedules). When no Redis answers at the configured URL, sluice up
# starts a private redis-server (append-only file on) with its data under
# .sluice/. Installs redis-server first if it is missing. Extra arguments go
# to `sluice up`; `SLUICE_REDIS_URL` points it at another Redis.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/services.sh --install-only
cargo build --release -p sluice --bin sluice
exec ./target/release/sluice --config config/sluice.toml up "$@"
