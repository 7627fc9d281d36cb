"""What every command shares: fresh settings, a progress step, the one error style, reading ids, writing frames."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NoReturn

import typer
from rich.console import Console

from leadscope.settings import Settings, quiet_environment

console = Console(stderr=True)
OUTPUT_SUFFIXES = (".csv", ".parquet")


def settings() -> Settings:
    """Read fresh for every command (not the process-wide cache), so the environment of this call counts."""
    quiet_environment()
    return Settings()


@contextmanager
def step(title: str) -> Iterator[Callable[[str], None]]:
    """A spinner while a long step runs, then a ✓ line with its duration."""
    t0 = time.perf_counter()
    with console.status(f"[bold]{title}…") as status:
        yield lambda sub: status.update(f"[bold]{title}…[/] {sub}")
    console.print(f"[green]✓[/] {title} [dim]({time.perf_counter() - t0:.1f} s)[/]")


def fail(message: str) -> NoReturn:
    """The one way a command refuses: `error: <what>` on stderr, exit code 2 (bad input, missing data)."""
    console.print(f"[red]error:[/] {message}", soft_wrap=True, highlight=False)
    raise typer.Exit(2)


def output_path(path: Path, option: str = "--out", suffixes: tuple[str, ...] = OUTPUT_SUFFIXES) -> Path:
    """An output file named by the user: .csv or .parquet (or `suffixes`), checked before any work is done."""
    if path.suffix not in suffixes:
        fail(f"{option}: {path.name} should end in {', '.join(suffixes[:-1])} or {suffixes[-1]}")
    return path


def read_ids(path: Path, option: str) -> list[str]:
    """Customer ids from a CSV/parquet file: its customer_id column, or else its first column."""
    import pandas as pd

    if not path.exists():
        fail(f"{option}: no file at {path}")
    try:
        df = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path, dtype=str)
    except pd.errors.EmptyDataError:
        fail(f"{option}: {path.name} is empty")
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the user's input problem
        fail(f"{option}: cannot read {path.name} ({type(exc).__name__})")
    if df.empty:
        fail(f"{option}: {path.name} has no rows")
    col = "customer_id" if "customer_id" in df else df.columns[0]
    ids = df[col].dropna().astype(str).tolist()
    if not ids:
        fail(f"{option}: {path.name} holds no customer ids")
    return ids


def split_list(value: str | None) -> list[str]:
    """'a, b,,c' → ['a', 'b', 'c'] (order kept, repeats dropped)."""
    return list(dict.fromkeys(p.strip() for p in (value or "").split(",") if p.strip()))
