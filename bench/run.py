"""``make bench``: every figure of the fast-path issue, in one run, one table.

    python -m bench.run [--sizes 1000,10000,100000] [--http-size 10000]
                        [--casbin-size 1000] [--seconds 10] [--out FILE]

Data sets are built by ``bench/dataset.py`` and loaded into SQLite files under
``.bench/`` (kept between runs: building 100,000 companies takes a minute or
two). The service is started as a user starts it (``orgguard serve``, one
uvicorn worker) and driven with wrk over loopback; the in-process figures time
``Authorizer.check``, the function the check endpoint calls.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.dataset import REPO, DataSet, Request, build, write_casbin_csv

WORK = REPO / ".bench"
VENV_BIN = Path(sys.executable).parent
DATA_VERSION = "1"  # bump when dataset.py changes what it builds


@dataclass
class Row:
    figure: str
    measured: str
    target: str
    met: bool | None  # None: a figure without a target

    def line(self) -> str:
        verdict = {True: "met", False: "**not met**", None: ""}[self.met]
        return f"| {self.figure} | {self.measured} | {self.target} | {verdict} |"


@dataclass
class Report:
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, figure: str, measured: str, target: str, met: bool | None) -> None:
        row = Row(figure, measured, target, met)
        self.rows.append(row)
        print(row.line(), flush=True)


# -- data ---------------------------------------------------------------------


def database_for(size: int) -> tuple[Path, DataSet]:
    """The data set of this size and a SQLite file holding it (cached)."""
    from orgguard.access import Caller
    from orgguard.service import Authorizer
    from orgguard.storage.database import make_engine
    from orgguard.storage.store import PolicyStore

    data = build(size)
    path = WORK / f"companies-{size}-v{DATA_VERSION}.db"
    if not path.exists():
        started = time.perf_counter()
        partial = path.with_suffix(".partial")
        for stale in WORK.glob(f"{partial.name}*"):
            stale.unlink()
        store = PolicyStore(make_engine(f"sqlite:///{partial}"))
        store.prepare_schema()
        authorizer = Authorizer.open(store)
        authorizer.load_snapshot(Caller("bench", "operator"), data.snapshot)
        store.engine.dispose()
        partial.rename(path)
        print(
            f"# built {path.name}: {len(data.snapshot.companies)} companies, "
            f"{data.memberships} memberships in {time.perf_counter() - started:.0f} s",
            flush=True,
        )
    return path, data


@contextmanager
def copy_of(database: Path) -> Iterator[Path]:
    """A scratch copy, so measurements that write leave the cache untouched."""
    with tempfile.TemporaryDirectory(dir=WORK) as scratch:
        copy = Path(scratch) / "db.sqlite"
        shutil.copyfile(database, copy)
        yield copy


# -- in process ---------------------------------------------------------------


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


def time_calls(
    call: Callable[..., Any], requests: Sequence[tuple[str | None, ...]]
) -> list[float]:
    """Microseconds per call."""
    clock = time.perf_counter_ns
    spent = []
    for request in requests:
        started = clock()
        call(*request)
        spent.append((clock() - started) / 1000)
    return spent


def in_process(
    report: Report, sizes: list[int], casbin_size: int, requests_each: int
) -> None:
    from orgguard.bootstrap import open_authorizer
    from orgguard.settings import Settings

    medians: dict[int, float] = {}
    for size in sizes:
        database, data = database_for(size)
        authorizer = open_authorizer(
            Settings(database_url=f"sqlite:///{database}"), first_start_load=False
        )
        requests = data.requests(requests_each)
        # check_at: what both the fast path and the route call.
        time_calls(authorizer.check_at, requests[:5000])  # warm up
        spent = time_calls(authorizer.check_at, requests)
        median, p99 = statistics.median(spent), percentile(spent, 0.99)
        medians[size] = median
        allowed = sum(authorizer.check(*r).allowed for r in requests) / len(requests)
        report.add(
            f"in-process decision, {size:,} companies "
            f"({data.memberships:,} memberships, {allowed:.0%} allowed)",
            f"median {median:.2f} us, p99 {p99:.2f} us",
            "median <= 5 us, p99 <= 50 us" if size >= 10_000 else "",
            (median <= 5 and p99 <= 50) if size >= 10_000 else None,
        )
        if size == casbin_size:
            against_pycasbin(report, data, authorizer.check)
        authorizer.store.engine.dispose()
        del authorizer
    if len(medians) > 1:
        small, large = min(medians), max(medians)
        growth = medians[large] / medians[small]
        report.add(
            f"growth of the median, {small:,} to {large:,} companies",
            f"{growth:.2f}x",
            "<= 1.5x",
            growth <= 1.5,
        )


def against_pycasbin(
    report: Report, data: DataSet, ours: Callable[..., Any], samples: int = 300
) -> None:
    import casbin

    csv = WORK / "casbin-policy.csv"
    write_casbin_csv(data.snapshot, csv)
    model = str(REPO / "model.conf")
    requests = data.requests(samples, seed=11)
    with_owner = [(*r[:4], r[4] or "") for r in requests]
    our_times = time_calls(ours, requests)
    our_median = statistics.median(our_times)
    companies = len(data.snapshot.companies)
    enforcers: dict[str, Callable[[], Any]] = {
        "casbin.Enforcer": lambda: casbin.Enforcer(model, str(csv)),
        # Filter p rules by resource and action, the only request fields a p
        # rule matches literally (its subject is a group, its domain may be *).
        "casbin.FastEnforcer, key order [2, 3]": lambda: casbin.FastEnforcer(
            model, str(csv), cache_key_order=[2, 3]
        ),
    }
    targets = {"casbin.Enforcer": 50, "casbin.FastEnforcer, key order [2, 3]": 20}
    for name, make in enforcers.items():
        started = time.perf_counter()
        enforcer: Any = make()
        loaded = time.perf_counter() - started
        spent = time_calls(enforcer.enforce, with_owner)
        differ = sum(
            enforcer.enforce(*theirs) != ours(*mine).allowed
            for theirs, mine in zip(with_owner, requests, strict=True)
        )
        speedup = statistics.median(spent) / our_median
        report.add(
            f"orgguard vs {name}, {companies:,} companies, same {samples} requests",
            f"{speedup:,.0f}x faster (median {statistics.median(spent):,.0f} us vs "
            f"{our_median:.2f} us; {differ} answers differ; load {loaded:.1f} s)",
            f">= {targets[name]}x",
            speedup >= targets[name] and differ == 0,
        )


def membership_changes(report: Report, sizes: list[int], writes: int = 300) -> None:
    from orgguard.access import Caller
    from orgguard.bootstrap import open_authorizer
    from orgguard.settings import Settings

    operator = Caller("bench", "operator")
    for size in sizes:
        database, data = database_for(size)
        with copy_of(database) as copy:
            authorizer = open_authorizer(
                Settings(database_url=f"sqlite:///{copy}"), first_start_load=False
            )
            rng = random.Random(3)
            spent = []
            for n in range(writes):
                company = f"c{rng.randrange(size):06d}"
                user = f"bench-{n}@x.example"
                started = time.perf_counter()
                authorizer.set_member(operator, company, user, ["buyer"])  # add
                middle = time.perf_counter()
                authorizer.delete_member(operator, company, user)  # remove
                spent += [middle - started, time.perf_counter() - middle]
            authorizer.store.engine.dispose()
        median = statistics.median(spent) * 1000
        target = data.memberships >= 500_000
        report.add(
            f"membership add/remove, SQLite, {data.memberships:,} memberships",
            f"median {median:.2f} ms, p99 {percentile(spent, 0.99) * 1000:.2f} ms",
            "median <= 3 ms at 500,000" if target else "",
            median <= 3 if target else None,
        )


# -- over HTTP ------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def post(port: int, path: str, body: Any, key: str) -> int:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {key}"},
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        status: int = response.status
        return status


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    port: int
    key: str
    started_in: float
    log: Path

    def rss_mb(self) -> tuple[float, float]:
        """Resident and peak resident memory, MB."""
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        values = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        return (
            int(values["VmRSS"].split()[0]) / 1024,
            int(values["VmHWM"].split()[0]) / 1024,
        )

    def stop(self) -> str:
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=30)
        return self.log.read_text()


def start_server(database: Path, probe: Request) -> Server:
    """``orgguard serve`` on the database; ready when a check answers 200."""
    workdir = Path(tempfile.mkdtemp(dir=WORK))
    port = free_port()
    env = {
        **os.environ,
        "ORGGUARD_DATABASE_URL": f"sqlite:///{database}",
        "ORGGUARD_LOG_LEVEL": "info",
        "ORGGUARD_PORT": str(port),
    }
    log = workdir / "server.log"
    started = time.perf_counter()
    process = subprocess.Popen(
        [str(VENV_BIN / "orgguard"), "serve", "--demo-key"],
        cwd=workdir,
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    user, company, resource, action, _owner = probe
    body = {"user": user, "company": company, "resource": resource, "action": action}
    deadline = started + 300
    while time.perf_counter() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited:\n{log.read_text()}")
        key_file = workdir / "demo-admin.key"
        try:
            key = key_file.read_text().strip()
            if post(port, "/v1/check", body, key) == 200:
                return Server(process, port, key, time.perf_counter() - started, log)
        except (OSError, ValueError):
            time.sleep(0.02)
    process.kill()
    raise RuntimeError("the server did not start in 300 s")


@dataclass
class WrkResult:
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    errors: int


def wrk(port: int, path: str, bodies: Path, key: str | None, seconds: int) -> WrkResult:
    command = [
        "wrk",
        "-t2",
        "-c32",
        f"-d{seconds}s",
        "--latency",
        "-H",
        "Content-Type: application/json",
        "-s",
        str(REPO / "bench" / "post.lua"),
    ]
    if key:
        command += ["-H", f"Authorization: Bearer {key}"]
    command += [f"http://127.0.0.1:{port}{path}", "--", str(bodies)]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    return _parse_wrk(output)


def _parse_wrk(output: str) -> WrkResult:
    def ms(text: str) -> float:
        for unit, factor in (("us", 0.001), ("ms", 1.0), ("s", 1000.0)):
            if text.endswith(unit):
                return float(text[: -len(unit)]) * factor
        return float(text)

    latency: dict[str, float] = {}
    rate, errors = 0.0, 0
    for line in output.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0].endswith("%"):
            latency[parts[0]] = ms(parts[1])
        elif line.startswith("Requests/sec:"):
            rate = float(parts[1])
        elif line.strip().startswith("Non-2xx"):
            errors += int(parts[-1])
        elif line.strip().startswith("Socket errors"):
            errors += sum(int(p.rstrip(",")) for p in parts if p.rstrip(",").isdigit())
    return WrkResult(rate, latency.get("50%", 0.0), latency.get("99%", 0.0), errors)


def ensure_wrk() -> None:
    if shutil.which("wrk"):
        return
    print("# installing wrk (Debian package)", flush=True)
    apt = ["apt-get", "install", "-y", "-q", "wrk"]
    if os.geteuid() != 0:
        apt.insert(0, "sudo")
    subprocess.run(apt, check=True, capture_output=True)


def over_http(report: Report, size: int, seconds: int) -> None:
    ensure_wrk()
    database, data = database_for(size)
    requests = data.requests(20_000, seed=5)
    bodies = WORK / "check-bodies.jsonl"
    batches = WORK / "batch-bodies.jsonl"
    with bodies.open("w") as out:
        for user, company, resource, action, owner in requests:
            body = {"user": user, "company": company, "resource": resource,
                    "action": action}  # fmt: skip
            if owner:
                body["owner"] = owner
            out.write(json.dumps(body) + "\n")
    lines = bodies.read_text().splitlines()
    with batches.open("w") as out:
        for start in range(0, 200 * 100, 100):
            joined = ",".join(lines[start : start + 100])
            out.write('{"checks": [' + joined + "]}\n")

    with copy_of(database) as copy:
        server = start_server(copy, requests[0])
        rss, peak = server.rss_mb()
        report.add(
            f"cold start, database to serving, SQLite, {size:,} companies",
            f"{server.started_in:.1f} s, {rss:.0f} MB RSS (peak {peak:.0f} MB)",
            "<= 5 s and <= 600 MB" if size == 10_000 else "",
            (server.started_in <= 5 and peak <= 600) if size == 10_000 else None,
        )
        trivial = start_trivial()
        try:
            wrk(server.port, "/v1/check", bodies, server.key, 2)  # warm up
            checks = wrk(server.port, "/v1/check", bodies, server.key, seconds)
            wrk(trivial[1], "/trivial", bodies, None, 2)
            baseline = wrk(trivial[1], "/trivial", bodies, None, seconds)
            batch = wrk(server.port, "/v1/check/batch", batches, server.key, seconds)
        finally:
            trivial[0].send_signal(signal.SIGTERM)
            trivial[0].wait(timeout=30)
            log = server.stop()
    share = checks.requests_per_s / baseline.requests_per_s
    report.add(
        "POST /v1/check, 1 uvicorn worker, 32 connections (API key auth)",
        f"{checks.requests_per_s:,.0f} req/s, p50 {checks.p50_ms:.1f} ms, "
        f"p99 {checks.p99_ms:.1f} ms, {checks.errors} errors",
        ">= 4,000 req/s, p99 <= 20 ms",
        checks.requests_per_s >= 4000 and checks.p99_ms <= 20 and not checks.errors,
    )
    report.add(
        "... as a share of a trivial FastAPI endpoint, same run",
        f"{share:.0%} (trivial: {baseline.requests_per_s:,.0f} req/s)",
        ">= 70%",
        share >= 0.7,
    )
    decisions = batch.requests_per_s * 100
    report.add(
        "POST /v1/check/batch, 100 checks each, 1 worker",
        f"{decisions:,.0f} decisions/s (p99 {batch.p99_ms:.1f} ms, "
        f"{batch.errors} errors)",
        ">= 100,000 decisions/s",
        decisions >= 100_000 and not batch.errors,
    )
    # The server's log lines are JSON objects; the demo key is a plain line.
    messages = [
        json.loads(line)["message"] for line in log.splitlines() if line[:1] == "{"
    ]
    pauses = [m for m in messages if m.startswith(("gc: ", "gc pause"))]
    longest = 0.0
    for message in pauses:
        if "longest pause" in message:
            longest = float(message.rsplit("longest pause", 1)[1].split()[0])
    report.add(
        "garbage-collector pauses during the HTTP run",
        pauses[-1] if pauses else "no summary logged",
        "no pause over 50 ms",
        bool(pauses) and longest <= 50,
    )


def start_trivial() -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    process = subprocess.Popen(
        [
            str(VENV_BIN / "uvicorn"),
            "bench.trivial:app",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--no-access-log",
        ],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.perf_counter() + 30
    while time.perf_counter() < deadline:
        try:
            post(port, "/trivial", {}, "none")
            return process, port
        except OSError:
            time.sleep(0.05)
    process.kill()
    raise RuntimeError("the trivial app did not start")


def cold_start_only(report: Report, size: int) -> None:
    database, data = database_for(size)
    with copy_of(database) as copy:
        server = start_server(copy, data.requests(1)[0])
        rss, peak = server.rss_mb()
        server.stop()
    report.add(
        f"cold start, database to serving, SQLite, {size:,} companies",
        f"{server.started_in:.1f} s, {rss:.0f} MB RSS (peak {peak:.0f} MB)",
        "<= 30 s" if size >= 100_000 else "",
        server.started_in <= 30 if size >= 100_000 else None,
    )


# -- the run ----------------------------------------------------------------------


def machine() -> str:
    cpu = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    memory = Path("/proc/meminfo").read_text().splitlines()[0].split()[1]
    return (
        f"{cpu}, {os.cpu_count()} cores, {int(memory) // 1024 // 1024} GiB, "
        f"Python {platform.python_version()}, {platform.system()} "
        f"{platform.release()}"
    )


def machine_speed() -> str:
    """A fixed pure-Python loop, so runs on a shared VM can be compared: the
    same machine was seen to vary by more than 1.5x within an hour."""
    started = time.perf_counter()
    total = 0
    for number in range(10_000_000):
        total += number
    return f"10M-addition reference loop {time.perf_counter() - started:.2f} s"


def commit() -> str:
    result = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
        cwd=REPO,
    )  # fmt: skip
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"],
        capture_output=True, text=True, cwd=REPO,
    ).stdout.strip()  # fmt: skip
    return result.stdout.strip() + (" (with uncommitted changes)" if dirty else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--http-size", type=int, default=10_000)
    parser.add_argument("--casbin-size", type=int, default=1_000)
    parser.add_argument("--requests", type=int, default=200_000)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    sizes = sorted(int(s) for s in args.sizes.split(","))
    WORK.mkdir(exist_ok=True)

    started = time.perf_counter()
    command = "python -m bench.run " + " ".join(sys.argv[1:])
    header = [
        f"- date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        f"- commit: {commit()}",
        f"- machine: {machine()}; {machine_speed()}",
        f"- command: `{command.strip()}` (`make bench`)",
    ]
    print("\n".join(header))
    report = Report()
    print("\n| figure | measured | target | |\n| --- | --- | --- | --- |", flush=True)
    in_process(report, sizes, args.casbin_size, args.requests)
    over_http(report, args.http_size, args.seconds)
    for size in sizes:
        if size > args.http_size:
            cold_start_only(report, size)
    membership_changes(report, [s for s in sizes if s <= args.http_size])
    elapsed = time.perf_counter() - started
    print(f"\n# {elapsed / 60:.1f} minutes", flush=True)
    if args.out:
        table = "\n".join(
            ["| figure | measured | target | |", "| --- | --- | --- | --- |"]
            + [row.line() for row in report.rows]
        )
        args.out.write_text(
            "\n".join(header)
            + f"\n- duration: {elapsed / 60:.1f} minutes\n\n"
            + table
            + "\n"
        )


if __name__ == "__main__":
    main()
