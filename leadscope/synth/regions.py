"""A company too large to simulate in one piece, simulated as independent regions and written table by table.

`generate` holds the whole company in memory (3.4 GB at 200,000 customers), so a company of millions is made as
regions of at most REGION customers: each is a whole company of its own (its own seed, its own social graph and
duplicates), simulated in a worker process that writes its tables as parquet parts and exits. The parts are then
appended, row group by row group, into the one file per table every reader expects. A region's ids and personal
identifiers carry the region's tag, so no two regions share a customer id, an email, a phone or a WeChat id by
chance; the duplicates planted within a region still share theirs. Up to REGION customers, the company is exactly
the one `generate` makes.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from concurrent.futures import ProcessPoolExecutor
from datetime import datetime, timedelta
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import pandas as pd

REGION = 200_000  # customers per region: about 3.4 GB of the generator's memory each
REGION_PEAK_GB = (
    4.5  # GiB of one region's worker at REGION customers: 4.43 GiB (4.76 GB) measured 2026-12-07, rounded up
)
ID_COLUMNS = ("customer_id", "src_customer_id", "dst_customer_id", "transaction_id", "event_id", "person_id")
PARTS = ".regions"


def region_sizes(customers: int, region: int = REGION) -> list[int]:
    """Customers per region: as few regions as `region` allows, sizes differing by one at most."""
    k = max(1, math.ceil(customers / region))
    base, extra = divmod(customers, k)
    return [base + (i < extra) for i in range(k)]


def region_seed(seed: int, k: int) -> int:
    """Region k's seed, drawn from (seed, k): regions are independent, and the same seed makes the same company."""
    return int(np.random.SeedSequence([seed, k]).generate_state(1)[0])


def tag_region(df: pd.DataFrame, k: int, width: int = 3) -> pd.DataFrame:
    """The frame with region k's tag in every id (`C0000123` → `C0030000123`) and personal identifier, so that
    regions never collide: emails get it before the '@', WeChat ids at the end, phones an area code (US) or a
    mobile prefix (CN) of the region's. Written-differently duplicates stay equal after normalising."""
    out = df.copy()
    tag = f"{k:0{width}d}"
    for c in ID_COLUMNS:
        if c in out:
            s = out[c].astype(object)
            out[c] = s.str[:1] + tag + s.str[1:]
    if "email" in out:
        out["email"] = out["email"].str.replace("@", f"r{k}@", n=1, regex=False)
    if "wechat_id" in out:
        out["wechat_id"] = out["wechat_id"] + f"r{k}"
    if "phone" in out:
        area, cn = 200 + k % 800, f"1{30 + k % 70} {k // 70 % 10}"  # the generator's are +1 650 and +86 138 1
        out["phone"] = (
            out["phone"]
            .str.replace(r"^\+1 650 ", f"+1 {area} ", regex=True)
            .str.replace(r"^\(650\) ", f"({area}) ", regex=True)
            .str.replace(r"^\+86 138 1", f"+86 {cn}", regex=True)
            .str.replace(r"^138-1", cn.replace(" ", "-"), regex=True)
        )
    return out


def _write_region(k: int, n: int, seed: int, end: datetime, days: int, parts: Path, width: int) -> None:
    """One region, simulated and written as `parts/<table>/<k>.parquet` (truth tables under `truth/`)."""
    from leadscope.synth import generate

    company = generate(customers=n, seed=region_seed(seed, k), end=end, days=days)
    frames = {**company.tables, **{f"truth/{name}": df for name, df in company.truth.items()}}
    for name, df in frames.items():
        (parts / name).mkdir(parents=True, exist_ok=True)
        tag_region(df, k, width).to_parquet(parts / name / f"{k:0{width}d}.parquet", index=False)


def _append_parts(folder: Path, target: Path) -> int:
    """The parts of one table appended into one parquet file, one part's row groups at a time (memory holds one
    row group); text or null columns that differ between parts take the type that holds both."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    files = sorted(folder.glob("*.parquet"))
    schemas = [pq.read_schema(f) for f in files]
    schema = pa.unify_schemas(schemas, promote_options="permissive").with_metadata(schemas[0].metadata)
    rows = 0
    tmp = target.with_name(f".{target.name}.tmp")
    with pq.ParquetWriter(tmp, schema) as writer:
        for f in files:
            pf = pq.ParquetFile(f)
            for g in range(pf.num_row_groups):
                part = pf.read_row_group(g)
                writer.write_table(part.select(schema.names).cast(schema))
                rows += part.num_rows
    os.replace(tmp, target)
    return rows


def workers_for(regions: int) -> int:
    """Regions simulated at once: one per core, as many as the free memory holds (REGION_PEAK_GB each)."""
    import psutil

    fits = int(psutil.virtual_memory().available / 1024**3 // REGION_PEAK_GB)
    return max(1, min(regions, os.cpu_count() or 1, fits))


def write_company(
    out: Path, *, customers: int, seed: int, end: datetime, days: int, region: int = REGION, workers: int = 0
) -> dict[str, int]:
    """The company's tables as `<out>/<table>.parquet` and its truth under `<out>/truth/`: rows per table. Up to
    `region` customers one `generate` in this process; above, regions in `workers` processes (0: workers_for)."""
    from leadscope.synth import generate

    sizes = region_sizes(customers, region)
    if len(sizes) == 1:
        company = generate(customers=customers, seed=seed, end=end, days=days)
        company.write(out)
        return {name: len(df) for name, df in company.tables.items()}
    parts = out / PARTS
    shutil.rmtree(parts, ignore_errors=True)
    parts.mkdir(parents=True)
    width = max(3, len(str(len(sizes) - 1)))
    n = workers or workers_for(len(sizes))
    # spawned, one region per process: each region's memory goes back to the system when it ends
    with ProcessPoolExecutor(n, mp_context=get_context("spawn"), max_tasks_per_child=1) as pool:
        jobs = [pool.submit(_write_region, k, m, seed, end, days, parts, width) for k, m in enumerate(sizes)]
        for job in jobs:
            job.result()
    rows = {}
    for folder in sorted(p for p in parts.rglob("*") if p.is_dir() and any(p.glob("*.parquet"))):
        name = folder.relative_to(parts).as_posix()
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        count = _append_parts(folder, out / f"{name}.parquet")
        if not name.startswith("truth/"):
            rows[name] = count
    meta = {"start": (end - timedelta(days=days)).isoformat(), "days": days}  # as Company.write writes it
    (out / "truth" / "world.json").write_text(json.dumps(meta))
    shutil.rmtree(parts)
    return rows
