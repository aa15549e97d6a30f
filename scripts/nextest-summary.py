#!/usr/bin/env python3
"""Turn cargo-nextest's final summary, read from its output on stdin, into
the line `cargo test` prints per binary, which scripts/test.sh counts:

    Summary [ 120.5s] 470 tests run: 468 passed, 2 failed, 3 skipped
 -> test result: FAILED. 468 passed; 2 failed (cargo nextest)

Tests that timed out or were killed count as failed. Exits 1 when no
summary is found (nextest did not run the tests).
"""
import re
import sys


def main() -> int:
    summary = None
    for line in sys.stdin:
        if re.search(r"\bSummary \[", line) and "tests run" in line:
            summary = line
    if summary is None:
        print("test result: FAILED. 0 passed; 1 failed (cargo nextest gave no summary)")
        return 1
    counts = {
        word: int(n)
        for n, word in re.findall(r"(\d+) (passed|failed|timed out|skipped|exec failed)", summary)
    }
    run = re.search(r"(\d+) tests? run", summary)
    passed = counts.get("passed", 0)
    failed = sum(counts.get(w, 0) for w in ("failed", "timed out", "exec failed"))
    # Tests run but neither passed nor counted above (cancelled) failed too.
    if run:
        failed = max(failed, int(run.group(1)) - passed)
    verdict = "ok" if failed == 0 else "FAILED"
    print(f"test result: {verdict}. {passed} passed; {failed} failed (cargo nextest)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
