#!/usr/bin/env python3
"""Check deploy/kubernetes: render the base and each overlay (the subset of
kustomize they use: resources, namespace, replicas, strategic-merge patches),
validate every rendered object with kubernetes-validate against a pinned
Kubernetes version, check what no schema covers (the KEDA ScaledObject, the
kustomizations' references), and check that every probe path and port is
one the `sluice` binary serves, by starting it and asking.

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


def check_probes(docs, binary, redis_url):
    """Start each container's command the way the manifest does (its port
    moved to a free loopback one) and ask every probe's path."""
    config = next(d for d in docs if d["kind"] == "ConfigMap")["data"]["sluice.toml"]
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
            env = dict(os.environ, SLUICE_REDIS_URL=redis_url, SLUICE_PREFIX=f"k8scheck{local}", SLUICE_LOG="error")
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
    validate(load(os.path.join(ROOT, "base", "secret.template.yaml")), "secret template")
    for overlay in sorted(os.listdir(os.path.join(ROOT, "overlays"))):
        docs = render(os.path.join(ROOT, "overlays", overlay))
        validate(docs, f"overlay {overlay}")
        check_keda(docs, f"overlay {overlay}")
    check_probes(base, binary, redis_url)
    for p in problems:
        print(f"kubernetes: {p}")
    if problems:
        sys.exit(1)
    print(json.dumps({"kubernetes": "ok", "version": KUBERNETES_VERSION}))


if __name__ == "__main__":
    main()
