"""Closed-loop HTTP load on loopback with aiohttp: N workers, fixed duration, latency percentiles."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import numpy as np


@dataclass
class Result:
    name: str
    requests: int
    errors: int
    seconds: float
    latencies_ms: np.ndarray

    @property
    def rps(self) -> float:
        return self.requests / self.seconds

    def pct(self, q: float) -> float:
        return float(np.percentile(self.latencies_ms, q)) if len(self.latencies_ms) else float("nan")

    def row(self) -> str:
        return (
            f"{self.name:<28} {self.rps:>9.0f} req/s   p50 {self.pct(50):6.2f} ms   "
            f"p99 {self.pct(99):6.2f} ms   errors {self.errors}"
        )


async def drive(
    name: str,
    url: str,
    *,
    method: str,
    body: Callable[[int], bytes | None],
    concurrency: int,
    seconds: float,
    max_requests: int = 2_000_000,
    headers: dict[str, str] | None = None,
) -> Result:
    """Each worker sends its next request as soon as the previous answers (bounded in time and count)."""
    lat: list[float] = []
    errors = 0
    stop = time.perf_counter() + seconds
    headers = headers or {"content-type": "application/json"}

    async def worker(session: aiohttp.ClientSession, w: int) -> None:
        nonlocal errors
        i = w
        while time.perf_counter() < stop and len(lat) < max_requests:
            t0 = time.perf_counter()
            async with session.request(method, url, data=body(i), headers=headers) as r:
                await r.read()
                if r.status >= 400:
                    errors += 1
            lat.append((time.perf_counter() - t0) * 1000)
            i += concurrency

    conn = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=conn) as session:
        t0 = time.perf_counter()
        await asyncio.gather(*(worker(session, w) for w in range(concurrency)))
        elapsed = time.perf_counter() - t0
    return Result(name, len(lat), errors, elapsed, np.array(lat))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    proc: subprocess.Popen
    port: int
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"content-type": "application/json", "authorization": f"Bearer {self.token}"}

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=60)
        try:
            os.killpg(self.proc.pid, 9)  # whatever of the session outlived its parent (workers, the applier)
        except ProcessLookupError:
            pass


def api_key(
    env: dict[str, str] | None = None, scopes: tuple[str, ...] = ("admin",), rate: str = "10000000/minute"
) -> str:
    """A fresh key in the key table the server (started with `env`) will read."""
    from leadscope.settings import Settings
    from serving.keys import KeyStore

    saved = dict(os.environ)
    os.environ.update(env or {})
    try:
        settings = Settings()
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return KeyStore(settings.database_url).create("benchmark", list(scopes), rate)[0]


def start_server(port: int, *, cwd: Path, env: dict[str, str] | None = None, workers: int = 1) -> Server:
    """The app (plus the benchmark echo route) in a child process; returns once /readyz answers 200 and the
    cache prewarm is over."""
    import tempfile
    import urllib.request

    token = api_key(env)
    # stderr into a file, not a pipe nobody reads: with several workers their warnings fill a pipe's 64 KiB and
    # every worker blocks on its next write; a session of its own so stop() ends the workers too
    errors = tempfile.TemporaryFile()
    proc = subprocess.Popen(
        [sys.executable, "-m", "benchmarks._server", str(port), str(workers)],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        stdout=subprocess.DEVNULL,
        stderr=errors,
        start_new_session=True,
    )
    deadline = time.time() + float(os.environ.get("LEADSCOPE_BENCH_READY_SECONDS", "300"))
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as r:
                body = json.loads(r.read())
                # measure after the prewarm, once the live applier and intake processes have started (start-up is CPU)
                started = "starting" not in (body.get("live_applier"), body.get("live_intake"))
                if r.status == 200 and not body.get("warming") and started:
                    return Server(proc, port, token)
            time.sleep(0.2)
        except OSError:
            time.sleep(0.2)
        if proc.poll() is not None:
            errors.seek(0)
            raise RuntimeError(f"server exited: {errors.read().decode(errors='replace')[-2000:]}")
    os.killpg(proc.pid, 9)
    errors.seek(0)
    raise RuntimeError(f"server did not become ready in time: {errors.read().decode(errors='replace')[-2000:]}")


def run_phases(phases: list[Callable], work: Path) -> dict[str, tuple[str, float, float, int]]:
    """Each phase in its own spawned process (clean memory high-water mark); returns name → result row."""
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    out = {}
    for phase in phases:
        q = ctx.Queue()
        p = ctx.Process(target=phase, args=(work, q))
        p.start()
        p.join()
        if p.exitcode != 0:
            raise SystemExit(f"{phase.__name__} failed (exit code {p.exitcode})")
        out[phase.__name__] = q.get()
    return out


def interleaved_args(doc: str | None) -> argparse.Namespace:
    """The arguments of the benchmarks that compare settings in fresh servers, interleaved round by round."""
    ap = argparse.ArgumentParser(description=doc)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--concurrency", type=int, default=8)
    return ap.parse_args()
