"""Writing a live pass's feature rows into Feast's online store: the value protos built here, and on SQLite one
transaction with executemany (Feast's private connection and table naming: the door issue #38 asks to close
into one module with the batch writer, features/online_write.py)."""

from __future__ import annotations

from datetime import datetime

import pandas as pd
from feast.protos.feast.types.EntityKey_pb2 import EntityKey as EntityKeyProto
from feast.protos.feast.types.Value_pb2 import Value as ValueProto

from leadscope.schema import ENTITY, TS


def protos(df: pd.DataFrame) -> list[tuple[EntityKeyProto, dict[str, ValueProto]]]:
    """(entity key, value per feature) per row, the protos Feast's online stores take."""
    cols = [(c, df[c].to_numpy()) for c in df.columns if c not in (ENTITY, TS)]
    out = []
    for j, cid in enumerate(df[ENTITY].tolist()):
        values = {}
        for name, arr in cols:
            v = arr[j]
            if v is None or v is pd.NA or (isinstance(v, float) and v != v):
                values[name] = ValueProto()
            elif isinstance(v, str):
                values[name] = ValueProto(string_val=v)
            else:
                values[name] = ValueProto(double_val=float(v))
        out.append((EntityKeyProto(join_keys=[ENTITY], entity_values=[ValueProto(string_val=cid)]), values))
    return out


def sqlite_upsert(store: object, provider: object, views: dict, when: datetime) -> None:
    """Every view's rows into Feast's SQLite online tables in one transaction, with executemany. Feast 0.67's own
    SqliteOnlineStore.online_write_batch runs the same upsert statement one row at a time and commits per view (about
    1 ms per customer, most of a live pass); the rows, their encoding (Feast's serialize_entity_key, the value
    proto, value_text) and the table names are Feast's, so Feast reads them back unchanged (tests compare every
    column with a batch rebuild read through Feast)."""
    from feast.infra.key_encoding_utils import serialize_entity_key
    from feast.infra.online_stores.helpers import compute_table_id
    from feast.utils import to_naive_utc

    config = store.config
    assert not getattr(config.online_store, "vector_enabled", False)
    assert not getattr(config.online_store, "enable_openai_compatible_store", False)
    conn = provider.online_store._get_conn(config)  # noqa: SLF001
    ts = to_naive_utc(when)
    version = config.entity_key_serialization_version
    versioning = config.registry.enable_online_feature_view_versioning
    with conn:
        for fv, data in views.items():
            table = compute_table_id(config.project, fv, versioning).replace('"', '""')
            sql = (
                f'INSERT INTO "{table}" (entity_key, feature_name, value, value_text, event_ts, created_ts) '
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(entity_key, feature_name) DO UPDATE SET "
                "value = excluded.value, value_text = excluded.value_text, event_ts = excluded.event_ts, "
                "created_ts = excluded.created_ts"
            )
            conn.executemany(
                sql,
                [
                    (
                        key_bin,
                        name,
                        val.SerializeToString(),
                        val.string_val
                        if val.HasField("string_val")
                        else (str(val.double_val) if val.HasField("double_val") else None),
                        ts,
                        ts,
                    )
                    for key, values in data
                    for key_bin in (serialize_entity_key(key, entity_key_serialization_version=version),)
                    for name, val in values.items()
                ],
            )
