"""What `leadscope run` prepares before it serves: data, features, the online store and the models, each only
when missing.

The features are built first (every other step reads them). The online store's load and the model trainings do
not depend on one another: the online store is read only by serving, and each training reads the offline files.
Most of them run on one core (a LightGBM fit with `num_threads`, SQLite's writer), so with `run_workers` above 1
they run side by side, each in its own process (`python -m leadscope.cli.prepare STEP`): its output is printed whole
when it ends, a failure stops new steps from starting, and the run ends with that step's exit code once the
running ones have finished. With one worker, or on Ray (which spreads the work itself), they run one after
another in this process. The models do not depend on the order: every fit is seeded and single-threaded per fit.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import typer

from leadscope.cli.common import console, step
from leadscope.settings import Settings, quiet_environment

# one after another: the order of the main job; "features" is the build without the online store
STEPS = ("features", "online", "propensity", "churn", "value", "uplift")
# side by side the longest first (measured at 200,000 customers: next-best-action 245 s, the online store 196 s,
# value 128 s, propensity 110 s, churn 49 s), so that the workers end close together
LONGEST_FIRST = ("features", "uplift", "online", "churn", "value", "propensity")
# Each step's peak RSS in GiB, measured in its own process at 200,000 customers (benchmarks/run_job.py; they grow
# with the company together): a step starts only while the running ones and it sum to at most CAPACITY, so the
# run stays under 8 GB there. The three big ones (next-best-action, value, propensity) then run one at a time,
# each beside the online store's load or churn (side by side they summed to 9.4 GiB, then 8.4 GiB). Measured
# 2026-12-07, after the TreeSHAP tables explained the holdout in chunks (propensity had peaked at 6.25 GiB).
PEAK_GIB = {"features": 1.5, "online": 0.9, "churn": 2.5, "uplift": 4.1, "value": 4.3, "propensity": 3.3}
CAPACITY = 7.3
TITLES = {
    "features": "the features",
    "online": "the online store",
    "propensity": "propensity",
    "churn": "churn",
    "value": "customer value",
    "uplift": "next-best-action",
}


def materialise(s: Settings) -> None:
    """The whole online store from the current build (its rows, then the marker that says which build it holds),
    its views registered first (a build registers them; features copied from elsewhere may not be)."""
    from features import store

    with step("materialising the online store"):
        written = store.materialize(store.apply(s), s)
    rows = ", ".join(f"{v} {w.rows:,}" for v, w in written.items() if w.rows is not None)
    console.print(f"  online store: {rows or 'loaded by Feast'}", soft_wrap=True)


def _runner(s: Settings, name: str) -> Callable[[], None]:
    from leadscope.cli.features import build_features
    from leadscope.cli.train import train_churn_model, train_nba_model, train_propensity_model, train_value_model

    return {
        "features": lambda: build_features(s, online=False),
        "online": lambda: materialise(s),
        "propensity": lambda: train_propensity_model(s, set_champion=True),
        "churn": lambda: train_churn_model(s, set_champion=None),
        "value": lambda: train_value_model(s),
        "uplift": lambda: train_nba_model(s),
    }[name]


def missing(s: Settings) -> list[str]:
    """The steps whose output is missing, in STEPS' order (saying why a step is left out)."""
    from features.store import online_build
    from leadscope.tables import has_features, has_table
    from training import tracking

    out = []
    for name in STEPS:
        if name == "features":
            if not has_features(s.feature_dir):
                out.append(name)
            else:
                console.print(f"[green]✓[/] features found in {s.feature_dir}")
        elif name == "online":
            if online_build(s) is None:  # never loaded, or a load that did not finish: loaded whole again
                out.append(name)
            else:
                console.print("[green]✓[/] the online store holds the current features")
        elif name == "uplift" and not has_table(s.raw_dir, "campaigns"):
            console.print("[yellow]-[/] no campaigns table: next-best-action not trained")
        elif not tracking.has_champion(s, name):  # also creates MLflow's tables before any step runs
            out.append(name)
        else:
            console.print(f"[green]✓[/] model {name}@champion found in MLflow")
    return out


def workers(s: Settings, steps: int) -> int:
    if s.engine == "ray":
        return 1
    return max(1, min(steps, s.run_workers or os.cpu_count() or 1))


def prepare(s: Settings) -> None:
    """Each step of the main job only when its output is missing, in the order each needs the last. Side by side,
    the feature build runs first in a process of its own too, so that its memory is gone before the models'."""
    from leadscope.synth.regions import write_company
    from leadscope.tables import has_table

    if not has_table(s.raw_dir, "customers"):
        with step(f"generating a synthetic company of {s.customers:,} customers"):
            write_company(s.raw_dir, customers=s.customers, seed=s.seed, end=s.world_end, days=s.world_days)
    else:
        console.print(f"[green]✓[/] data found in {s.raw_dir}")
    todo = missing(s)
    n = workers(s, len(todo))
    if n == 1:
        for name in todo:
            _runner(s, name)()
        return
    if todo[0] == "features":
        _side_by_side(s, todo[:1], 1)
    if rest := [t for t in todo if t != "features"]:
        _side_by_side(s, rest, n)


