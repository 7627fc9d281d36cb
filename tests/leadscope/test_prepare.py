"""`leadscope run`'s steps after the feature build side by side, each in its own process (leadscope/cli/prepare.py)."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest
import typer

from leadscope.cli import prepare as run_steps
from tests.conftest import Prepared, small_settings

SOME = 25

pytestmark = pytest.mark.company  # generates a company in its tests (make test-fast skips it)


def _online(settings: object, ids: list[str]) -> dict:
    from features.store import open_store

    fs = open_store(settings)
    service = fs.get_feature_service("propensity_v2")
    return fs.get_online_features(features=service, entity_rows=[{"customer_id": c} for c in ids]).to_dict()


def test_side_by_side_steps_give_what_one_after_another_gave(prepared: Prepared, tmp_path: Path) -> None:
    """The session company's data and features copied without its online store and models: three of the steps
    (the quick ones: value and next-best-action add minutes, not another path) run two at a time in child
    processes, and the online rows and the models equal the ones the fixture made in one process."""
    from features.store import online_build
    from leadscope.tables import read_table
    from training import tracking

    home = tmp_path / "copy"
    for d in (prepared.settings.raw_dir, prepared.settings.feature_dir):
        shutil.copytree(d, home / d.relative_to(prepared.settings.home))
    s = small_settings(home, run_workers=2)
    assert run_steps.missing(s) == list(run_steps.STEPS)[1:]  # features there, nothing of the other five

    run_steps._side_by_side(s, ["online", "propensity", "churn"], run_steps.workers(s, 3))  # noqa: SLF001

    assert run_steps.missing(s) == ["value", "uplift"]
    assert online_build(s) is not None
    ids = read_table(s.raw_dir, "customers")["customer_id"].astype(str).tolist()[::160][:SOME]
    assert _online(s, ids) == _online(prepared.settings, ids)
    for name in ("propensity", "churn"):
        ours, theirs = tracking.load_champion(s, name).model, tracking.load_champion(prepared.settings, name).model
        assert ours.booster.model_to_string() == theirs.booster.model_to_string(), name


def test_a_failed_step_starts_no_other_and_the_run_exits_with_its_code(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """An empty company: the first step (churn, by LONGEST_FIRST) refuses with exit 2 and one line naming the
    missing table, no traceback; the other two never start."""
    from training import tracking

    s = small_settings(tmp_path / "empty")
    with pytest.raises(typer.Exit) as stopped:
        run_steps._side_by_side(s, ["propensity", "churn", "value"], 1)  # noqa: SLF001 - one at a time
    assert stopped.value.exit_code == 2
    err = capfd.readouterr().err
    assert "Traceback" not in err
    assert f"error: missing input table 'stages' at {s.raw_dir}" in err.replace("\n", "")
    assert "churn failed (exit code 2, its output above)" in err
    assert "still missing: propensity, churn, customer value" in err
    assert err.count("error: ") == 2  # churn's and the run's: the other two never started
    assert not tracking.has_champion(s, "propensity") and not tracking.has_champion(s, "value")


def test_a_step_killed_by_a_signal_is_said_so(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    """The kernel's out-of-memory killer ends a step with SIGKILL: the run names the signal and exits 1."""
    import signal
    import threading

    import psutil

    def kill_the_step() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            for child in psutil.Process().children(recursive=True):
                if "leadscope.cli.prepare" in " ".join(child.cmdline()):
                    child.send_signal(signal.SIGKILL)
                    return
            time.sleep(0.05)

    killer = threading.Thread(target=kill_the_step)
    killer.start()
    with pytest.raises(typer.Exit) as stopped:
        run_steps._side_by_side(small_settings(tmp_path / "empty"), ["churn"], 1)  # noqa: SLF001
    killer.join()
    assert stopped.value.exit_code == 1
    assert "churn failed (killed by signal 9 (out of memory?), its output above)" in capfd.readouterr().err


def test_the_big_steps_run_one_at_a_time_beside_the_small_ones() -> None:
    """Two big models' memory together was the run's peak (9.4 GiB at 200,000 customers): next-best-action, value
    and propensity each start beside the online store's load or churn only."""
    nxt = run_steps._next  # noqa: SLF001
    queue = ["uplift", "online", "churn", "value", "propensity"]
    assert nxt(queue, {}, 2) == "uplift"
    assert nxt(queue[1:], {"uplift": None}, 2) == "online"
    assert nxt(["value", "propensity"], {"uplift": None}, 2) is None
    assert nxt(["value", "propensity", "churn"], {"uplift": None}, 2) == "churn"
    assert nxt(["value", "propensity"], {"churn": None}, 2) == "value"
    assert nxt(["propensity"], {"churn": None}, 2) == "propensity"
    assert nxt(["propensity"], {"value": None}, 2) is None
    assert nxt(["propensity"], {"online": None}, 2) == "propensity"
    assert nxt(["uplift", "propensity"], {"value": None}, 2) is None
    assert nxt(["propensity"], {}, 2) == "propensity"  # alone, whatever its size
    assert nxt(["churn"], {"value": None, "online": None}, 2) is None  # no free worker
