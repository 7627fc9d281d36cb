"""Reading a company's files: CSV (UTF-8 with or without a BOM; `,` `;` tab or `|`) and parquet, refused as a whole
before anything is held that the import limits do not allow (rows, cell size, file size)."""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from leadscope.schema import REQUIRED

NOT_UTF8 = "not valid UTF-8"
DELIMITERS = ",;\t|"
ARROW_TEXT = pd.StringDtype("pyarrow")


class FileRefused(ValueError):
    """The file as a whole cannot be imported; the message names the file (and row and column where one is to
    blame) and says why."""


@dataclass(frozen=True)
class Limits:
    max_rows: int = 50_000_000
    max_cell_bytes: int = 65_536
    max_file_bytes: int = 8 * 1024**3


def read(path: Path, table: str, limits: Limits = Limits()) -> pd.DataFrame:
    """CSV (UTF-8, any of , ; tab | as delimiter, BOM allowed) or parquet → values as written; refuses files that
    are not this table at all or break a size limit, before holding more than the limits allow."""
    if not path.exists():
        raise FileRefused(f"{path.name}: no such file")
    if path.suffix.lower() in (".parquet", ".pq"):
        df = _read_parquet(path, limits)
    else:
        df = _read_csv(path, limits)
    df.columns = [str(c).strip() for c in df.columns]
    if any(("\x00" in c) or any("\udc80" <= ch <= "\udcff" for ch in c) for c in df.columns):
        raise FileRefused(
            f"{path.name}: the header is not UTF-8 text (UTF-16 or another encoding?); re-export the file as UTF-8"
        )
    missing = [c for c in REQUIRED[table] if c not in df.columns]
    if missing:
        hint = _delimiter_hint(df)
        raise FileRefused(f"{path.name}: missing required column(s) {', '.join(missing)} for table '{table}'{hint}")
    if len(df) > limits.max_rows:
        raise FileRefused(f"{path.name}: {len(df):,} rows, more than the import limit of {limits.max_rows:,}")
    _check_cells(path.name, df, limits)
    if len(df) and not_utf8(df).mean() > 0.5:
        raise FileRefused(f"{path.name}: most rows are not UTF-8 text; re-export the file as UTF-8")
    return df


def _read_parquet(path: Path, limits: Limits) -> pd.DataFrame:
    import pyarrow.parquet as pq

    try:
        meta = pq.ParquetFile(path).metadata
    except Exception as exc:  # noqa: BLE001 - not a parquet file at all
        raise FileRefused(f"{path.name}: cannot be read as parquet ({type(exc).__name__})") from None
    if meta.num_rows > limits.max_rows:
        raise FileRefused(f"{path.name}: {meta.num_rows:,} rows, more than the import limit of {limits.max_rows:,}")
    for g in range(meta.num_row_groups):
        group = meta.row_group(g)
        for c in range(group.num_columns):
            col = group.column(c)
            # the mean cell of a column chunk over the limit means some cell is: refused before it is read
            if group.num_rows and col.total_uncompressed_size / group.num_rows > limits.max_cell_bytes:
                raise FileRefused(
                    f"{path.name}: column {col.path_in_schema} holds values over the cell limit of "
                    f"{limits.max_cell_bytes:,} bytes (LEADSCOPE_IMPORT_MAX_CELL_BYTES)"
                )
    size = sum(meta.row_group(g).total_byte_size for g in range(meta.num_row_groups))
    if size > limits.max_file_bytes:  # the encoded size already: a lower bound of what the values take
        raise FileRefused(f"{path.name}: {size:,} bytes uncompressed, over the limit of {limits.max_file_bytes:,}")
    return _read_parquet_bounded(path, limits)


