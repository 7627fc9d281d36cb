"""The real app plus one benchmark-only route: a trivial POST with the same body model as /v1/scores.

GET /healthz is the lightest route; POST /bench/echo parses and validates the same JSON body as
/v1/scores and answers a small JSON object, so the ratio isolates the cost of scoring itself.
"""

from __future__ import annotations

import sys

import uvicorn
from pydantic import BaseModel

from leadscope.settings import get_settings, quiet_environment
from serving.app import create_app
from serving.schemas import ScoreRequest


class Echo(BaseModel):
    n: int


def main(port: int) -> None:
    quiet_environment()
    app = create_app(get_settings())

    @app.post("/bench/echo", response_model=Echo, include_in_schema=False)
    async def echo(body: ScoreRequest) -> Echo:
        return Echo(n=len(body.customer_ids))

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main(int(sys.argv[1]))
