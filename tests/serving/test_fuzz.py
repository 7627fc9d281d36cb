"""Schemathesis over the OpenAPI schema of every route, against the real server in a child process: no 5xx,
every status documented, every JSON response matching its schema. Small budget here; benchmarks/fuzz.py
runs the large one."""

from __future__ import annotations

from pathlib import Path

from benchmarks._load import free_port, start_server
from benchmarks.fuzz import fuzz

ROOT = Path(__file__).resolve().parents[2]


def test_every_route_survives_generated_requests(prepared) -> None:
    # broken: some input shape would crash a route (5xx) or answer outside the documented contract
    server = start_server(free_port(), cwd=ROOT, env={"LEADSCOPE_HOME": str(prepared.settings.home)})
    try:
        calls = fuzz(f"http://127.0.0.1:{server.port}", server.headers, max_examples=25)
    finally:
        server.stop()
    ops = sorted({label for label, _ in calls})
    print(
        f"\nschemathesis: {len(ops)} operations, {len(calls)} requests, failures 0; "
        f"statuses {sorted({s for _, s in calls})}"
    )
    assert len(ops) == 23 and all(s < 500 for _, s in calls)
