"""The applier thread of a server process: requests hand it customers and wait (up to
events_apply_wait_seconds); it takes everything handed over so far in one pass (coalescing: under load one pass
serves many requests) and resolves the waiters.

It is supervised: a waiter that stopped waiting (its request timed out and cancelled the future) is skipped, never
fatal; anything else that escapes the loop is counted (`leadscope_live_applier_restarts_total`), kept as the last
error (`/readyz`), and the loop starts again at once with the customers it held, so records posted meanwhile are
applied within the usual time. Records are stored before they are handed over, so nothing is lost either way.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, InvalidStateError
from datetime import UTC, datetime

from serving.observability import LIVE_APPLIER_RESTARTS as RESTARTS

log = logging.getLogger("leadscope.live")
IDLE_SECONDS = 60.0  # an idle loop ends; the next hand-over starts it again


def settle(fut: Future, result: object = None, error: BaseException | None = None) -> None:
    """Resolve a waiter's future unless its request stopped waiting (asyncio cancels the wrapped future then)."""
    try:
        if error is not None:
            fut.set_exception(error)
        else:
            fut.set_result(result)
    except InvalidStateError:
        pass


class Applier:
    """One supervised loop running `run(ids)` passes; `pace()` says how long to wait before the next pass."""

    def __init__(self, run: Callable[[list[str]], None], pace: Callable[[float, bool], float]) -> None:
        self.run, self.pace = run, pace
        self.cv = threading.Condition()
        self.todo: dict[str, None] = {}
        self.waiters: list[Future] = []
        self.thread: threading.Thread | None = None
        self.restarts = 0
        self.last_error: str | None = None

    def submit(self, ids: list[str]) -> Future:
        """Apply these customers soon; the future resolves when their pass ended (or raises what it raised)."""
        fut: Future = Future()
        with self.cv:
            for i in ids:
                self.todo[i] = None
            self.waiters.append(fut)
            if self.thread is None or not self.thread.is_alive():
                self.thread = threading.Thread(target=self._supervise, name="live-apply", daemon=True)
                self.thread.start()
            self.cv.notify()
        return fut

    def _supervise(self) -> None:
        while True:
            try:
                self._loop()
                return  # idle: the next submit starts a new thread
            except BaseException as exc:  # noqa: BLE001 - whatever escaped a pass's own handling: count, restart
                self.restarts += 1
                # the type and time only: /readyz is open, and a message may quote data
                self.last_error = f"{type(exc).__name__} at {datetime.now(UTC).isoformat(timespec='seconds')}"
                RESTARTS.inc()
                log.error("live applier loop failed (%s); started again", type(exc).__name__)
                time.sleep(0.01)

    def _next_batch(self) -> tuple[list[str], list[Future]] | None:
        with self.cv:
            while not self.todo:
                if not self.cv.wait(timeout=IDLE_SECONDS):
                    if not self.todo:
                        self.thread = None
                        return None
            ids, waiters = list(self.todo), self.waiters
            self.todo, self.waiters = {}, []
            return ids, waiters

    def _loop(self) -> None:
        started, took, backlog = 0.0, 0.0, False
        while True:
            pause = self.pace(took, backlog) - (time.monotonic() - started)
            if pause > 0:
                time.sleep(pause)
            batch = self._next_batch()
            if batch is None:
                return
            ids, waiters = batch
            started = time.monotonic()
            try:
                self.run(ids)
            except Exception as exc:  # noqa: BLE001 - stored records are replayed; requests are told not applied
                log.warning("live apply failed (records stay stored, replayed later): %s", type(exc).__name__)
                for w in waiters:
                    settle(w, error=exc)
                continue
            except BaseException:
                with self.cv:  # the supervisor starts again with these customers
                    self.todo = dict.fromkeys(ids) | self.todo
                    self.waiters = waiters + self.waiters
                raise
            took = time.monotonic() - started
            with self.cv:
                backlog = bool(self.todo)
            for w in waiters:
                settle(w, True)
