#!/usr/bin/env python3
"""Check deploy/kubernetes: render the base and each overlay (the subset of
kustomize they use: resources, namespace, replicas, strategic-merge patches),
validate every rendered object with kubernetes-validate against a pinned
Kubernetes version, check what no schema covers (the KEDA ScaledObject, the
kustomizations' references), and check that every probe path and port is
one the `sluice` binary serves, by starting it and asking.

And that the deployment is closed as shipped (docs/security.md): the
Ingress has TLS and routes only the public paths (the webhook and the
screenshots); a NetworkPolicy admits only what must reach each pod; the
API key placeholder of the ConfigMap and the session secret placeholder of
the Secret template each make the API refuse to start until filled.

Usage: scripts/check-kubernetes.py <path to the sluice binary> <redis url>
Exits non-zero with one line per problem.
"""

import copy
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import tomllib
import urllib.error
import urllib.request

import yaml

KUBERNETES_VERSION = "1.30.0"
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "deploy", "kubernetes")
problems = []


def load(path):
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d]


def merge(base, patch):
    """Strategic merge, as far as these manifests need: maps merge, lists
    of maps with a name merge by name, anything else is replaced."""
    if isinstance(base, dict) and isinstance(patch, dict):
        out = dict(base)
        for k, v in patch.items():
            out[k] = merge(base[k], v) if k in base else v
        return out
    if isinstance(base, list) and isinstance(patch, list) and all(
        isinstance(x, dict) and "name" in x for x in base + patch
    ):
        out = [copy.deepcopy(x) for x in base]
        for p in patch:
            for i, b in enumerate(out):
                if b["name"] == p["name"]:
                    out[i] = merge(b, p)
                    break
            else:
                out.append(p)
        return out
    return patch


def render(directory):
    kust = load(os.path.join(directory, "kustomization.yaml"))[0]
    docs = []
    for r in kust.get("resources", []):
        path = os.path.normpath(os.path.join(directory, r))
        if os.path.isdir(path):
            docs += render(path)
        elif os.path.exists(path):
            docs += load(path)
        else:
            problems.append(f"{directory}: resource {r} does not exist")
    if "namespace" in kust:
        for d in docs:
            if d["kind"] != "Namespace":
                d.setdefault("metadata", {})["namespace"] = kust["namespace"]
    names = {(d["kind"], d["metadata"]["name"]) for d in docs}
    for rep in kust.get("replicas", []):
        hits = [d for d in docs if d["metadata"]["name"] == rep["name"] and "replicas" in d.get("spec", {})]
        if not hits:
            problems.append(f"{directory}: replicas names {rep['name']}, which is no workload")
        for d in hits:
            d["spec"]["replicas"] = rep["count"]
    for p in kust.get("patches", []):
        patch = load(os.path.join(directory, p["path"]))[0]
        key = (patch["kind"], patch["metadata"]["name"])
        if key not in names:
            problems.append(f"{directory}: patch {p['path']} targets {key}, which the base lacks")
        docs = [merge(d, patch) if (d["kind"], d["metadata"]["name"]) == key else d for d in docs]
    return docs


def check_keda(docs, where):
    deployments = {d["metadata"]["name"] for d in docs if d["kind"] == "Deployment"}
    for d in docs:
        if d["kind"] != "ScaledObject":
            continue
        target = d["spec"]["scaleTargetRef"]["name"]
        if target not in deployments:
            problems.append(f"{where}: ScaledObject scales {target}, which is no Deployment")
        streams = sorted(t["metadata"]["stream"] for t in d["spec"]["triggers"] if t["type"] == "redis-streams")
        levels = sorted(s.rsplit(":", 1)[-1] for s in streams)
        if levels != [str(n) for n in range(10)]:
            problems.append(f"{where}: ScaledObject watches levels {levels}, not all ten priority streams")
        for t in d["spec"]["triggers"]:
            if t["metadata"].get("consumerGroup") != "workers":
                problems.append(f"{where}: a trigger watches group {t['metadata'].get('consumerGroup')}, not workers")


