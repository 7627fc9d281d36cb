"""Whole-population reads of one feature snapshot, built on first use and shared by this process's requests: the
lookalike population, the customers' identifiers for exports, the next-best-action contact history. A new
materialisation or champion drops them, so the next use reads the new snapshot."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

import pandas as pd
from feast import FeatureStore

from features.contract import consented
from leadscope.settings import Settings
from leadscope.tables import read_table
from training.lookalike import Population

T = TypeVar("T")


class Snapshots:
    def __init__(self, settings: Settings, store: FeatureStore) -> None:
        self.settings, self.store = settings, store
        self._lock = threading.RLock()  # one build at a time, the others wait; a build may use another memo
        self._built: dict[str, object] = {}

    def memo(self, key: str, build: Callable[[], T]) -> T:
        """The value built for `key` from the current snapshot (built now if it is not there yet)."""
        with self._lock:
            if key not in self._built:
                self._built[key] = build()
            return self._built[key]  # type: ignore[return-value]

    def get(self, key: str) -> object | None:
        """What `memo` built for `key` from the current snapshot, or None (nothing is built here)."""
        with self._lock:
            return self._built.get(key)

    def drop(self) -> None:
        with self._lock:
            self._built = {}

    def population(self) -> Population:
        """Everyone's features at the newest snapshot (offline store, point in time), for audience builds."""
        from training import population

        return self.memo("population", lambda: population.load(self.settings, self.store))

    def contacts(self) -> pd.DataFrame:
        """The customers table's identifiers and ads consent (exports hash them; nothing else reads them)."""
        from serving.audiences.export import contacts_of

        return self.memo("contacts", lambda: contacts_of(read_table(self.settings.raw_dir, "customers")))

    def ads_consenting(self) -> frozenset[str]:
        """Ids whose consent_ads parses as true (conversion signals look them up per event)."""

        def build() -> frozenset[str]:
            contacts = self.contacts()
            if "consent_ads" not in contacts:
                return frozenset()
            allowed = consented(contacts["consent_ads"], contacts.index)
            return frozenset(contacts["customer_id"].astype(str)[allowed])

        return self.memo("ads_consenting", build)
