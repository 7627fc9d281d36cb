"""The stage → platform mapping (YAML), validated on load: unknown keys, stages or platforms are refused."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from leadscope.schema import STAGES
from leadscope.yamlfile import load_validated

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
    return load_validated(path or DEFAULT, Mapping, "signals mapping")
