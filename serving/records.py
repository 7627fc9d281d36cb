"""Live records stored and announced: the writer thread that group-commits POST /v1/events records when the intake
process (serving/intake.py) does not run, and the change hint every worker reads before a score."""

from __future__ import annotations

import asyncio
import os
import threading
from concurrent.futures import Future

from features import live
from leadscope.settings import Settings
from serving.applier import settle
from serving.intake import IntakeProcess


class Hint:
    """A number every writer raises after a change and every reader compares: a file read embedded, a Redis GET
    in production. Only a changed hint sends a reader to the change feed."""

    def __init__(self, settings: Settings) -> None:
        self.redis = None
        if settings.profile == "production" and settings.redis_url:
            import redis

            self.redis = redis.Redis.from_url(settings.redis_url)
            self.key = "leadscope:live:feed"
        else:
            path = settings.resolve(settings.data_dir) / "live.hint"
            path.parent.mkdir(parents=True, exist_ok=True)
            self.fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)

    def read(self) -> bytes:
        if self.redis is not None:
            return self.redis.get(self.key) or b""
        return os.pread(self.fd, 8, 0)

    def bump(self, seq: int) -> None:
        if self.redis is not None:
            self.redis.set(self.key, str(seq))
        else:
            os.pwrite(self.fd, int(seq).to_bytes(8, "little"), 0)


class Intake:
    """Group commit of live records: requests hand their checked records to one writer thread and wait; it stores
    everything handed over meanwhile in one transaction (one fsync), so concurrent requests share a commit and no
    request blocks the event loop on SQLite. Whichever of two requests with the same id comes first stores it."""

    def __init__(self, log: live.LiveLog, process: IntakeProcess | None = None) -> None:
        self.log = log
        self.process = process  # serving/intake.py: where requests store when it runs
        self.cv = threading.Condition()
        self.queue: list[tuple[list[live.Record], Future]] = []
        threading.Thread(target=self._run, name="live-intake", daemon=True).start()

    async def store(self, recs: list[live.Record]) -> list[live.Record]:
        """The records of `recs` stored now (the others were stored before): through the intake process when it
        runs, else through the writer thread."""
        if self.process is not None:
            stored = await self.process.add(recs)
            if stored is not None:
                return stored
        return await asyncio.wrap_future(self.add(recs))

    def where(self) -> str:
        return "thread" if self.process is None or self.process.state == "gone" else self.process.state

    def add(self, recs: list[live.Record]) -> Future:
        """A future of the records of `recs` stored now (the others were stored before)."""
        fut: Future = Future()
        with self.cv:
            self.queue.append((recs, fut))
            self.cv.notify()
        return fut

    def _run(self) -> None:
        while True:
            with self.cv:
                while not self.queue:
                    self.cv.wait()
                batch, self.queue = self.queue, []
            try:
                stored = {id(r) for r in self.log.add([r for recs, _ in batch for r in recs])}
            except Exception as exc:  # noqa: BLE001 - each request answers 503, nothing of it stored
                for _, fut in batch:
                    settle(fut, error=exc)
                continue
            for recs, fut in batch:
                settle(fut, [r for r in recs if id(r) in stored])
