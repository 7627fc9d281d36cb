"""One configuration source: environment variables prefixed LEADSCOPE_, with embedded defaults."""

from __future__ import annotations

import os
import warnings
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, computed_field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Paths, world size and model knobs; everything else derives from these."""

    model_config = SettingsConfigDict(env_prefix="LEADSCOPE_", env_file=".env", extra="ignore")

    home: Path = Field(default_factory=Path.cwd, description="Project root; relative paths resolve here.")
    data_dir: Path = Field(Path("data"), description="Raw tables, features, Feast repo and the service database.")
    mlruns_dir: Path = Field(Path("mlruns"), description="MLflow store (sqlite database and artifacts).")
    tracking_uri: str | None = Field(None, description="MLflow tracking URI; default sqlite under mlruns_dir.")
    seed: int = Field(42, description="Seed of the generator, splits and models.")
    customers: int = Field(20_000, ge=100, description="Size of the generated company.")
    world_end: datetime = Field(datetime(2026, 6, 30, tzinfo=UTC), description="Last day the generator simulates.")
    world_days: int = Field(540, ge=120, description="History length the generator simulates.")
    feature_cadence_days: int = Field(7, ge=1, description="Feature snapshots are computed this often.")
    propensity_horizon_days: int = Field(30, ge=1, description="Label: converted within N days.")
    churn_horizon_days: int = Field(90, ge=7, description="Churn label window after the snapshot.")
    churn_definition: Literal["no_purchase", "cancellation"] = Field(
        "no_purchase",
        description="no_purchase: no order in the window (non-contractual); cancellation: a churned stage.",
    )
    profile: Literal["embedded", "production"] = Field(
        "embedded",
        description="embedded: SQLite files and in-process state (no servers). production: PostgreSQL for MLflow and "
        "the service database, Redis for the online store and shared rate limits.",
    )
    online_store: Literal["sqlite", "redis"] = Field(
        "sqlite", description="Feast online store (redis: needs redis_url)."
    )
    redis_url: str | None = Field(None, description="redis://host:6379/0: online store and shared rate limits.")
    postgres_url: str | None = Field(None, description="postgresql://…: MLflow and the service database (production).")
    auth: bool = Field(True, description="Require an API key on /v1 routes (health, readiness, metrics stay open).")
    key_cache_seconds: float = Field(2.0, ge=0, description="How long a server trusts its copy of the key table.")
    console_secret: SecretStr | None = Field(
        None,
        description="Signs the console login form's CSRF token (set one value for all servers; unset: a random "
        "secret kept in the data directory).",
    )
    console_session_seconds: int = Field(8 * 3600, ge=60, description="Console sessions expire after this long.")
    console_max_upload_bytes: int = Field(
        1024 * 1024, ge=1024, le=2 * 1024 * 1024, description="Largest seed CSV the console takes (413 above)."
    )
    rate_limit: str = Field("6000/minute", description="Default per-key rate limit (limits notation, e.g. 100/second).")
    max_body_bytes: int = Field(2 * 1024 * 1024, ge=1024, description="Largest request body (413 above).")
    max_batch_body_bytes: int = Field(32 * 1024 * 1024, ge=1024, description="Largest body of a batch request.")
    max_batch_ids: int = Field(1_000_000, ge=1, description="Most ids in one batch scoring request.")
    batch_offline_min: int = Field(
        10_000,
        ge=1,
        description="POST /v1/scores/batch reads the build's feature files (DuckDB, in columns) from this many ids "
        "up, when the online store holds that build; customers with live records since are read online.",
    )
    request_timeout_seconds: float = Field(30.0, gt=0, description="504 when no response has started by then.")
    graceful_shutdown_seconds: float = Field(30.0, gt=0, description="How long in-flight requests get on SIGTERM.")
    log_format: Literal["json", "text"] = Field("json", description="Server log lines: JSON or plain text.")
    access_log: Literal["all", "errors", "off"] = Field(
        "all",
        description="Which requests the access log records: all, errors (status 400 and above) or off "
        "(benchmarks/access_log.py measures what each costs).",
    )
    signals_mapping: Path | None = Field(None, description="Stage → ad-platform mapping YAML (default: built in).")
    signals_max_attempts: int = Field(12, ge=1, description="Delivery attempts per event and platform.")
    signals_backoff_seconds: float = Field(2.0, gt=0, description="First retry delay; doubles per attempt.")
    signals_backoff_cap_seconds: float = Field(600.0, gt=0, description="Longest retry delay.")
    signals_timeout_seconds: float = Field(10.0, gt=0, description="HTTP timeout of one platform call.")
    signals_batch_size: int | None = Field(None, ge=1, description="Rows per call, below each platform's limit.")
    signals_deliver_seconds: float = Field(
        0.0, ge=0, description="The server delivers pending signals this often (0: only `leadscope signals deliver`)."
    )
    background_load: bool = Field(
        True, description="Load models after start-up (/readyz 503 meanwhile); off: load before accepting connections."
    )
    prewarm: bool = Field(
        True, description="After loading (and each new materialisation) score every customer into the cache."
    )
    model_poll_seconds: float = Field(
        5.0, gt=0, description="How often the server checks for a new champion and a new materialisation."
    )
    feature_cache_size: int = Field(
        200_000, ge=0, description="Online feature rows a server keeps until the next materialisation (0: off)."
    )
    scores_fast_path: bool = Field(
        True, description="Answer valid small POST /v1/scores requests before FastAPI's routing (same bytes)."
    )
    events_fast_path: bool = Field(
        True, description="Answer valid small POST /v1/events requests before FastAPI's routing (same bytes)."
    )
    actions_catalogue: Path | None = Field(None, description="Next-best-action catalogue YAML (default: built in).")
    audience_sync_max: int = Field(
        20_000, ge=0, description="Lookalike audiences up to this many members are built in the request (201)."
    )
    import_max_rows: int = Field(50_000_000, ge=1, description="Most rows one imported file may hold.")
    import_max_cell_bytes: int = Field(
        65_536, ge=64, description="Longest value one imported cell may hold (bytes of text)."
    )
    import_max_file_bytes: int = Field(
        8 * 1024**3,
        ge=1024,
        description="Largest imported file: a CSV file's size, or what a parquet file's values take once read.",
    )
    events_future_seconds: float = Field(
        300.0, ge=0, description="POST /v1/events refuses records timed further than this in the future (clock skew)."
    )
    events_apply_wait_seconds: float = Field(
        5.0,
        ge=0,
        description="How long POST /v1/events waits for the online features before answering (stored anyway).",
    )
    live_apply_process: bool = Field(
        True, description="Apply live records in a child process of each server (off: in a thread of the server)."
    )
    live_intake_process: bool = Field(
        True,
        description="Store POST /v1/events records through a small process of each server (off: a thread of the "
        "server, which waits for the interpreter lock under load).",
    )
    live_apply_interval_seconds: float = Field(
        0.05, ge=0, description="Under load, live passes start at most this often (records arriving meanwhile join)."
    )
    live_apply_share: float = Field(
        0.3,
        gt=0,
        le=1,
        description="Under load, the live applier's share of the time (a pass of t seconds waits t/share before the "
        "next, at most 0.5 s more): the rest of the core scores.",
    )
    score_change_delta: int = Field(
        5,
        ge=1,
        le=100,
        description="Score history records a move of at least this many points (a grade change always).",
    )
    webhooks_deliver_seconds: float = Field(
        1.0, ge=0, description="The server sends due score-change webhooks this often (0: only `leadscope webhooks`)."
    )
    webhooks_max_attempts: int = Field(15, ge=1, description="Delivery attempts per webhook message.")
    host: str = Field("127.0.0.1", description="Address `leadscope serve` listens on.")
    port: int = Field(8000, description="Port `leadscope serve` listens on.")
    num_threads: int = Field(1, description="Threads per LightGBM fit or predict (1 under load).")
    fit_workers: int = Field(
        0,
        ge=0,
        description="Independent model fits of one training run side by side (next-best-action: one action per "
        "thread), each with num_threads; the models do not depend on it (0: one per core).",
    )
    graph_workers: int = Field(
        0,
        ge=0,
        description="Processes computing the social-graph view's blocks of cut times during a local feature build, "
        "beside the other views; the features do not depend on it (0: one per core from 1 M rows of the view, "
        "else 1: in the build's process).",
    )
    run_workers: int = Field(
        0,
        ge=0,
        description="Steps of `leadscope run` after the feature build (the online store's load, each model's "
        "training) side by side, each in its own process; 1: one after another (0: one per core; Ray: 1).",
    )
    train_max_rows: int = Field(
        1_000_000,
        ge=10_000,
        description="A classifier's training frame above this many rows keeps every positive and a random share of "
        "the training negatives (weighted by the inverse share, so calibration holds); validation and test stay "
        "whole. A campaign log above it keeps a random share of its customers (still a randomised trial).",
    )
    engine: Literal["local", "ray"] = Field(
        "local",
        description="Where the feature build, the classifiers' boosting and `leadscope score --source offline` run: "
        "this process (local) or Ray (ray: a cluster at ray_address, else a local Ray bounded by ray_cpus and "
        "ray_memory_mb).",
    )
    ray_address: str | None = Field(
        None, description="ray://host:10001 (or auto): an existing Ray cluster; unset: leadscope starts a local Ray."
    )
    ray_cpus: int | None = Field(None, ge=1, description="CPUs of the local Ray leadscope starts (default: all).")
    ray_memory_mb: int = Field(
        1024, ge=128, description="Object store of the local Ray leadscope starts (it spills to disk above)."
    )
    ray_workers: int = Field(2, ge=1, description="Ray Train workers (one LightGBM process each).")
    ray_partitions: int | None = Field(
        None,
        ge=1,
        description="Customer partitions of the feature build on Ray (default: 4 per CPU, at least one per "
        "250,000 customers).",
    )
    max_ids_per_request: int = Field(10_000, description="Most ids in one POST /v1/scores.")

    @model_validator(mode="after")
    def _profile(self) -> Settings:
        if self.profile == "production":
            missing = [n for n in ("postgres_url", "redis_url") if not getattr(self, n)]
            if missing:
                names = " and ".join(f"LEADSCOPE_{n.upper()}" for n in missing)
                raise ValueError(f"profile=production needs {names}")
            self.online_store = "redis"
        return self

    def resolve(self, path: Path) -> Path:
        """Absolute path, relative ones taken from `home`."""
        return path if path.is_absolute() else (self.home / path).resolve()

    @computed_field  # type: ignore[prop-decorator]
    @property
    def raw_dir(self) -> Path:
        return self.resolve(self.data_dir) / "raw"

    @computed_field  # type: ignore[prop-decorator]
    @property
    def feature_dir(self) -> Path:
        return self.resolve(self.data_dir) / "features"

    @computed_field  # type: ignore[prop-decorator]
    @property
    def feature_repo_dir(self) -> Path:
        return self.resolve(self.data_dir) / "feature_repo"

    @property
    def mlflow_uri(self) -> str:
        if self.tracking_uri:
            return self.tracking_uri
        if self.profile == "production":
            return self.sqlalchemy_url(self.postgres_url or "")
        return f"sqlite:///{self.resolve(self.mlruns_dir) / 'mlflow.db'}"

    @property
    def database_url(self) -> str:
        """The service's own tables (API keys, later conversions): SQLite file embedded, PostgreSQL in production."""
        if self.profile == "production":
            return self.sqlalchemy_url(self.postgres_url or "")
        return f"sqlite:///{self.resolve(self.data_dir) / 'leadscope.db'}"

    @property
    def rate_limit_storage(self) -> str:
        """Where per-key request counts live: shared in Redis in production (all workers), else in-process."""
        return self.redis_url if self.profile == "production" and self.redis_url else "memory://"

    @staticmethod
    def sqlalchemy_url(url: str) -> str:
        """postgresql://… → postgresql+psycopg://… (the driver in the lock is psycopg 3)."""
        for prefix in ("postgresql://", "postgres://"):
            if url.startswith(prefix):
                return "postgresql+psycopg://" + url[len(prefix) :]
        return url

    @property
    def artifact_root(self) -> str:
        return (self.resolve(self.mlruns_dir) / "artifacts").as_uri()


@lru_cache
def get_settings() -> Settings:
    return Settings()


def quiet_environment() -> None:
    """Turn off telemetry/usage reporting so nothing tries to reach the internet; called by entry points."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("DO_NOT_TRACK", "true")
    os.environ.setdefault("FEAST_USAGE", "False")
    os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    # known-noisy third-party deprecations (ibis inside Feast's DuckDB store); ours still show
    warnings.filterwarnings("ignore", message=".*fetch_arrow_table.*")