def _side_by_side(s: Settings, todo: list[str], n: int) -> None:
    """Each step in its own `python -m leadscope.cli.prepare` process, `n` at a time, the longest first, with
    this process's settings (pickled into a private folder: the exact object, secrets included, not a re-read of
    the environment) and this console's width."""
    queue = [t for t in LONGEST_FIRST if t in todo]
    running: dict[str, tuple[subprocess.Popen, object]] = {}
    done: list[str] = []
    failed: tuple[str, int] | None = None
    title = f"{', '.join(TITLES[t] for t in todo)}: {n} at a time"
    t0 = time.perf_counter()
    env = os.environ | {"COLUMNS": str(console.width)}
    with tempfile.TemporaryDirectory(prefix="leadscope-run-") as tmp, console.status(f"[bold]{title}…") as status:
        pickled = Path(tmp) / "settings.pickle"
        pickled.write_bytes(pickle.dumps(s))
        try:
            failed = _loop(queue, running, done, n, pickled, env, status, title)
        except BaseException:  # Ctrl-C (KeyboardInterrupt) or an error here: no step outlives the run
            for proc, log in running.values():
                proc.terminate()
                proc.wait()
                log.close()
            raise
    if failed is not None:
        left = ", ".join(TITLES[t] for t in todo if t not in done)
        rc = failed[1]
        how = f"killed by signal {-rc} (out of memory?)" if rc < 0 else f"exit code {rc}"
        console.print(
            f"[red]error:[/] {TITLES[failed[0]]} failed ({how}, its output above); `leadscope run` "
            f"again does what is still missing: {left}",
            soft_wrap=True,
            highlight=False,
        )
        raise typer.Exit(2 if rc == 2 else 1)
    if len(todo) > 1:  # one step's own ✓ line says it all
        console.print(f"[green]✓[/] {title} [dim]({time.perf_counter() - t0:.1f} s)[/]", soft_wrap=True)


def _loop(
    queue: list[str],
    running: dict[str, tuple[subprocess.Popen, object]],
    done: list[str],
    n: int,
    pickled: Path,
    env: dict[str, str],
    status: object,
    title: str,
) -> tuple[str, int] | None:
    """Start what may start, print what ended, until nothing is queued or running; the first failure."""
    failed = None
    while queue or running:
        while (name := _next(queue, running, n)) is not None:
            queue.remove(name)
            log = open(pickled.with_name(f"{name}.log"), "w+b")  # noqa: SIM115 - closed when the step ends
            cmd = [sys.executable, "-m", "leadscope.cli.prepare", name, str(pickled)]
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)  # noqa: S603
            running[name] = (proc, log)
        status.update(f"[bold]{title}…[/] running: {', '.join(TITLES[r] for r in running)}")  # type: ignore[attr-defined]
        time.sleep(0.2)
        for name, (proc, log) in list(running.items()):
            if proc.poll() is None:
                continue
            del running[name]
            log.seek(0)
            sys.stderr.write(log.read().decode(errors="replace"))
            sys.stderr.flush()
            log.close()
            if proc.returncode == 0:
                done.append(name)
            elif failed is None:  # the running steps finish; none starts after a failure
                failed = (name, proc.returncode)
                queue.clear()
    return failed


def _next(queue: list[str], running: dict[str, object], n: int) -> str | None:
    """The first queued step that may start now: a worker is free, and its peak and the running steps' fit in
    CAPACITY (a step with nothing beside it always starts)."""
    if len(running) >= n:
        return None
    held = sum(PEAK_GIB[r] for r in running)
    for name in queue:
        if not running or held + PEAK_GIB[name] <= CAPACITY:
            return name
    return None


def main() -> None:
    """`python -m leadscope.cli.prepare STEP SETTINGS`: one step of `leadscope run` in this process, with the
    settings its parent pickled, ending as a `leadscope` command ends (exit 2 for an expected failure)."""
    from leadscope.cli import run_command

    name = sys.argv[1] if len(sys.argv) == 3 else ""
    if name not in STEPS:
        console.print(f"[red]error:[/] usage: STEP SETTINGS_FILE, STEP one of {', '.join(STEPS)}", highlight=False)
        raise SystemExit(2)
    quiet_environment()

    def one() -> None:  # a missing settings file ends as any missing file does: one line, exit 2
        s = pickle.loads(Path(sys.argv[2]).read_bytes())  # noqa: S301 - the parent's, in its private folder
        _runner(s, name)()

    run_command(one)


if __name__ == "__main__":
    main()
