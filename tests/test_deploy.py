"""The docker-compose file users start from stays in step with the code (docker itself is not run here)."""

from __future__ import annotations

from pathlib import Path

import yaml

from leadscope.settings import Settings

ROOT = Path(__file__).resolve().parents[1]


def test_compose_sets_only_real_settings_and_a_valid_production_profile() -> None:
    # broken: a renamed setting would leave the documented deployment silently on defaults
    compose = yaml.safe_load((ROOT / "deploy" / "docker-compose.yml").read_text())
    env = compose["x-leadscope"]["environment"]
    fields = {f"LEADSCOPE_{name.upper()}" for name in Settings.model_fields}
    assert set(env) <= fields, set(env) - fields
    settings = Settings(**{k.removeprefix("LEADSCOPE_").lower(): v for k, v in env.items()})
    assert settings.profile == "production" and settings.online_store == "redis"
    assert settings.mlflow_uri.startswith("postgresql+psycopg://leadscope:leadscope@postgres:5432/")
    assert set(compose["services"]) == {"postgres", "redis", "prepare", "api"}
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text()
    assert "--require-hashes -r requirements.lock" in dockerfile and "leadscope" in dockerfile
