"""features/online_write.py writes exactly the rows Feast's own write_to_online_store writes: every column of
every row of every view's SQLite table, nulls and text values included."""

from __future__ import annotations

import sqlite3

import pandas as pd
import pytest

from features import store
from features.online_write import OnlineWriter
from leadscope.tables import read_feature_meta
from tests.conftest import prepare, small_settings

pytestmark = pytest.mark.company  # generates a company in its tests (make test-fast skips it)


def _tables(path) -> dict[str, pd.DataFrame]:  # noqa: ANN001
    con = sqlite3.connect(path)
    try:
        names = [
            r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table' AND name LIKE 'leadscope_%'")
        ]
        names = [n for n in names if n != "leadscope_online_build"]
        return {
            n: pd.read_sql(f'SELECT * FROM "{n}" ORDER BY entity_key, feature_name', con)  # noqa: S608
            for n in names
        }
    finally:
        con.close()


def _empty(path) -> None:  # noqa: ANN001
    con = sqlite3.connect(path)
    with con:
        for n in _tables(path):
            con.execute(f'DELETE FROM "{n}"')  # noqa: S608
    con.close()


def test_the_online_rows_are_feasts_own_cell_for_cell(tmp_path) -> None:
    # broken: a value encoded another way (an int as a double, a null as 0, text missing), another timestamp,
    # a lost row: the API would read other features than Feast's own write would have given it
    settings = small_settings(tmp_path, customers=600)
    prepare(settings, train=False)
    meta = read_feature_meta(settings.feature_dir)
    path = settings.feature_repo_dir / "online.db"
    chunks = {
        view: list(store._newest_rows(settings, meta, view, None, None))  # noqa: SLF001
        for view in store.VIEWS
        if meta.has_view(view)
    }
    assert len(chunks) >= 5

    fs = store.open_store(settings)
    _empty(path)
    for view, parts in chunks.items():
        for chunk in parts:
            fs.write_to_online_store(view, chunk)
    feast_rows = _tables(path)

    _empty(path)
    fs = store.open_store(settings)
    writer = OnlineWriter(fs)
    for view, parts in chunks.items():
        for chunk in parts:
            writer.write(view, chunk)
    ours = _tables(path)

    assert set(ours) == set(feast_rows) and len(ours) == len(chunks)
    cells = 0
    for name, theirs in feast_rows.items():
        assert len(theirs) > 600, name
        pd.testing.assert_frame_equal(ours[name], theirs, check_exact=True, obj=name)
        cells += len(theirs)
    every = pd.concat(feast_rows.values())
    assert (every["value"] == b"").any()  # null cells are covered
    assert every["value_text"].str.contains("[a-z]", regex=True, na=False).any()  # text cells too
    assert every["event_ts"].nunique() > 1 and cells > 50_000
