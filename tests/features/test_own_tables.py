"""Only `customers` is required: the feature build uses what a company has and says what it skipped and why."""

from __future__ import annotations

import pandas as pd
from typer.testing import CliRunner

from leadscope.cli import app
from leadscope.tables import read_feature_meta


def _cli(tmp, *args: str):  # noqa: ANN202 - click Result
    return CliRunner().invoke(app, list(args), env={"LEADSCOPE_HOME": str(tmp)})


def _customers(tmp, n: int = 300) -> str:
    """A churn export: static attributes only, one row per customer, no behaviour tables."""
    rng = pd.Series(range(n))
    df = pd.DataFrame(
        {
            "customer_id": "K" + rng.astype(str),
            "created_at": "2025-0" + (1 + rng % 9).astype(str) + "-15",
            "tenure_months": (rng % 72).astype(str),
            "contract": rng.map(lambda i: ("month-to-month", "one year", "two year")[i % 3]),
            "paperless_billing": rng.map(lambda i: ("Yes", "No")[i % 2]),
            "monthly_charges": (20 + rng * 0.37).round(2).astype(str),
        }
    )
    path = tmp / "customers.csv"
    df.to_csv(path, index=False)
    return str(path)


def test_a_static_customers_table_alone_builds_and_says_what_it_skipped(tmp_path) -> None:
    # broken: `features build` refused to run without transactions, events, stages and edges
    res = _cli(tmp_path, "import", "--customers", _customers(tmp_path), "--report", str(tmp_path / "r.csv"))
    assert res.exit_code == 0, res.output
    assert "monthly_charges (number)" in res.output and "paperless_billing (boolean)" in res.output
    res = _cli(tmp_path, "features", "build")
    assert res.exit_code == 0, res.output
    text = " ".join(res.output.split())
    for view, table in (
        ("customer_transactions", "transactions"),
        ("customer_engagement", "events"),
        ("customer_graph", "edges"),
    ):
        assert f"skipped {view}: no {table} table" in text
    meta = read_feature_meta(tmp_path / "data" / "features")
    assert set(meta.schema) == {"customer_profile"}
    assert meta.schema["customer_profile"]["monthly_charges"] == "float"
    assert meta.schema["customer_profile"]["contract"] == "string"


def test_the_graph_view_builds_without_a_followers_column(tmp_path) -> None:
    # broken: without `social_followers` the graph build crashed with an AttributeError traceback
    cust = _customers(tmp_path, 50)
    edges = tmp_path / "edges.csv"
    pd.DataFrame(
        {
            "src_customer_id": [f"K{i}" for i in range(40)],
            "dst_customer_id": [f"K{(i * 7 + 1) % 50}" for i in range(40)],
            "ts": "2025-09-01T00:00:00Z",
            "kind": ["follow", "referral"] * 20,
        }
    ).to_csv(edges, index=False)
    res = _cli(tmp_path, "import", "--customers", cust, "--edges", str(edges), "--report", str(tmp_path / "r.csv"))
    assert res.exit_code == 0, res.output
    res = _cli(tmp_path, "features", "build")
    assert res.exit_code == 0, res.output
    graph = pd.read_parquet(tmp_path / "data" / "features" / "customer_graph.parquet")
    newest = graph[graph["event_timestamp"] == graph["event_timestamp"].max()]
    assert len(newest) == 50 and newest["followers_count"].max() > 0
