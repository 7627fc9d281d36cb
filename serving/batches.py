"""Small score requests that arrive together are scored together.

Under load a /v1/scores request for one customer spends most of its time in two fixed costs: one online-store
read and one LightGBM TreeSHAP call, each about as dear for one row as for a dozen. Requests that reach the event
loop in the same turn (under load: every request that queued while the previous pass ran) are answered by one
`score_items` pass over all their ids: one cache pass, one read and one TreeSHAP call for the customers it misses.
At low load a pass holds a single request and waits for nothing: it is the loop's next callback, not a timer.

Not a batching library: the ones on PyPI (e.g. for model servers) add a timer or a queue thread; here the event
loop's own turn is the window, which adds no latency and needs no thread.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from serving.schemas import ModelInfo, ScoreItem

Answer = tuple[list[ModelInfo], list[ScoreItem]]


class ScoreBatches:
    def __init__(self, run: Callable[[list[str], list[str]], Answer]) -> None:
        """`run(models, ids)` → (model infos, one ScoreItem per id in order), called on the event loop."""
        self.run = run
        self.pending: dict[tuple[str, ...], list[tuple[list[str], asyncio.Future]]] = {}
        self.passes = 0  # how many passes ran, and for how many requests (a test reads them)
        self.requests = 0

    def submit(self, models: list[str], ids: list[str]) -> asyncio.Future:
        """A future of (model infos, items for `ids`), answered by the next pass for these models."""
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        key = tuple(models)
        queue = self.pending.setdefault(key, [])
        queue.append((ids, fut))
        if len(queue) == 1:
            loop.call_soon(self._flush, key)
        return fut

    def _flush(self, key: tuple[str, ...]) -> None:
        waiting = [(ids, f) for ids, f in self.pending.pop(key, []) if not f.done()]  # a timed-out request left
        if not waiting:
            return
        unique = list(dict.fromkeys(cid for ids, _ in waiting for cid in ids))
        self.passes += 1
        self.requests += len(waiting)
        try:
            infos, items = self.run(list(key), unique)
        except BaseException as exc:  # noqa: BLE001 - each request answers with the error it would have had alone
            for _, f in waiting:
                f.set_exception(exc)
            return
        by_id = dict(zip(unique, items, strict=True))
        for ids, f in waiting:
            f.set_result((infos, [by_id[cid] for cid in ids]))
