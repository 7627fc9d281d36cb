"""LEADSCOPE_ACCESS_LOG: all requests, errors only (status >= 400) or none; metrics count every request either way
(benchmarks/access_log.py measures what each costs)."""

from __future__ import annotations

import logging

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from serving import observability as obs
from serving.middleware import Observability


def _app(access: str) -> FastAPI:
    app = FastAPI()

    @app.get("/ok")
    async def ok() -> dict:
        return {"ok": True}

    @app.get("/bad")
    async def bad() -> dict:
        from fastapi import HTTPException

        raise HTTPException(422, "no")

    app.add_middleware(Observability, access=access)
    return app


@pytest.mark.parametrize(("access", "logged"), [("all", {200, 422}), ("errors", {422}), ("off", set())])
def test_the_access_log_records_what_the_setting_says(access, logged, caplog) -> None:
    client = TestClient(_app(access))
    before = obs.REQUESTS.labels("GET", "/ok", "200")._value.get()  # noqa: SLF001 - prometheus_client's counter
    with caplog.at_level(logging.INFO, logger="leadscope.access"):
        assert client.get("/ok").status_code == 200
        assert client.get("/bad").status_code == 422
    got = {r.status for r in caplog.records if r.name == "leadscope.access"}
    assert got == logged
    assert obs.REQUESTS.labels("GET", "/ok", "200")._value.get() == before + 1  # noqa: SLF001
