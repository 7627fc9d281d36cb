"""Named custom outcomes (`leadscope train outcome --name upsell --labels F`): a company's own binary outcome,
trained, registered and served like propensity and churn under its own name, FeatureService and champion.

The names live in one small JSON file beside the tables, so the feature store (its FeatureService), the trainer
and the server agree on them without importing each other."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from leadscope.schema import MODELS
from leadscope.settings import Settings

NAME = re.compile(r"^[a-z][a-z0-9_]{1,39}$")
FILE = "outcomes.json"


def path(settings: Settings) -> Path:
    return settings.raw_dir.parent / FILE


def names(settings: Settings) -> list[str]:
    """The outcomes trained so far, in the order they were first trained."""
    p = path(settings)
    return list(json.loads(p.read_text())) if p.exists() else []


def check_name(name: str) -> str:
    """The name, or ValueError saying what a name must be."""
    if name in MODELS:
        raise ValueError(f"--name: {name} is a built-in model; use `leadscope train {name}` or choose another name")
    if not NAME.match(name):
        raise ValueError(
            f"--name: {name!r} is not a model name: 2 to 40 characters, lower-case letters, digits and _, "
            "starting with a letter"
        )
    return name


def service(name: str) -> str:
    """The FeatureService an outcome's model reads."""
    return f"outcome_{name}_v1"


def _write(settings: Settings, found: list[str]) -> None:
    p = path(settings)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_suffix(".tmp")
    tmp.write_text(json.dumps(found))
    os.replace(tmp, p)


def add(settings: Settings, name: str) -> bool:
    """Record an outcome; True when it is new."""
    found = names(settings)
    if name in found:
        return False
    _write(settings, [*found, check_name(name)])
    return True


def remove(settings: Settings, name: str) -> None:
    _write(settings, [n for n in names(settings) if n != name])