def _read_parquet_bounded(path: Path, limits: Limits) -> pd.DataFrame:
    """Reads in batches of bounded size and counts what the values take once decoded, refusing the file as soon as
    that passes the file limit. The metadata's sizes are the encoded ones: a dictionary-encoded column of one long
    value repeated (a "parquet bomb") is small on disk and in the metadata yet decodes to gigabytes. Text columns
    are read as dictionaries, so a batch holds each distinct value once; the decoded size is counted from the
    dictionary's value lengths, and values are decoded only once the whole file is known to fit. Hand-written:
    pyarrow has no reader-side memory cap for parquet (its memory pools do not refuse, they fail)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    try:
        schema = pq.read_schema(path)
        nested = [f.name for f in schema if pa.types.is_nested(f.type)]
        if nested:
            raise FileRefused(f"{path.name}: column {nested[0]} is a list, struct or map: export flat columns")
        text = [f.name for f in schema if _is_text(f.type) or _is_text(getattr(f.type, "value_type", None))]
        pf = pq.ParquetFile(path, read_dictionary=text)
        batches, decoded = [], 0
        # a batch holds fixed-width values and dictionary indices (at most 16 bytes a cell) and each distinct text
        # value once: its memory is bounded before its values are counted
        for batch in pf.iter_batches(batch_size=65_536):
            for name, col in zip(batch.schema.names, batch.columns, strict=True):
                if pa.types.is_dictionary(col.type) and _is_text(col.type.value_type):
                    lengths = pc.binary_length(col.dictionary)
                    longest = pc.max(lengths).as_py() or 0
                    if longest > limits.max_cell_bytes:
                        raise FileRefused(
                            f"{path.name}: column {name} holds values over the cell limit of "
                            f"{limits.max_cell_bytes:,} bytes (LEADSCOPE_IMPORT_MAX_CELL_BYTES)"
                        )
                    decoded += (pc.sum(pc.take(lengths, col.indices)).as_py() or 0) + 8 * len(col)
                else:
                    decoded += col.nbytes
            if decoded > limits.max_file_bytes:
                raise FileRefused(
                    f"{path.name}: its values take more than {limits.max_file_bytes:,} bytes once read "
                    "(LEADSCOPE_IMPORT_MAX_FILE_BYTES)"
                )
            batches.append(batch)
        table = pa.Table.from_batches(batches) if batches else pf.schema_arrow.empty_table()
        table = table.cast(pa.schema([_decoded_field(f) for f in table.schema]))
        return table.to_pandas()
    except FileRefused:
        raise
    except Exception as exc:  # noqa: BLE001 - any reader failure means the file is unreadable as a table
        raise FileRefused(f"{path.name}: cannot be read as parquet ({type(exc).__name__})") from None


def _is_text(t) -> bool:  # noqa: ANN001 - a pyarrow DataType (or None)
    import pyarrow as pa

    if t is None:
        return False
    return pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_binary(t) or pa.types.is_large_binary(t)


def _decoded_field(f):  # noqa: ANN001, ANN202 - a pyarrow Field → the same field with dictionaries decoded
    import pyarrow as pa

    return f.with_type(f.type.value_type) if pa.types.is_dictionary(f.type) else f


def _read_csv(path: Path, limits: Limits) -> pd.DataFrame:
    size = path.stat().st_size
    if size == 0:
        raise FileRefused(f"{path.name}: the file is empty")
    if size > limits.max_file_bytes:
        raise FileRefused(f"{path.name}: {size:,} bytes, over the import limit of {limits.max_file_bytes:,}")
    with open(path, encoding="utf-8-sig", errors="surrogateescape", newline="") as fh:
        sample = fh.read(65_536)
    try:
        delimiter = csv.Sniffer().sniff(sample.split("\n", 1)[0], delimiters=DELIMITERS).delimiter
    except csv.Error:
        delimiter = ","
    header = next(csv.reader([sample.split("\n", 1)[0].rstrip("\r")], delimiter=delimiter), [])
    fast = _read_csv_arrow(path, delimiter, header)
    if fast is not None:
        return fast
    try:
        return pd.read_csv(
            path,
            sep=delimiter,
            dtype=str,
            keep_default_na=False,
            na_values=[""],
            encoding="utf-8-sig",
            encoding_errors="surrogateescape",
        )
    except pd.errors.EmptyDataError:
        raise FileRefused(f"{path.name}: the file is empty") from None
    except Exception as exc:  # noqa: BLE001 - any parser failure means the file is unreadable as a table
        raise FileRefused(f"{path.name}: cannot be read as CSV or parquet ({type(exc).__name__})") from None


def _read_csv_arrow(path: Path, delimiter: str, header: list[str]) -> pd.DataFrame | None:
    """The multi-threaded Arrow CSV reader, every column as text (Arrow-backed strings, which the contract's
    parsers handle with Arrow kernels). None when Arrow cannot read the file as valid UTF-8 with this header:
    the pandas reader then reports row by row what is wrong."""
    import pyarrow as pa
    from pyarrow import csv as pv

    names = [h.strip() for h in header]
    if not names or len(set(names)) != len(names):
        return None
    try:
        table = pv.read_csv(
            path,
            read_options=pv.ReadOptions(column_names=names, skip_rows=1, block_size=1 << 24),
            # a line break inside a value needs quotes around it: a file without a quote character has none, and
            # Arrow then splits it into blocks without tracking quotes (a third faster on 10 M rows)
            parse_options=pv.ParseOptions(delimiter=delimiter, newlines_in_values=_has_quote(path)),
            convert_options=pv.ConvertOptions(
                column_types={n: pa.large_string() for n in names},  # pandas' Arrow strings: no copy to convert
                strings_can_be_null=True,
                quoted_strings_can_be_null=True,
                null_values=[""],
            ),
        )
    except (pa.ArrowInvalid, pa.ArrowKeyError, UnicodeError):  # not UTF-8: the pandas reader says where
        return None
    return table.to_pandas(types_mapper={pa.large_string(): ARROW_TEXT}.get)


def _has_quote(path: Path) -> bool:
    """Whether the file holds a double quote anywhere (one memchr pass over the mapped file)."""
    import mmap

    with open(path, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        return mm.find(b'"') != -1


def _delimiter_hint(df: pd.DataFrame) -> str:
    if len(df.columns) != 1:
        return ""
    return f" (its header is one field: is it delimited by something other than {DELIMITERS!r}?)"


def _check_cells(name: str, df: pd.DataFrame, limits: Limits) -> None:
    """Refuse a file with a value longer than the cell limit, naming its row and column."""
    import pyarrow.compute as pc

    for col in df.columns:
        if df[col].dtype == ARROW_TEXT:  # bytes counted by one Arrow kernel, no Series of lengths
            longest = pc.max(pc.binary_length(df[col].array.__arrow_array__())).as_py() or 0
            if longest <= limits.max_cell_bytes:
                continue
        chars = _str_op(df[col], lambda s: s.str.len(), lambda v: len(v))
        if chars is None:
            continue
        chars = chars.fillna(0).astype("int64")
        if not len(chars) or chars.max() * 4 <= limits.max_cell_bytes:  # UTF-8: at most 4 bytes a character
            continue
        long = df[col][chars * 4 > limits.max_cell_bytes]
        size = long.map(lambda v: len(v.encode("utf-8", "surrogateescape")) if isinstance(v, str) else 0)
        if size.max() > limits.max_cell_bytes:
            row = int(df.index.get_loc(size.idxmax())) + 1
            raise FileRefused(
                f"{name}: row {row}, column {col}: a value of {size.max():,} bytes, over the cell limit of "
                f"{limits.max_cell_bytes:,} (LEADSCOPE_IMPORT_MAX_CELL_BYTES)"
            )


def _str_op(s: pd.Series, vectorised, each):  # noqa: ANN001, ANN202 - Series → Series of the op, or None
    """A string operation over a text column, vectorised where pandas can (an object column of flags cannot)."""
    if s.dtype != object and not pd.api.types.is_string_dtype(s):
        return None
    try:
        return vectorised(s)
    except AttributeError:
        return s.map(lambda v: each(v) if isinstance(v, str) else 0)


_SURROGATE = re.compile(r"[\udc80-\udcff]")


def not_utf8(df: pd.DataFrame) -> pd.Series:
    """Rows holding bytes that were not UTF-8 (read back as lone surrogates)."""
    bad = pd.Series(False, index=df.index)
    for col in df.columns:
        if df[col].dtype == ARROW_TEXT:  # Arrow checked the bytes while reading
            continue
        hit = _str_op(
            df[col],
            lambda s: s.str.contains(_SURROGATE.pattern, regex=True, na=False),
            lambda v: bool(_SURROGATE.search(v)),
        )
        if hit is not None:
            bad |= hit.fillna(False).astype(bool)
    return bad
