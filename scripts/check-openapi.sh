#!/usr/bin/env bash
# API conformance: schemathesis (every check, every phase) against a live
# `sluice serve` with the trading application, driven by the OpenAPI document that
# server serves: once with an admin API key, once open (no keys, where the
# origin guard decides). Any finding fails. Usage:
#   scripts/check-openapi.sh path/to/sluice [redis-url] [max-examples]
# The server gets its own key prefix and PostgreSQL schema, removed after.
set -euo pipefail
sluice=$1
redis_url=${2:-redis://127.0.0.1:6379/}
examples=${3:-50}
python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore \
  'schemathesis==4.32.5'
dir=$(mktemp -d)
tag="openapi_$$_$RANDOM"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
key="sk_conformance_$RANDOM$RANDOM$RANDOM"
hash=$(printf '%s' "$key" | sha256sum | cut -d' ' -f1)
write_config() { # $1: "keyed" or "open"
  cat > "$dir/sluice.toml" <<TOML
redis_url = "$redis_url"
prefix = "$tag"
data_dir = "$dir/data"

[api]
listen = "127.0.0.1:$port"

[[queues]]
name = "plain"
url = "http://127.0.0.1:9/hook"

[[queues]]
name = "split"
partitions = 3
url = "http://127.0.0.1:9/hook"

[[alerts]]
name = "backlog"
kind = "queue_depth"
queue = "plain"
threshold = 1000.0

[trading]
database_url = "postgres://postgres@127.0.0.1:5432/postgres"
database_schema = "$tag"
public_url = "http://127.0.0.1:$port"
chart_url = "https://www.tradingview.com/chart/{chart}/"
chromium = "/usr/bin/chromium"
screenshots_dir = "$dir/data/screenshots"
backups_dir = "$dir/data/backups"
TOML
  if [ "$1" = keyed ]; then
    # TOML allows the [[api.keys]] table after the others.
    printf '\n[[api.keys]]\nname = "conformance"\nsha256 = "%s"\nscope = "admin"\n' "$hash" >> "$dir/sluice.toml"
  fi
}
server=""
cleanup() {
  [ -n "$server" ] && kill "$server" 2>/dev/null && wait "$server" 2>/dev/null
  psql -q -h 127.0.0.1 -U postgres -d postgres -c "DROP SCHEMA IF EXISTS \"$tag\" CASCADE" >/dev/null 2>&1 || true
  # In Redis, not through xargs: the fuzzer's queue names hold quotes and
  # line breaks.
  redis-cli -u "$redis_url" EVAL "local c='0' repeat local r=redis.call('SCAN',c,'MATCH',ARGV[1],'COUNT',1000) c=r[1] for _,k in ipairs(r[2]) do redis.call('DEL',k) end until c=='0' return 1" 0 "*$tag*" >/dev/null 2>&1 || true
  rm -rf "$dir"
}
trap cleanup EXIT
status=0
for mode in keyed open; do
  echo "--- schemathesis, $mode"
  write_config "$mode"
  "$sluice" --config "$dir/sluice.toml" migrate >/dev/null
  "$sluice" --config "$dir/sluice.toml" serve --no-schedules >"$dir/serve.log" 2>&1 &
  server=$!
  python3 - "$port" <<'PY'
import sys, time, urllib.request
for _ in range(200):
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/health/live", timeout=1)
        break
    except Exception:
        time.sleep(0.1)
PY
  auth=()
  [ "$mode" = keyed ] && auth=(-H "Authorization: Bearer $key")
  run=0
  # Every check but use_after_free (ST301): the API's one collection
  # DELETE, a purge of dead letters, leaves a list that answers 200 with
  # none in it, by design, and the stateful phase read that as a deleted
  # resource still there (two runs in ten). A single letter deleted then
  # asked for again answers 404: api/tests/http.rs checks it.
  schemathesis run "http://127.0.0.1:$port/api/openapi.json" \
    --checks all --exclude-checks use_after_free \
    --workers 1 --seed 1 --max-examples "$examples" "${auth[@]}" || run=$?
  if [ "$run" -ne 0 ]; then
    echo "--- the server's log ($mode)"
    tail -50 "$dir/serve.log"
    status=1
  fi
  kill "$server" 2>/dev/null && wait "$server" 2>/dev/null || true
  server=""
done
exit "$status"
