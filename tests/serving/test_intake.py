"""The intake process (serving/intake.py): records stored once each, every request answered with its own new
records, and when the process dies the requests in flight fail and the server's writer thread stores the next."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from datetime import UTC, datetime, timedelta

import pytest

from features import live
from serving.intake import Gone, IntakeProcess
from serving.records import Intake


def _records(tag: str, n: int) -> list[live.Record]:
    t = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)
    return [live.Record(f"{tag}{i}", "event", f"C{i % 3}", t + timedelta(seconds=i), {"n": i}) for i in range(n)]


async def _started(proc: IntakeProcess) -> None:
    deadline = time.monotonic() + 60
    while proc.state == "starting" and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    assert proc.state == "process"


def test_the_intake_process_stores_each_record_once_and_answers_each_request(tmp_path) -> None:
    # broken: a request told its records are stored when another request's copy was, a record stored twice, or
    # answers crossed between requests committed together
    url = f"sqlite:///{tmp_path / 'live.db'}"

    async def run() -> list[list[live.Record]]:
        proc = IntakeProcess(url)
        try:
            await _started(proc)
            a, b = _records("a", 40), _records("b", 40)
            first = await proc.add(a[:10])
            assert [r.record_id for r in first] == [f"a{i}" for i in range(10)]
            # concurrent requests, overlapping ids: committed together or not, each id is stored by one of them
            return [first, *await asyncio.gather(proc.add(a[5:25]), proc.add(b), proc.add(a[20:40] + b[:5]))]
        finally:
            proc.close()

    answers = asyncio.run(run())
    ids = [r.record_id for answer in answers for r in answer]
    assert sorted(ids) == sorted({f"a{i}" for i in range(40)} | {f"b{i}" for i in range(40)})
    assert len(ids) == len(set(ids)) == 80
    assert [r.record_id for r in answers[1]][:5] == [f"a{i}" for i in range(10, 15)]  # a5..a9 were duplicates
    stored = live.LiveLog(url)
    assert stored.newest() == 80
    assert {r.record_id: r.row for _, r in stored.since(0, 100)} == {
        r.record_id: r.row for r in _records("a", 40) + _records("b", 40)
    }


def test_a_killed_intake_process_fails_its_requests_and_the_thread_stores_the_next(tmp_path) -> None:
    # broken: a request waiting on a dead process hangs, or every later request fails instead of being stored
    url = f"sqlite:///{tmp_path / 'live.db'}"
    log = live.LiveLog(url)

    async def run() -> None:
        proc = IntakeProcess(url)
        intake = Intake(log, proc)
        try:
            await _started(proc)
            assert intake.where() == "process"
            assert len(await intake.store(_records("x", 3))) == 3
            os.kill(proc.proc.pid, signal.SIGSTOP)  # in flight when it dies
            waiting = asyncio.ensure_future(proc.add(_records("y", 3)))
            await asyncio.sleep(0.2)
            os.kill(proc.proc.pid, signal.SIGKILL)
            with pytest.raises(Gone):
                await asyncio.wait_for(waiting, 10)
            assert intake.where() == "thread"
            assert await proc.add(_records("z", 1)) is None  # nothing sent to a dead process
            assert [r.record_id for r in await intake.store(_records("z", 2))] == ["z0", "z1"]
        finally:
            proc.close()

    asyncio.run(run())
    assert {r.record_id for _, r in log.since(0, 100)} == {"x0", "x1", "x2", "z0", "z1"}
