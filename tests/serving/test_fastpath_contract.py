"""The fast path (serving/fastpath.py) answers POST /v1/scores and POST /v1/events with the routes' own parts; it
earns its place (benchmarks/fast_path.py: on 5,291 against off 2,855 req/s, noise 892, 2026-12-08). It cannot
follow a route that gains a dependency, a query parameter or another body: this test lists what each route takes,
so such a change fails here until the fast path is taught it (or falls through for it)."""

from __future__ import annotations

from fastapi.routing import APIRoute

from serving.deps import features_state, ready_state
from serving.events import EventsRequest
from serving.routers import events, scores
from serving.schemas import ScoreRequest


def _route(router, path: str) -> APIRoute:  # noqa: ANN001
    return next(r for r in router.routes if isinstance(r, APIRoute) and r.path == path and "POST" in r.methods)


def _calls(dependant) -> list[str]:  # noqa: ANN001 - fastapi.dependencies.models.Dependant
    out = []
    for d in dependant.dependencies:
        out.append(f"{d.call.__module__}.{d.call.__qualname__}")
        out.extend(_calls(d))
    return sorted(out)


def test_the_scores_route_takes_what_the_fast_path_checks() -> None:
    route = _route(scores.router, "/v1/scores")
    assert _calls(route.dependant) == sorted(
        ["serving.security.require.<locals>.check", f"{ready_state.__module__}.{ready_state.__qualname__}"]
    )
    assert [p.field_info.annotation for p in route.dependant.body_params] == [ScoreRequest]
    assert route.dependant.query_params == [] and route.dependant.header_params == []
    assert route.status_code in (None, 200)


def test_the_events_route_takes_what_the_fast_path_checks() -> None:
    route = _route(events.router, "/v1/events")
    assert _calls(route.dependant) == sorted(
        [
            "serving.security.require.<locals>.check",
            f"{features_state.__module__}.{features_state.__qualname__}",
            f"{ready_state.__module__}.{ready_state.__qualname__}",
        ]
    )
    assert [p.field_info.annotation for p in route.dependant.body_params] == [EventsRequest]
    assert [p.name for p in route.dependant.query_params] == ["wait"]  # fastpath.WAITS: wait=true|false or none
    assert route.dependant.header_params == [] and route.status_code == 202