def validate(docs, where):
    with tempfile.TemporaryDirectory() as tmp:
        files = []
        for i, d in enumerate(docs):
            if d["kind"] == "ScaledObject":
                continue  # a CRD: no schema in kubernetes-validate
            path = os.path.join(tmp, f"{i:02}-{d['kind']}-{d['metadata']['name']}.yaml")
            with open(path, "w") as f:
                yaml.safe_dump(d, f)
            files.append(path)
        run = subprocess.run(
            [sys.executable, "-m", "kubernetes_validate", "--strict", "--quiet", "-k", KUBERNETES_VERSION, *files],
            capture_output=True,
            text=True,
        )
        for line in (run.stdout + run.stderr).splitlines():
            if "ERROR" in line or "WARN" in line:
                problems.append(f"{where}: {line.replace(tmp + '/', '')}")
        if run.returncode != 0 and not problems:
            problems.append(f"{where}: kubernetes-validate exited {run.returncode}")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url):
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
    except OSError:
        return None


# What the Ingress may route from outside: the webhook (its token is its
# credential) and the screenshots (unguessable names). Everything else of
# the API is for the cluster (or a separate, authenticated ingress).
PUBLIC_PREFIXES = ("/webhook/", "/screenshots/")


def check_closed(docs, where):
    for d in docs:
        if d["kind"] != "Ingress":
            continue
        name = d["metadata"]["name"]
        spec = d["spec"]
        hosts = [r.get("host") for r in spec.get("rules", [])]
        tls_hosts = {h for t in spec.get("tls", []) for h in t.get("hosts", [])}
        if not spec.get("tls") or not all(t.get("secretName") for t in spec["tls"]):
            problems.append(f"{where}: Ingress {name} has no TLS (spec.tls with a secretName)")
        for h in hosts:
            if h is None or h not in tls_hosts:
                problems.append(f"{where}: Ingress {name} serves host {h} without TLS")
        for r in spec.get("rules", []):
            for path in r.get("http", {}).get("paths", []):
                p = path.get("path", "/")
                if path.get("pathType") != "Prefix" or not p.startswith(PUBLIC_PREFIXES):
                    problems.append(
                        f"{where}: Ingress {name} routes {p} ({path.get('pathType')}); only {', '.join(PUBLIC_PREFIXES)} may be public"
                    )
        if "defaultBackend" in spec:
            problems.append(f"{where}: Ingress {name} has a defaultBackend: every other path would be public")
    policies = [d for d in docs if d["kind"] == "NetworkPolicy"]
    if not any(p["spec"].get("podSelector") == {} and "Ingress" in p["spec"].get("policyTypes", []) for p in policies):
        problems.append(f"{where}: no NetworkPolicy denies ingress to every pod by default")
    for d in docs:
        if d["kind"] != "Deployment":
            continue
        labels = d["spec"]["template"]["metadata"]["labels"]
        admitted = [
            p for p in policies
            if p["spec"].get("podSelector", {}).get("matchLabels")
            and all(labels.get(k) == v for k, v in p["spec"]["podSelector"]["matchLabels"].items())
            and p["spec"].get("ingress")
        ]
        if not admitted:
            problems.append(f"{where}: no NetworkPolicy admits traffic to Deployment {d['metadata']['name']}")
        for p in admitted:
            for rule in p["spec"]["ingress"]:
                if not rule.get("from"):
                    problems.append(f"{where}: NetworkPolicy {p['metadata']['name']} admits anyone (an ingress rule without from)")


