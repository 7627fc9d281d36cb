"""Prometheus metrics, JSON logs with a request id, and redaction of personal data from every log line.

With several workers, `leadscope serve --workers N` sets PROMETHEUS_MULTIPROC_DIR so /metrics aggregates all of
them (prometheus_client's multiprocess mode); one worker uses the default in-process registry.
"""

from __future__ import annotations

import contextvars
import logging
import re
import sys

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from pythonjsonlogger.json import JsonFormatter

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
REQUESTS = Counter(
    "leadscope_http_requests_total", "HTTP requests by route template and status.", ["method", "route", "status"]
)
ERRORS = Counter(
    "leadscope_http_errors_total", "Responses with status >= 400 by route and status.", ["route", "status"]
)
LATENCY = Histogram(
    "leadscope_http_request_duration_seconds",
    "Time to the last response byte.",
    ["method", "route"],
    buckets=LATENCY_BUCKETS,
)
MODEL = Gauge(
    "leadscope_model_info",
    "Champion model served (1 while loaded).",
    ["model", "version", "feature_service"],
    multiprocess_mode="liveall",
)
SCORES = Histogram(
    "leadscope_score_probability",
    "Distribution of served probabilities per model (drift shows here first).",
    ["model"],
    buckets=(0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0),
)
ITEM_ERRORS = Counter("leadscope_score_item_errors_total", "Per-item errors inside score responses.", ["code"])
FAST_SCORES = Counter(
    "leadscope_scores_fast_path_total", "POST /v1/scores answered before FastAPI routing (serving/fastpath.py)."
)
FAST_EVENTS = Counter(
    "leadscope_events_fast_path_total", "POST /v1/events answered before FastAPI routing (serving/fastpath.py)."
)
LIVE_APPLIER_RESTARTS = Counter(
    "leadscope_live_applier_restarts_total", "Times the live applier loop failed and was started again."
)


def model_loaded(name: str, version: str, feature_service: str) -> None:
    """1 for the version now served, 0 for the ones it replaced (multiprocess mode cannot remove label sets)."""
    for labels in list(MODEL._metrics):  # noqa: SLF001 - the label sets this process has set
        if labels[0] == name:
            MODEL.labels(*labels).set(0)
    MODEL.labels(name, version, feature_service).set(1)


def _multiprocess() -> bool:
    """Whether our metric values live in shared files. prometheus_client decides once, at its import, from
    PROMETHEUS_MULTIPROC_DIR; Feast sets that variable when imported, so the environment now says nothing."""
    from prometheus_client import values

    return values.ValueClass.__name__ != "MutexValue"


def exposition() -> tuple[bytes, str]:
    """The /metrics body: this process's registry, or every worker's when running multiprocess."""
    if _multiprocess():
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(), CONTENT_TYPE_LATEST


# Defence in depth: nothing we log carries request bodies, but a library might echo a value; these patterns
# mask e-mail addresses and phone numbers in any message before it is written.
EMAIL = re.compile(r"[\w.+-]+@[\w-]+(\.[\w-]+)+")
PHONE = re.compile(r"(\+\d[\d\s().-]{6,}\d)|(\(\d{2,4}\)\s?[\d\s-]{5,}\d)|(?<![\w.-])\d{10,15}(?![\w.-])")


def redact(text: str) -> str:
    return PHONE.sub("<phone>", EMAIL.sub("<email>", text))


class Redact(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        clean = redact(msg)
        if clean != msg:
            record.msg, record.args = clean, None
        record.request_id = request_id.get()
        return True


def formatter(kind: str) -> logging.Formatter:
    if kind == "json":
        return JsonFormatter(
            "{asctime}{levelname}{name}{message}{request_id}",
            style="{",
            rename_fields={"asctime": "ts", "levelname": "level", "name": "logger"},
        )
    return logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s")


def handler(kind: str, stream: object = None) -> logging.Handler:
    h = logging.StreamHandler(stream or sys.stderr)
    h.setFormatter(formatter(kind))
    h.addFilter(Redact())
    return h


def configure_logging(kind: str = "json", level: int = logging.INFO) -> None:
    """One handler on the root logger; uvicorn's loggers propagate to it (its access log is replaced by ours,
    which logs the route template, never the query string)."""
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    root.addHandler(handler(kind))
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True
    logging.getLogger("uvicorn.access").disabled = True
