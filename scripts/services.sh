#!/usr/bin/env bash
# Make sure the services Sluice and its tests need are installed and running
# on this machine: Redis (127.0.0.1:6379), PostgreSQL (127.0.0.1:5432), and
# Debian's Chromium (/usr/bin/chromium) for the screenshot handler.
# Installs missing ones with apt-get (as root) and starts stopped ones.
# Safe to run again and again. With --install-only, installs what is
# missing but starts nothing (`sluice up` starts its own Redis, with an
# append-only file, when none answers).
set -euo pipefail

install_only=0
if [ "${1:-}" = "--install-only" ]; then install_only=1; fi

log() { printf 'services: %s\n' "$*" >&2; }

apt_updated=0
apt_install() {
  if [ "$(id -u)" != 0 ]; then
    log "need root to install $*; install it and run again"; exit 1
  fi
  if [ "$apt_updated" = 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    apt_updated=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

wait_for() { # what, command...
  local what=$1; shift
  for _ in $(seq 1 100); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.1
  done
  log "$what did not come up"; return 1
}

ensure_redis() {
  if ! command -v redis-server >/dev/null; then
    log "installing redis-server"
    apt_install redis-server redis-tools
  fi
  if [ "$install_only" = 1 ]; then return 0; fi
  if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
    log "starting redis-server on 127.0.0.1:6379"
    redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no
    wait_for redis redis-cli -h 127.0.0.1 -p 6379 ping
  fi
}

ensure_postgres() {
  if ! command -v pg_ctlcluster >/dev/null; then
    log "installing postgresql"
    apt_install postgresql
  fi
  if [ "$install_only" = 1 ]; then return 0; fi
  if ! pg_isready -h 127.0.0.1 -p 5432 >/dev/null 2>&1; then
    log "starting postgresql"
    local version
    version=$(ls /etc/postgresql | sort -V | tail -n 1)
    pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
    wait_for postgresql pg_isready -h 127.0.0.1 -p 5432
  fi
}

ensure_chromium() {
  if ! command -v chromium >/dev/null; then
    log "installing chromium"
    apt_install chromium
  fi
}

# openssl makes the test authority of the TLS tests (api/tests/tls.rs).
ensure_openssl() {
  if ! command -v openssl >/dev/null; then
    log "installing openssl"
    apt_install openssl
  fi
}

ensure_redis
ensure_postgres
ensure_chromium
ensure_openssl
