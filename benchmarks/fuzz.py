"""Schemathesis over the OpenAPI schema of every route, against the real server in a child process, with a large
budget: no 5xx, every status documented, every response matching its schema, auth enforced.

Usage: python -m benchmarks.fuzz [--examples 500]   (tests/serving/test_fuzz.py runs the same with 25)
Needs a prepared embedded setup (`make run` once, or `leadscope run --skip-serve`).
"""

from __future__ import annotations

import argparse
import time
from collections import Counter
from itertools import product
from pathlib import Path

import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance

from benchmarks._load import free_port, start_server


def fuzz(base_url: str, headers: dict[str, str], max_examples: int) -> list[tuple[str, int]]:
    """Generated requests for every operation, each response checked by schemathesis (5xx, documented status,
    response schema, content type, ...). Returns (operation, status) per request; raises on the first failure."""
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json")

    @schema.auth()
    class Key:  # explicit credentials: schemathesis' auth checks then probe without them and with wrong ones
        def get(self, case, ctx) -> str:  # noqa: ANN001
            return headers["authorization"]

        def set(self, case, data, ctx) -> None:  # noqa: ANN001
            case.headers = {**(case.headers or {}), "Authorization": data}  # the scheme's own header name

    calls: list[tuple[str, int]] = []
    for result, mode in product(schema.get_all_operations(), GenerationMode):
        op = result.ok()

        @given(case=op.as_strategy(generation_mode=mode))
        @settings(
            max_examples=max_examples,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        def run(case) -> None:  # noqa: ANN001
            # business rules JSON Schema cannot say (a won deal needs a value, a phone must be a phone number)
            # refuse some schema-valid bodies with a 422 on purpose; every other check stays on
            response = case.call_and_validate(timeout=60, excluded_checks=[positive_data_acceptance])
            calls.append((case.operation.label, response.status_code))
            assert response.status_code < 500

        try:
            run()
        except Unsatisfiable:
            assert mode == GenerationMode.NEGATIVE  # nothing can be invalid in a route without parameters
    return calls


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--examples", type=int, default=500, help="Hypothesis examples per operation and mode.")
    args = ap.parse_args()
    server = start_server(free_port(), cwd=Path.cwd())
    t0 = time.perf_counter()
    try:
        calls = fuzz(f"http://127.0.0.1:{server.port}", server.headers, max_examples=args.examples)
    finally:
        server.stop()
    ops = Counter(label for label, _ in calls)
    print(
        f"schemathesis, {args.examples} examples per operation and mode (positive, negative), "
        f"{time.perf_counter() - t0:.0f} s"
    )
    for label, n in sorted(ops.items()):
        print(f"  {label:<28} {n:>6} requests")
    print(
        f"operations {len(ops)}, requests {len(calls)}, statuses {dict(sorted(Counter(s for _, s in calls).items()))}"
    )
    print("failures 0 (any failed check raises with a curl to reproduce)")


if __name__ == "__main__":
    main()
