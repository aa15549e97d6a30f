#!/usr/bin/env python3
"""Print the paths of a package's integration-test binaries, read from
`cargo test --no-run --message-format=json` on stdin.

Usage: test-binaries.py PACKAGE TEST [TEST ...]
Prints one path per TEST found, in the order given; exits 1 if any is
missing.
"""
import json
import sys


def of_package(package_id: str, package: str) -> bool:
    """Whether a cargo package id names `package`: `path+file:///…#name@1.0`
    (cargo 1.77 on) or `name 1.0 (path+file:///…)` (before)."""
    return f"#{package}@" in package_id or package_id.startswith(package + " ")


def main() -> int:
    if len(sys.argv) < 3:
        print("usage: test-binaries.py PACKAGE TEST [TEST ...]", file=sys.stderr)
        return 2
    package, wanted = sys.argv[1], sys.argv[2:]
    found = {}
    for line in sys.stdin:
        try:
            message = json.loads(line)
        except ValueError:
            continue
        target = message.get("target") or {}
        if (
            message.get("reason") == "compiler-artifact"
            and message.get("executable")
            and target.get("kind") == ["test"]
            and target.get("name") in wanted
            and of_package(message.get("package_id", ""), package)
        ):
            found[target["name"]] = message["executable"]
    missing = [name for name in wanted if name not in found]
    for name in wanted:
        if name in found:
            print(found[name])
    if missing:
        print(f"test binaries not found: {' '.join(missing)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
