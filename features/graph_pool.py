"""The graph view on the local engine in worker processes, beside the build's other views.

The graph view is most of a local build (at 200,000 customers 110 s of 151 s, 86 s of it igraph's Leiden, which
holds the GIL: threads would not help), and its blocks of cuts (graphs/features.py cut_blocks) depend on nothing
before them. So `graph_workers` processes compute the blocks with the same function as the one-process loop
(graph_feature_cuts) while the build computes the per-customer views, and the build takes the blocks' frames in
cut order. Each worker reads the graph's inputs from the raw tables once (the same as graph_inputs gives the
build). At most two blocks per worker are computed ahead of the one the build takes, so memory stays bounded
whatever the number of cuts. concurrent.futures' process pool with the spawn start method: the build's process
has threads (DuckDB, Arrow, the progress display), which a fork would copy mid-lock.
"""

from __future__ import annotations

import multiprocessing
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor

import pandas as pd

from leadscope.settings import Settings

_INPUTS: dict[str, object] = {}  # a worker's graph inputs, read once by _load


def _load(settings: Settings) -> None:
    from features.inputs import graph_inputs, graph_tables

    _INPUTS.update(graph_inputs(settings, graph_tables(settings)))


def _block(cuts: list[str]) -> list[pd.DataFrame]:
    from graphs.features import graph_feature_cuts

    return list(graph_feature_cuts(**_INPUTS, cuts=pd.DatetimeIndex(pd.to_datetime(cuts, utc=True))))  # type: ignore[arg-type]


class GraphPool:
    """The graph view's blocks, started at once in `workers` processes; iterate for the frames in cut order."""

    def __init__(self, settings: Settings, cuts: pd.DatetimeIndex, workers: int, spans: list[range]) -> None:
        self.cuts = cuts
        self.spans = spans  # one block of cut times (graphs/features.py cut_blocks) per task
        self.ahead = 2 * workers
        self.pool = ProcessPoolExecutor(
            max_workers=workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_load,
            initargs=(settings,),
        )
        self.pending: deque[Future] = deque()
        self.next = 0
        self._fill()

    def _fill(self) -> None:
        while self.next < len(self.spans) and len(self.pending) < self.ahead:
            span = self.spans[self.next]
            self.pending.append(self.pool.submit(_block, [self.cuts[i].isoformat() for i in span]))
            self.next += 1

    def __iter__(self) -> Iterator[pd.DataFrame]:
        while self.pending:
            frames = self.pending.popleft().result()
            self._fill()
            yield from frames

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)
