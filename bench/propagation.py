"""``make bench-replicas``: how long a write on one replica takes to show on
another (issue 6: p99 at most 100 ms).

    python -m bench.propagation [--writes 300] [--out FILE]

Two ``orgguard serve`` processes over one new PostgreSQL database (on
``ORGGUARD_TEST_POSTGRES``, default the local server), each as a user starts
it, with the periodic refresh off (``ORGGUARD_REFRESH_SECONDS=600``), so only
LISTEN/NOTIFY and the change log carry writes between them. For each write,
a membership set on replica A, the clock starts when A's answer arrives (the
write is acknowledged) and stops when a check on replica B, asked again and
again over one keep-alive connection, first allows it.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tests.databases import scratch_database

from bench.dataset import REPO
from bench.run import free_port, percentile

TARGET_P99_MS = 100.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writes", type=int, default=300)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)

    with scratch_database("orgguard_bench") as url:
        delays = measure(url, args.writes)
    report = render(delays, args.writes)
    print(report)
    if args.out is not None:
        args.out.write_text(report)
    return 0 if percentile(delays, 0.99) <= TARGET_P99_MS else 1


def measure(url: str, writes: int) -> list[float]:
    folder = Path(tempfile.mkdtemp(prefix="orgguard-propagation-"))
    ports = [free_port(), free_port()]
    env = {
        **os.environ,
        "ORGGUARD_DATABASE_URL": url,
        "ORGGUARD_POLICY_DIR": str(REPO / "policies"),
        "ORGGUARD_REFRESH_SECONDS": "600",
        "ORGGUARD_LOG_LEVEL": "warning",
    }
    command = [sys.executable, "-m", "orgguard", "serve", "--port"]
    a = subprocess.Popen([*command, str(ports[0]), "--demo-key"], env=env, cwd=folder)
    _wait_ready(ports[0])
    b = subprocess.Popen([*command, str(ports[1])], env=env, cwd=folder)
    try:
        _wait_ready(ports[1])
        key = (folder / "demo-admin.key").read_text().strip()
        writer = _Client(ports[0], key)
        reader = _Client(ports[1], key)
        delays = []
        for n in range(writes):
            user = f"p{n}@acme.example"
            status, _ = writer.call(
                "PUT", f"/v1/companies/acme/members/{user}", {"groups": ["buyer"]}
            )
            acknowledged = time.perf_counter()
            assert status == 200
            body = {"user": user, "company": "acme", "resource": "orders",
                    "action": "checkout"}  # fmt: skip
            while True:
                status, answer = reader.call("POST", "/v1/check", body)
                if status == 200 and answer["allowed"]:
                    break
                if time.perf_counter() - acknowledged > 10:
                    raise AssertionError(f"write {n} never reached replica B")
            delays.append((time.perf_counter() - acknowledged) * 1000)
        return delays
    finally:
        for process in (a, b):
            process.terminate()
            process.wait(timeout=30)


def render(delays: list[float], writes: int) -> str:
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],
        capture_output=True, text=True, cwd=REPO, check=False,
    ).stdout.strip()  # fmt: skip
    p99 = percentile(delays, 0.99)
    verdict = "met" if p99 <= TARGET_P99_MS else "**not met**"
    lines = [
        "# Propagation between replicas",
        "",
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, commit {commit}, "
        f"{platform.machine()} with {os.cpu_count()} cores, "
        f"`python -m bench.propagation --writes {writes}`; two replicas over "
        "one PostgreSQL on this machine, refresh off.",
        "",
        "| figure | measured | target | |",
        "| --- | --- | --- | --- |",
        f"| median | {statistics.median(delays):.1f} ms | | |",
        f"| p95 | {percentile(delays, 0.95):.1f} ms | | |",
        f"| p99 | {p99:.1f} ms | <= {TARGET_P99_MS:.0f} ms | {verdict} |",
        f"| max | {max(delays):.1f} ms | | |",
        "",
    ]
    return "\n".join(lines)


class _Client:
    def __init__(self, port: int, key: str) -> None:
        self._connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        self._headers = {
            "Authorization": f"Bearer {key}",
            "Content-Type": "application/json",
        }

    def call(self, method: str, path: str, body: Any) -> tuple[int, Any]:
        self._connection.request(method, path, json.dumps(body), self._headers)
        response = self._connection.getresponse()
        return response.status, json.loads(response.read())


def _wait_ready(port: int) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            connection.request("GET", "/readyz")
            if connection.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"the replica on port {port} did not start")


if __name__ == "__main__":
    sys.exit(main())
