"""A company's own export: types parsed by the data contract, all-or-nothing imports, size guards, reserved names,
and every whole-file refusal at the CLI as exit 2 with one line naming the file (and row and column)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from features import contract, ingest
from leadscope.cli import app

CUSTOMERS = "customer_id,created_at,consent_ads,monthly_charges,plan\n"


def write(tmp: Path, name: str, text: str | bytes) -> Path:
    p = tmp / name
    p.write_bytes(text if isinstance(text, bytes) else text.encode())
    return p


def run(tmp: Path, *args: str, env: dict | None = None):  # noqa: ANN201 - click Result
    return CliRunner().invoke(
        app, ["import", *args, "--report", str(tmp / "rejects.csv")], env={"LEADSCOPE_HOME": str(tmp), **(env or {})}
    )


def checksum(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.glob("*")) if p.is_file()}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("true", True),
        ("False", False),
        ("1", True),
        ("0", False),
        ("yes", True),
        ("NO", False),
        ("t", True),
        ("F", False),
        (" Yes ", True),
        ("", None),
    ],
)
def test_boolean_spellings_parse_and_missing_stays_missing(text, expected) -> None:
    # broken: consent written True/1/yes would be refused or stored as text, letting opted-out people through
    parsed = contract.parse_boolean(pd.Series([text], dtype=object))
    assert not parsed.bad.any()
    value = parsed.values.iloc[0]
    assert (value is pd.NA) if expected is None else (bool(value) is expected)


def test_an_unreadable_boolean_is_a_rejected_row_naming_the_column(tmp_path) -> None:
    f = write(tmp_path, "c.csv", CUSTOMERS + "c1,2026-01-01,maybe,10,a\nc2,2026-01-01,yes,20,b\n")
    out = ingest.import_files(tmp_path / "raw", {"customers": f})[0]
    assert out.accepted == 1
    assert out.rejects[["row", "column"]].values.tolist() == [[1, "consent_ads"]]
    assert "yes/no" in out.rejects["reason"].iloc[0]


@pytest.mark.parametrize(
    ("text", "utc"),
    [
        ("2026-03-01T14:05:00Z", "2026-03-01 14:05:00"),
        ("2026-03-01T22:05:00+08:00", "2026-03-01 14:05:00"),
        ("2026-03-01 14:05:00", "2026-03-01 14:05:00"),  # naive: UTC by the documented rule
        ("2026-03-01", "2026-03-01 00:00:00"),
    ],
)
def test_timestamps_with_offsets_z_and_naive_are_utc(text, utc) -> None:
    parsed = contract.parse_timestamp(pd.Series([text]))
    assert not parsed.bad.any() and parsed.values.iloc[0] == pd.Timestamp(utc, tz="UTC")


@pytest.mark.parametrize("dtype", [object, "string[pyarrow]"])
def test_a_column_mixing_offsets_and_naive_times_converts_each_value_by_its_own_offset(dtype) -> None:
    # broken: pandas' ISO 8601 parser gave a naive value the offset of the zoned value before it (hours off)
    text = ["2025-01-07T01:58:52+08:00", "2025-01-06T21:56:25-05:00", "2025-01-06T21:56:25", "2025-01-06T10:00:00Z"]
    parsed = contract.parse_timestamp(pd.Series(text * 3, dtype=dtype))
    expected = ["2025-01-06 17:58:52", "2025-01-07 02:56:25", "2025-01-06 21:56:25", "2025-01-06 10:00:00"] * 3
    assert parsed.values.tolist() == [pd.Timestamp(e, tz="UTC") for e in expected]
    messy = pd.Series([*text, "2025-13-40T00:00:00"], dtype=dtype)  # a bad value: the slower path, same answers
    assert contract.parse_timestamp(messy).values.tolist()[:4] == [pd.Timestamp(e, tz="UTC") for e in expected[:4]]


def test_a_spreadsheet_date_column_is_read_with_one_format_for_the_whole_column() -> None:
    us = contract.parse_timestamp(pd.Series(["03/01/2026 14:05:00", "12/31/2025 00:00:00"]))
    assert us.values.tolist() == [pd.Timestamp("2026-03-01 14:05", tz="UTC"), pd.Timestamp("2025-12-31", tz="UTC")]
    excel = contract.parse_timestamp(pd.Series(["46082.5"]))  # Excel serial day
    assert excel.values.iloc[0] == pd.Timestamp("2026-03-01 12:00", tz="UTC")
    assert contract.parse_timestamp(pd.Series(["soon"])).bad.all()


@pytest.mark.parametrize("unit", ["s", "ms", "us", "ns"])
def test_parquet_timestamps_of_any_unit_import(tmp_path, unit) -> None:
    # broken: a pandas export with datetime64[ms] crashed validation with a traceback
    at = np.array(["2026-01-01T10:00:00", "2026-01-02T11:30:00"], dtype=f"datetime64[{unit}]")
    df = pd.DataFrame({"customer_id": ["a", "b"], "created_at": at})
    df.to_parquet(tmp_path / "c.parquet")
    out = ingest.import_files(tmp_path / "raw", {"customers": tmp_path / "c.parquet"})[0]
    stored = pd.read_parquet(tmp_path / "raw" / "customers.parquet")
    assert out.accepted == 2 and str(stored["created_at"].dtype) == "datetime64[ns, UTC]"
    assert stored["created_at"].iloc[1] == pd.Timestamp("2026-01-02 11:30", tz="UTC")


def test_numeric_custom_columns_stay_numbers_and_text_stays_categorical(tmp_path) -> None:
    # broken: a monthly-charges column from CSV became a 1,266-level categorical
    rows = "".join(f"c{i},2026-01-01,yes,{i * 1.5:.2f},{'ab'[i % 2]}\n" for i in range(50))
    out = ingest.import_files(tmp_path / "raw", {"customers": write(tmp_path, "c.csv", CUSTOMERS + rows)})[0]
    assert out.kinds["monthly_charges"] == "number" and out.kinds["plan"] == "category"
    stored = pd.read_parquet(tmp_path / "raw" / "customers.parquet")
    assert stored["monthly_charges"].dtype == np.float64 and stored["monthly_charges"].iloc[3] == 4.5
    assert stored["consent_ads"].dtype == "boolean"


def test_a_schema_file_pins_a_kind_and_refuses_a_bad_one(tmp_path) -> None:
    f = write(tmp_path, "c.csv", CUSTOMERS + "c1,2026-01-01,yes,0042,a\n")
    pins = write(tmp_path, "schema.yaml", "customers:\n  monthly_charges: category\n")
    res = run(tmp_path, "--customers", str(f), "--schema", str(pins))
    assert res.exit_code == 0, res.output
    stored = pd.read_parquet(tmp_path / "data" / "raw" / "customers.parquet")
    assert stored["monthly_charges"].iloc[0] == "0042"  # a code, not the number 42
    bad = write(tmp_path, "bad.yaml", "customers:\n  monthly_charges: money\n")
    res = run(tmp_path, "--customers", str(f), "--schema", str(bad))
    assert res.exit_code == 2 and "--schema bad.yaml: customers.monthly_charges" in " ".join(res.output.split())


def test_a_refused_second_file_leaves_the_store_byte_for_byte(tmp_path) -> None:
    # broken: a two-file import whose second file failed wrote the first
    first = write(tmp_path, "c.csv", CUSTOMERS + "c1,2026-01-01,yes,1,a\n")
    assert run(tmp_path, "--customers", str(first)).exit_code == 0
    raw = tmp_path / "data" / "raw"
    before = checksum(raw)
    changed = write(tmp_path, "c2.csv", CUSTOMERS + "c1,2026-01-01,no,2,b\nc9,2026-01-02,yes,3,c\n")
    broken = write(tmp_path, "t.csv", "transaction_id,customer_id,ts\nt1,c1,2026-01-03\n")  # no amount column
    res = run(tmp_path, "--customers", str(changed), "--transactions", str(broken))
    assert res.exit_code == 2 and "t.csv: missing required column(s) amount" in res.output
    assert checksum(raw) == before


def test_one_bad_flag_rejects_one_row_and_stored_types_do_not_change(tmp_path) -> None:
    # broken: one bad `treated` rejected all 1,000 rows ("accepted 0", rc 0) and rewrote int columns as float
    cust = write(tmp_path, "c.csv", CUSTOMERS + "c1,2026-01-01,yes,1,a\n")
    lines = ["customer_id,ts,action_id,treated,outcome"]
    lines += [
        f"c1,2026-02-01T00:{i // 60:02d}:{i % 60:02d}Z,email,{'yes' if i == 500 else i % 2},0" for i in range(999)
    ]
    lines += ["c1,2026-02-02T00:00:00Z,email,perhaps,0"]
    camp = write(tmp_path, "camp.csv", "\n".join(lines) + "\n")
    res = run(tmp_path, "--customers", str(cust), "--campaigns", str(camp))
    assert res.exit_code == 0, res.output
    stored = pd.read_parquet(tmp_path / "data" / "raw" / "campaigns.parquet")
    assert len(stored) == 999 and stored["treated"].dtype == np.int64 and stored["outcome"].dtype == np.int64
    rejects = pd.read_csv(tmp_path / "rejects.csv")
    assert rejects[["row", "column"]].values.tolist() == [[1000, "treated"]]


def test_a_file_whose_every_row_is_rejected_is_refused(tmp_path) -> None:
    cust = write(tmp_path, "c.csv", CUSTOMERS + "c1,2026-01-01,yes,1,a\n")
    tx = write(tmp_path, "t.csv", "transaction_id,customer_id,ts,amount\nt1,c1,never,1\nt2,c1,later,2\n")
    res = run(tmp_path, "--customers", str(cust), "--transactions", str(tx))
    assert res.exit_code == 2
    assert "t.csv: every row was rejected, e.g. row 1, column ts: not an ISO 8601 timestamp" in " ".join(
        res.output.split()
    )
    raw = tmp_path / "data" / "raw"  # nothing of the import was written, nor left staged beside the store
    assert not raw.exists() or not list(raw.iterdir())


@pytest.mark.parametrize("name", ["tx_amount_total", "recency_days", "tx_recency_days", "event_timestamp"])
def test_a_custom_column_named_like_a_built_in_feature_is_refused(tmp_path, name) -> None:
    # broken: the import said rc 0 and every POST /v1/scores after `features build` was a 500
    f = write(tmp_path, "c.csv", f"customer_id,created_at,{name}\nc1,2026-01-01,5\n")
    res = run(tmp_path, "--customers", str(f))
    if name == "recency_days":  # not a built-in name (tx_recency_days is): a custom attribute like any other
        assert res.exit_code == 0, res.output
        return
    assert res.exit_code == 2, res.output
    assert f"column {name} is the name of a built-in feature; rename it (e.g. crm_{name})" in " ".join(
        res.output.split()
    )
    assert not (tmp_path / "data" / "raw" / "customers.parquet").exists()


def test_size_guards_refuse_before_anything_is_written(tmp_path) -> None:
    # broken: a 200 MB field was accepted; a small parquet holding a huge column ran the build out of memory
    big = write(tmp_path, "c.csv", CUSTOMERS + "c1,2026-01-01,yes,1," + "x" * 5000 + "\n")
    res = run(tmp_path, "--customers", str(big), env={"LEADSCOPE_IMPORT_MAX_CELL_BYTES": "1024"})
    assert res.exit_code == 2
    assert "c.csv: row 1, column plan: a value of 5,000 bytes, over the cell limit of 1,024" in " ".join(
        res.output.split()
    )
    bomb = tmp_path / "bomb.parquet"
    table = pa.table({"customer_id": ["a", "b"], "created_at": ["2026-01-01"] * 2, "note": ["y" * 10_000_000] * 2})
    pq.write_table(table, bomb, compression="zstd")
    assert bomb.stat().st_size < 50_000
    res = run(tmp_path, "--customers", str(bomb))
    assert res.exit_code == 2 and "bomb.parquet: column note holds values over the cell limit" in " ".join(
        res.output.split()
    )
    rows = write(tmp_path, "many.csv", CUSTOMERS + "".join(f"c{i},2026-01-01,yes,1,a\n" for i in range(20)))
    res = run(tmp_path, "--customers", str(rows), env={"LEADSCOPE_IMPORT_MAX_ROWS": "10"})
    assert res.exit_code == 2 and "many.csv: 20 rows, more than the import limit of 10" in res.output
    assert not (tmp_path / "data" / "raw").exists() or not any((tmp_path / "data" / "raw").iterdir())


def test_semicolons_a_bom_and_a_header_only_file_import(tmp_path) -> None:
    # broken: a ';' file got "missing required column(s)"; a header-only file was refused as "empty"
    cust = write(tmp_path, "c.csv", "\ufeffcustomer_id;created_at;consent_ads\nc1;2026-01-01;ja\nc2;2026-01-02;1\n")
    edges = write(tmp_path, "e.csv", "src_customer_id,dst_customer_id,ts,kind\n")
    res = run(tmp_path, "--customers", str(cust), "--edges", str(edges))
    assert res.exit_code == 0, res.output
    stored = pd.read_parquet(tmp_path / "data" / "raw" / "customers.parquet")
    assert stored["customer_id"].tolist() == ["c2"]  # "ja" is not a yes/no spelling: that row is reported
    assert len(pd.read_parquet(tmp_path / "data" / "raw" / "edges.parquet")) == 0


def test_the_features_build_refuses_a_colliding_column_that_bypassed_the_import(tmp_path) -> None:
    raw = tmp_path / "data" / "raw"
    raw.mkdir(parents=True)
    at = pd.Timestamp("2026-01-01", tz="UTC")
    pd.DataFrame({"customer_id": ["a"], "created_at": [at], "tx_amount_total": [3.0]}).to_parquet(
        raw / "customers.parquet"
    )
    res = CliRunner().invoke(app, ["features", "build"], env={"LEADSCOPE_HOME": str(tmp_path)})
    assert res.exit_code == 2 and "column tx_amount_total is the name of a built-in feature" in " ".join(
        res.output.split()
    )


@pytest.mark.parametrize(
    ("rows", "column", "reason"),
    [
        ("t1,c1,2026-01-05,12,maybe\n", "is_refund", "not a yes/no value"),
        ("t1,c1,2026-01-05,twelve,no\n", "amount", "wrong type: expected a number"),
        ("t1,c1,2026-01-05,-3,no\n", "amount", "must not be negative"),
        ("t1,ghost,2026-01-05,3,no\n", "customer_id", "unknown customer_id (not in customers)"),
        ("t1,,2026-01-05,3,no\n", "customer_id", "missing value"),
        ("t1,c1,2026-99-05,3,no\n", "ts", "not an ISO 8601 timestamp"),
    ],
)
def test_each_bad_input_class_alone_is_exit_2_with_one_line_naming_file_row_and_column(
    tmp_path, rows, column, reason
) -> None:
    # broken: a file that was all bad imported "accepted 0" with rc 0, or failed with a traceback
    cust = write(tmp_path, "c.csv", CUSTOMERS + "c1,2026-01-01,yes,1,a\n")
    tx = write(tmp_path, "orders.csv", "transaction_id,customer_id,ts,amount,is_refund\n" + rows)
    res = run(tmp_path, "--customers", str(cust), "--transactions", str(tx))
    lines = [line for line in res.output.splitlines() if line.strip()]
    assert res.exit_code == 2 and len(lines) == 1, res.output
    text = " ".join(res.output.split())
    assert f"orders.csv: every row was rejected, e.g. row 1, column {column}: {reason}" in text, text


@pytest.mark.company
def test_a_build_that_cannot_reach_the_online_store_puts_the_previous_features_back(tmp_path) -> None:
    # broken: a failed build overwrote the features and the registry, leaving the online store stale
    from tests.conftest import prepare, small_settings

    settings = small_settings(tmp_path, customers=500)
    prepare(settings, train=False)
    before = checksum(settings.feature_dir)
    events = pd.read_parquet(settings.raw_dir / "events.parquet")
    late = events.head(3).assign(event_id=lambda d: "late-" + d["event_id"], ts=events["ts"].max())
    pd.concat([events, late]).to_parquet(settings.raw_dir / "events.parquet", index=False)
    online = settings.feature_repo_dir / "online.db"
    online.unlink()
    online.mkdir()  # SQLite cannot open a folder: materialising fails after the new sources are written
    res = CliRunner().invoke(app, ["features", "build"], env={"LEADSCOPE_HOME": str(tmp_path)})
    assert res.exit_code != 0
    assert checksum(settings.feature_dir) == before
    assert not settings.feature_dir.with_name("features.previous").exists()


def test_a_quoted_value_holding_line_breaks_is_one_value(tmp_path) -> None:
    # files without a quote character are split into blocks without tracking quotes; a file with them keeps a
    # multi-line note (a CRM's free-text field) in its row, over more than one of Arrow's blocks
    note = "first line\nsecond line, with a comma\r\nthird"
    rows = [f'c{i},2026-01-01,"{note}"' for i in range(300_000)]  # 20 MB: more than one 16 MB block
    cust = write(tmp_path, "c.csv", "customer_id,created_at,notes\n" + "\n".join(rows) + "\n")
    res = run(tmp_path, "--customers", str(cust))
    assert res.exit_code == 0, res.output
    stored = pd.read_parquet(tmp_path / "data" / "raw" / "customers.parquet")
    assert len(stored) == 300_000 and set(stored["notes"]) == {note}
