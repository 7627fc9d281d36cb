"""The real app plus one benchmark-only route: a trivial POST with the same body model as /v1/scores.

GET /healthz is the lightest route; POST /bench/echo parses and validates the same JSON body as
/v1/scores and answers a small JSON object, so the ratio isolates the cost of scoring itself.
Usage: python -m benchmarks._server PORT [WORKERS]

Imports stay light at the top: with several workers each spawned worker imports this module again before it
answers uvicorn's 5 s health ping, and importing the app (Feast) takes longer than that on a slow machine, so the
supervisor would kill and restart every worker forever.
"""

import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fastapi import FastAPI


def factory() -> "FastAPI":  # noqa: UP037 - no __future__ annotations: the route below needs real ones
    from pydantic import BaseModel

    from leadscope.settings import Settings, quiet_environment
    from serving.app import create_app
    from serving.schemas import ScoreRequest

    class Echo(BaseModel):
        n: int

    quiet_environment()
    settings = Settings()
    app = create_app(settings)

    @app.post("/bench/echo", response_model=Echo, include_in_schema=False)
    async def echo(body: ScoreRequest) -> Echo:
        return Echo(n=len(body.customer_ids))

    return app


def main(port: int, workers: int = 1) -> None:
    import os

    import uvicorn

    from serving.observability import configure_logging

    # warnings only unless asked (benchmarks/access_log.py): the access log would measure the terminal
    configure_logging("json", level=int(os.environ.get("LEADSCOPE_BENCH_LOG_LEVEL", "30")))
    uvicorn.run(
        "benchmarks._server:factory", factory=True, host="127.0.0.1", port=port, workers=workers, log_config=None
    )


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 1)
