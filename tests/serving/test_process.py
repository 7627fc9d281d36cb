"""`leadscope serve --workers 2` as operators run it: readiness, metrics over all workers, a raw chunked upload
over the limit, and a graceful shutdown that lets a streaming request finish."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import httpx
import pandas as pd

from benchmarks._load import api_key, free_port

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _wait_ready(base: str, proc: subprocess.Popen, seconds: float = 120) -> None:
    deadline = time.time() + seconds
    while time.time() < deadline:
        assert proc.poll() is None, proc.stderr.read().decode()[-3000:] if proc.stderr else "server exited"
        try:
            if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError("server not ready")


def _chunked_upload(port: int, token: str, size: int) -> bytes:
    """A POST with Transfer-Encoding: chunked and no Content-Length, written by hand on a socket."""
    head = (
        f"POST /v1/scores HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n"
        "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    ).encode()
    body = b'{"customer_ids": ["' + b"C" * size + b'"]}'
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(head)
        try:
            for i in range(0, len(body), 65536):
                part = body[i : i + 65536]
                s.sendall(f"{len(part):x}\r\n".encode() + part + b"\r\n")
            s.sendall(b"0\r\n\r\n")
        except OSError:
            pass  # the server may answer and close before the whole body is sent
        return s.recv(4096)


def test_two_workers_serve_aggregate_metrics_and_shut_down_gracefully(prepared) -> None:
    # broken: a deploy (SIGTERM) would cut a CRM's running batch off mid-stream
    home = str(prepared.settings.home)
    env = {**os.environ, "LEADSCOPE_HOME": home, "LEADSCOPE_LOG_FORMAT": "json"}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    env.pop("PROMETHEUS_MULTIPROCESS_DIR", None)
    token = api_key({"LEADSCOPE_HOME": home}, ("score",))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "leadscope.cli", "serve", "--workers", "2", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    headers = {"authorization": f"Bearer {token}"}
    try:
        _wait_ready(base, proc)
        ids = pd.read_parquet(prepared.settings.raw_dir / "customers.parquet", columns=["customer_id"])
        ids = ids["customer_id"].tolist()
        with httpx.Client(base_url=base, headers=headers, timeout=30) as c:
            for _ in range(20):
                assert c.post("/v1/scores", json={"customer_ids": ids[:3]}).status_code == 200
            metrics = c.get("/metrics").text
        count = next(
            float(line.rsplit(" ", 1)[1])
            for line in metrics.splitlines()
            if line.startswith("leadscope_http_request_duration_seconds_count") and 'route="/v1/scores"' in line
        )
        assert count >= 20  # every worker's requests, whichever worker answered the scrape
        answer = _chunked_upload(port, token, 3 * 1024 * 1024)
        assert answer.startswith(b"HTTP/1.1 413"), answer[:200]

        batch = ids[:3000] + ids[:3000]  # two chunks' worth of ids and models: seconds of streaming
        got: dict = {}
        started = threading.Event()

        def stream() -> None:
            lines = 0
            body = {"customer_ids": batch, "models": ["propensity", "churn"]}
            with httpx.Client(base_url=base, headers=headers, timeout=120) as c:
                with c.stream("POST", "/v1/scores/batch", json=body) as r:
                    got["status"] = r.status_code
                    if r.status_code != 200:  # the error, for the assertion below
                        got["body"] = r.read()[:300]
                        started.set()
                    for line in r.iter_lines():
                        if line:
                            json.loads(line)
                            lines += 1
                            started.set()
            got["lines"] = lines

        th = threading.Thread(target=stream)
        th.start()
        assert started.wait(60)
        t_term = time.time()
        proc.send_signal(signal.SIGTERM)
        th.join(120)
        assert proc.wait(timeout=120) == 0
        assert got["status"] == 200 and got["lines"] == len(batch), (got, len(batch))
        print(
            f"\nSIGTERM during a {len(batch):,}-id stream: all lines delivered, "
            f"exit 0 after {time.time() - t_term:.1f} s"
        )
        try:
            httpx.get(f"{base}/healthz", timeout=2)
            raise AssertionError("server still accepting after shutdown")
        except httpx.HTTPError:
            pass
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    logs = proc.stderr.read().decode() if proc.stderr else ""
    json_lines = [json.loads(x) for x in logs.splitlines() if x.startswith("{")]
    assert any(x.get("route") == "/v1/scores" and x.get("status") == 200 for x in json_lines)