def start_api(binary, config, env, args=("serve", "--no-schedules")):
    """The API with `config` on a free loopback port: (process, port)."""
    port = free_port()
    with tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False) as f:
        f.write(config)
    proc = subprocess.Popen(
        [binary, "--config", f.name, *args, "--listen", f"127.0.0.1:{port}"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    return proc, port, f.name


def refuses(binary, config, env, what, needle):
    """The API must exit non-zero with a message naming `needle`."""
    proc, port, path = start_api(binary, config, env)
    try:
        _, err = proc.communicate(timeout=30)
        if proc.returncode == 0 or needle not in err:
            problems.append(f"{what}: the API did not refuse to start ({proc.returncode}): {err.strip()}")
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        problems.append(f"{what}: the API started")
    finally:
        os.unlink(path)


def filled(config):
    """The ConfigMap's config with its key placeholders filled in."""
    import hashlib
    import re

    key_hash = hashlib.sha256(os.urandom(32)).hexdigest()
    return re.sub(r'sha256 = "REPLACE[^"]*"', f'sha256 = "{key_hash}"', config)


def check_placeholders(docs, binary, redis_url):
    config = next(d for d in docs if d["kind"] == "ConfigMap")["data"]["sluice.toml"]
    secret = load(os.path.join(ROOT, "base", "secret.template.yaml"))[0]["stringData"]
    env = dict(os.environ, SLUICE_REDIS_URL=redis_url, SLUICE_PREFIX="k8scheck-closed", SLUICE_LOG="error")
    env.pop("SLUICE_SESSION_SECRET", None)
    if not tomllib.loads(config).get("api", {}).get("keys"):
        problems.append("ConfigMap: no [[api.keys]] entry to fill in (the API would be open)")
    refuses(binary, config, env, "ConfigMap as shipped", "sha256")
    refuses(
        binary,
        filled(config),
        dict(env, SLUICE_SESSION_SECRET=secret["SLUICE_SESSION_SECRET"]),
        "Secret template's SLUICE_SESSION_SECRET as shipped",
        "session secret",
    )


def check_probes(docs, binary, redis_url):
    """Start each container's command the way the manifest does (its port
    moved to a free loopback one, its placeholders filled in) and ask every
    probe's path."""
    config = filled(next(d for d in docs if d["kind"] == "ConfigMap")["data"]["sluice.toml"])
    listen = tomllib.loads(config)["api"]["listen"]
    for d in docs:
        if d["kind"] != "Deployment":
            continue
        for c in d["spec"]["template"]["spec"]["containers"]:
            ports = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
            args = list(c["args"])
            where = f"{d['metadata']['name']}/{c['name']}"
            local = free_port()
            if "serve" in args:
                served = int(listen.rsplit(":", 1)[1])
                args += ["--listen", f"127.0.0.1:{local}"]
            elif "--metrics-listen" in args:
                i = args.index("--metrics-listen")
                served = int(args[i + 1].rsplit(":", 1)[1])
                args[i + 1] = f"127.0.0.1:{local}"
            else:
                problems.append(f"{where}: serves no HTTP port for its probes")
                continue
            with tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False) as f:
                f.write(config)
            i = args.index("--config")
            args[i + 1] = f.name
            env = dict(
                os.environ,
                SLUICE_REDIS_URL=redis_url,
                SLUICE_PREFIX=f"k8scheck{local}",
                SLUICE_LOG="error",
                SLUICE_SESSION_SECRET=os.urandom(24).hex(),
            )
            proc = subprocess.Popen([binary, *args], env=env, stdout=subprocess.DEVNULL)
            try:
                for kind in ("readinessProbe", "livenessProbe"):
                    probe = c.get(kind, {}).get("httpGet")
                    if not probe:
                        problems.append(f"{where}: no {kind}")
                        continue
                    port = probe["port"]
                    number = ports.get(port, port)
                    if number != served:
                        problems.append(f"{where}: {kind} port {port} is {number}, the process serves {served}")
                    status = None
                    for _ in range(100):
                        status = get(f"http://127.0.0.1:{local}{probe['path']}")
                        if status is not None:
                            break
                        time.sleep(0.1)
                    if status != 200:
                        problems.append(f"{where}: {kind} {probe['path']} answered {status}")
            finally:
                proc.terminate()
                proc.wait(timeout=20)
                os.unlink(f.name)


def main():
    binary, redis_url = sys.argv[1], sys.argv[2]
    base = render(os.path.join(ROOT, "base"))
    validate(base, "base")
    check_keda(base, "base")
    check_closed(base, "base")
    validate(load(os.path.join(ROOT, "base", "secret.template.yaml")), "secret template")
    for overlay in sorted(os.listdir(os.path.join(ROOT, "overlays"))):
        docs = render(os.path.join(ROOT, "overlays", overlay))
        validate(docs, f"overlay {overlay}")
        check_keda(docs, f"overlay {overlay}")
        check_closed(docs, f"overlay {overlay}")
    check_placeholders(base, binary, redis_url)
    check_probes(base, binary, redis_url)
    for p in problems:
        print(f"kubernetes: {p}")
    if problems:
        sys.exit(1)
    print(json.dumps({"kubernetes": "ok", "version": KUBERNETES_VERSION}))


if __name__ == "__main__":
    main()
