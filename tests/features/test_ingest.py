"""Import of a company's own files: each kind of bad row is reported, the rest stored, re-import idempotent."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from features import ingest
from leadscope.cli import app

CUSTOMERS = (
    "customer_id,created_at,email,plan,seats\nc1,2026-01-01,a@b.c,gold,3\nc2,2026-01-02T10:00:00+02:00,,silver,\n"
)


def write(tmp: Path, name: str, text: str | bytes) -> Path:
    p = tmp / name
    p.write_bytes(text if isinstance(text, bytes) else text.encode())
    return p


@pytest.mark.parametrize(
    ("row", "column", "reason"),
    [
        (b"t2,c1,not-a-date,5,1", "ts", "not an ISO 8601 timestamp"),
        (b"t2,c1,2026-01-05,5,-3", "quantity", "must not be negative"),
        (b"t2,ghost,2026-01-05,5,1", "customer_id", "unknown customer_id (not in customers)"),
        (b"t2,c1,2026-01-05,\xff\xfe12,1", "*", "not valid UTF-8"),
        (b"t2,c1,2026-01-05,twelve,1", "amount", "wrong type: expected a number"),
        (b"t2,,2026-01-05,5,1", "customer_id", "missing value"),
    ],
)
def test_each_kind_of_bad_row_is_reported_and_the_rest_accepted(tmp_path, row, column, reason) -> None:
    good = b"transaction_id,customer_id,ts,amount,quantity\nt1,c1,2026-01-05,10,1\n"
    files = {
        "customers": write(tmp_path, "c.csv", CUSTOMERS),
        "transactions": write(tmp_path, "t.csv", good + row + b"\n"),
    }
    out = {r.table: r for r in ingest.import_files(tmp_path / "raw", files)}
    tx = out["transactions"]
    assert (tx.read, tx.accepted) == (2, 1)
    assert tx.rejects[["file", "row", "column", "reason"]].values.tolist() == [["t.csv", 2, column, reason]]
    stored = pd.read_parquet(tmp_path / "raw" / "transactions.parquet")
    assert stored["transaction_id"].tolist() == ["t1"]
    # the file staged while the rules were checked held the rejected row: it is gone, not left beside the store
    assert sorted(p.name for p in (tmp_path / "raw").iterdir()) == ["customers.parquet", "transactions.parquet"]


def test_one_percent_corrupted_file(tmp_path) -> None:
    lines = ["transaction_id,customer_id,ts,amount,quantity"]
    bad = {
        17: "t17,c1,2026-13-45,1,1",
        420: "t420,c1,2026-01-05,1,-1",
        777: "t777,nobody,2026-01-05,1,1",
        901: "t901,c2,2026-01-05,NaNish,1",
        950: "t950,c2,2026-01-05,1,abc",
    }
    lines += [bad.get(i, f"t{i},c{1 + i % 2},2026-01-05T0{i % 10}:00:00Z,{i % 50}.5,1") for i in range(1, 1001)]
    files = {
        "customers": write(tmp_path, "c.csv", CUSTOMERS),
        "transactions": write(tmp_path, "t.csv", "\n".join(lines)),
    }
    tx = {r.table: r for r in ingest.import_files(tmp_path / "raw", files)}["transactions"]
    assert tx.accepted == 995 and sorted(tx.rejects["row"]) == sorted(bad)


def test_reimport_is_idempotent_and_updates_by_key(tmp_path) -> None:
    files = {"customers": write(tmp_path, "c.csv", CUSTOMERS)}
    ingest.import_files(tmp_path / "raw", files)
    ingest.import_files(tmp_path / "raw", files)
    assert len(pd.read_parquet(tmp_path / "raw" / "customers.parquet")) == 2
    write(tmp_path, "c.csv", CUSTOMERS.replace("gold", "platinum"))
    ingest.import_files(tmp_path / "raw", files)
    stored = pd.read_parquet(tmp_path / "raw" / "customers.parquet").set_index("customer_id")
    assert len(stored) == 2 and stored.loc["c1", "plan"] == "platinum"
    assert str(stored["created_at"].dtype) == "datetime64[ns, UTC]"  # the +02:00 offset became UTC
    assert stored.loc["c2", "created_at"] == pd.Timestamp("2026-01-02 08:00", tz="UTC")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty"),
        (b"customer_id,signup\nc1,2026-01-01\n", "missing required column(s) created_at"),
        ("customer_id,created_at\nc1,2026-01-01\n".encode("utf-16"), "UTF-8"),
    ],
)
def test_wholly_wrong_files_are_refused_and_nothing_is_written(tmp_path, content, message) -> None:
    runner = CliRunner()
    f = write(tmp_path, "c.csv", content)
    res = runner.invoke(
        app,
        ["import", "--customers", str(f), "--report", str(tmp_path / "r.csv")],
        env={"LEADSCOPE_HOME": str(tmp_path)},
    )
    assert res.exit_code == 2 and message in res.output, res.output
    assert not (tmp_path / "data" / "raw" / "customers.parquet").exists()


def test_cli_writes_the_rejection_report(tmp_path) -> None:
    c = write(tmp_path, "c.csv", CUSTOMERS + "c3,yesterday,,,\n")
    res = CliRunner().invoke(
        app,
        ["import", "--customers", str(c), "--report", str(tmp_path / "r.csv")],
        env={"LEADSCOPE_HOME": str(tmp_path)},
    )
    assert res.exit_code == 0, res.output
    report = pd.read_csv(tmp_path / "r.csv")
    assert report.to_dict("records") == [
        {"file": "c.csv", "row": 3, "column": "created_at", "reason": "not an ISO 8601 timestamp"}
    ]
