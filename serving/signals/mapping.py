"""The stage → platform mapping (YAML), validated on load: unknown keys, stages or platforms are refused."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from leadscope.schema import STAGES

DEFAULT = Path(__file__).with_name("mapping.yaml")
Stage = Literal[STAGES]  # type: ignore[valid-type]


class StageRule(BaseModel):
    model_config = ConfigDict(extra="forbid")
    value: Literal["actual", "predicted", "none"]


class PlatformConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    enabled: bool = True
    endpoint: str
    token_env: str
    events: dict[Stage, str | int] = Field(default_factory=dict)  # type: ignore[valid-type]
    dataset_id_env: str | None = None  # meta
    customer_id_env: str | None = None  # google
    developer_token_env: str | None = None  # google
    landing_url: str | None = None  # baidu

    def env(self, name: str | None, default: str = "") -> str:
        return os.environ.get(name, default) if name else default


class Mapping(BaseModel):
    model_config = ConfigDict(extra="forbid")
    stages: dict[Stage, StageRule]  # type: ignore[valid-type]
    platforms: dict[Literal["meta", "google", "baidu"], PlatformConfig]


def load(path: Path | None = None) -> Mapping:
    """The mapping at `path` (default: the one shipped with leadscope); a clear ValueError when it is wrong."""
    path = path or DEFAULT
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(f"signals mapping: {path} not found") from None
    except yaml.YAMLError as exc:
        raise ValueError(f"signals mapping: {path} is not valid YAML ({type(exc).__name__})") from None
    try:
        return Mapping.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ValueError(f"signals mapping {path.name}: {where}: {first['msg']}") from None
