#!/usr/bin/env bash
# Check the deployment files as far as this machine can without a Docker
# engine: compose.yaml parses and every long-running service has a
# healthcheck; it is closed as shipped (every published port bound to
# loopback, every password and the API's keys and session secret taken from
# the environment, none in the files); the Grafana dashboard is valid JSON and queries only metrics
# Sluice exports; Prometheus's config and alert rules pass `promtool check`;
# a live `/metrics` of `sluice serve` and of `sluice work --metrics-listen`
# passes `promtool check metrics`. Installs Debian's prometheus package (for
# promtool) when it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v promtool >/dev/null; then
  apt-get install -y --no-install-recommends prometheus >/dev/null
fi

python3 - <<'PY'
import json, re, yaml
compose = yaml.safe_load(open("compose.yaml"))
services = compose["services"]
for name, svc in services.items():
    one_shot = svc.get("restart") == "no"
    if not one_shot and "healthcheck" not in svc:
        raise SystemExit(f"compose.yaml: service {name} has no healthcheck")
print(f"compose.yaml: {len(services)} services parse; every long-running one has a healthcheck")
closed = []
required = re.compile(r"^\$\{[A-Z0-9_]+:\?[^}]+\}$")
for name, svc in services.items():
    for port in svc.get("ports", []):
        if isinstance(port, dict):
            bound = port.get("host_ip")
        else:
            parts = str(port).split(":")
            bound = parts[0] if len(parts) == 3 else None
        if bound not in ("127.0.0.1", "::1"):
            closed.append(f"service {name} publishes {port} on every interface")
    env = svc.get("environment", {})
    for var, value in env.items():
        secret = any(w in var for w in ("PASSWORD", "SECRET", "API_KEYS", "COOKIE_KEY"))
        if secret and not required.match(str(value)):
            closed.append(f"service {name}: {var} is written in the file, not required from the environment")
        if var == "SLUICE_DATABASE_URL" and "${" not in str(value):
            closed.append(f"service {name}: SLUICE_DATABASE_URL holds a password in the file")
api = services["api"].get("environment", {})
for var in ("SLUICE_API_KEYS", "SLUICE_SESSION_SECRET"):
    if not required.match(str(api.get(var, ""))):
        closed.append(f"service api: {var} is not required from the environment")
toml_text = open("deploy/sluice/sluice.toml").read()
if re.search(r"://[^/\s\"]*:[^@/\s\"]+@", toml_text):
    closed.append("deploy/sluice/sluice.toml: a URL holds a password")
for c in closed:
    print(f"compose.yaml: {c}")
if closed:
    raise SystemExit(1)
print("compose.yaml: every port on loopback; passwords, keys and secrets come from the environment")
dash = json.load(open("deploy/grafana/dashboards/sluice.json"))
exprs = [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]
names = set(re.findall(r"\b(sluice_[a-z_]+?)(?:_bucket)?\b", " ".join(exprs)))
open("/tmp/sluice-dashboard-metrics", "w").write("\n".join(sorted(names)))
print(f"grafana dashboard: {len(dash['panels'])} panels, metrics {sorted(names)}")
PY

promtool check config deploy/prometheus/prometheus.yml
promtool check rules deploy/prometheus/alerts.yml

cargo build -q -p sluice --bin sluice
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
wport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
config=$(mktemp --suffix .toml)
cat > "$config" <<TOML
redis_url = "${SLUICE_REDIS_URL:-redis://127.0.0.1:6379/}"
prefix = "check-deploy-$$"
[[queues]]
name = "webhooks"
url = "http://127.0.0.1:9/hook"
TOML
./target/debug/sluice --config "$config" serve --listen "127.0.0.1:$port" --no-schedules >/dev/null 2>&1 &
api=$!
./target/debug/sluice --config "$config" work --no-schedules --metrics-listen "127.0.0.1:$wport" >/dev/null 2>&1 &
worker=$!
cleanup() {
  kill "$api" "$worker" 2>/dev/null || true
  redis-cli --scan --pattern "check-deploy-$$:*" | xargs -r redis-cli del >/dev/null
  rm -f "$config"
}
trap cleanup EXIT
for _ in $(seq 100); do
  curl -fsS "http://127.0.0.1:$port/health/ready" >/dev/null 2>&1 && break
  sleep 0.1
done
curl -fsS -XPOST "http://127.0.0.1:$port/api/queues/webhooks/jobs" \
  -H 'content-type: application/json' -d '{"payload":{"check":1}}' >/dev/null
sleep 1
curl -fsS "http://127.0.0.1:$port/metrics" > /tmp/sluice-api-metrics
curl -fsS "http://127.0.0.1:$wport/metrics" > /tmp/sluice-worker-metrics
echo "API /metrics:"; promtool check metrics < /tmp/sluice-api-metrics
echo "worker /metrics:"; promtool check metrics < /tmp/sluice-worker-metrics
missing=0
# Series that appear once Redis has failed, not before.
on_failure="sluice_redis_backoffs_total sluice_redis_failing sluice_redis_retries_total"
while read -r metric; do
  case " $on_failure " in *" $metric "*) continue ;; esac
  if ! grep -q "^${metric}[{ _]" /tmp/sluice-api-metrics /tmp/sluice-worker-metrics \
     && ! grep -q "^# TYPE ${metric} " /tmp/sluice-api-metrics /tmp/sluice-worker-metrics; then
    echo "dashboard queries $metric, which no Sluice process exports yet"; missing=1
  fi
done < /tmp/sluice-dashboard-metrics
[ "$missing" = 0 ] || exit 1
echo "every metric the dashboard queries is exported (the Redis failure series once Redis has failed)"
