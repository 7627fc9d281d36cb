"""YAML configuration files validated by a pydantic model, with one-line errors naming the file and the field."""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

import yaml
from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)


def load_validated(path: Path, model: type[M], what: str, error: type[ValueError] = ValueError) -> M:
    """`model` validated from the YAML at `path`; `error("<what> <file>: <field>: <problem>")` otherwise."""
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise error(f"{what}: {path} not found") from None
    except yaml.YAMLError as exc:
        raise error(f"{what}: {path} is not valid YAML ({type(exc).__name__})") from None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(
            f"[{p}]" if isinstance(p, int) else str(p) for p in err["loc"] if not str(p).startswith("function-")
        ).replace(".[", "[")
        raise error(f"{what} {Path(path).name}: {where or 'file'}: {err['msg']}") from None
