"""The intake process: POST /v1/events stores its records through a small process of its own (one per server
worker) instead of a thread of the server.

Why a process: a commit is one fsync (0.2 ms on this machine at idle), but handing the records to a writer thread
and back cost 11 ms p50 and 25 ms p90 under benchmarks/freshness.py's mixed load: the thread waits for a core and
the interpreter lock each time it wakes, around every SQLite call (a smaller switch interval changed nothing). The
server's side of a process is the event loop alone (a non-blocking write and a read callback, no lock to share),
and a commit that stalls on the disk (up to 222 ms measured under that load; fsync alone at idle: p99 8.8 ms,
max 455 ms) stalls only this process: committing on the event loop itself was tried and refused for that reason.

The process reads length-prefixed pickled requests from a socket pair, stores everything that arrived meanwhile in
one transaction (group commit, as the thread did) and answers each request with the positions of its records that
were new. It imports SQLAlchemy and the log (features/livelog.py), nothing heavier, and exits when the server's end
of the socket closes (also when the server is killed). Until it has started, and if it dies, requests use the
server's writer thread (serving/live.py Intake): records are stored either way, before the 202.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import pickle
import socket
import struct
import subprocess
import sys

log = logging.getLogger("leadscope.live")
HEADER = struct.Struct("!I")
URL_ENV = "LEADSCOPE_INTAKE_DATABASE_URL"  # not in argv: a PostgreSQL URL may hold a password


class Gone(ConnectionError):
    """The intake process ended with this request unanswered: its records may or may not be stored."""


class IntakeProcess:
    def __init__(self, database_url: str) -> None:
        ours, theirs = socket.socketpair()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "serving.intake", str(theirs.fileno())],
            pass_fds=(theirs.fileno(),),
            env={**os.environ, URL_ENV: database_url},
            stdin=subprocess.DEVNULL,
        )
        theirs.close()
        self.sock = ours
        self.state = "starting"  # → process (answered "ready") → gone
        self.closing = False  # set by close(): the end of the connection is then expected, not news
        self.pending: dict[int, asyncio.Future] = {}
        self.next = 0
        self.writer: asyncio.StreamWriter | None = None
        self.reader_task: asyncio.Task | None = None
        with contextlib.suppress(RuntimeError):  # on the server's event loop: listen for "ready" at once
            self.reader_task = asyncio.get_running_loop().create_task(self._connect())

    async def _connect(self) -> None:
        reader, self.writer = await asyncio.open_unix_connection(sock=self.sock)
        await self._read(reader)

    async def add(self, recs: list) -> list | None:
        """The records of `recs` stored now; None when the process cannot take them (starting, gone): nothing was
        sent then. Raises Gone when it ended after they were sent."""
        if self.reader_task is None:  # made outside an event loop: listen from the first request's
            self.reader_task = asyncio.create_task(self._connect())
        if self.state != "process" or self.writer is None:
            return None
        self.next += 1
        n = self.next
        fut = asyncio.get_running_loop().create_future()
        self.pending[n] = fut
        payload = pickle.dumps((n, recs), protocol=pickle.HIGHEST_PROTOCOL)
        self.writer.write(HEADER.pack(len(payload)) + payload)
        await self.writer.drain()  # a process that stopped reading holds requests back, not the server's memory
        kept = await fut
        return [recs[i] for i in kept]

    async def _read(self, reader: asyncio.StreamReader) -> None:
        try:
            while True:
                size = HEADER.unpack(await reader.readexactly(HEADER.size))[0]
                msg = pickle.loads(await reader.readexactly(size))  # noqa: S301 - our own child, on a socket pair
                if msg == "ready":
                    self.state = "process"
                    continue
                n, kept, error = msg
                fut = self.pending.pop(n, None)
                if fut is None or fut.done():
                    continue
                if error is None:
                    fut.set_result(kept)
                else:
                    fut.set_exception(RuntimeError(f"intake process: {error}"))
        except (asyncio.IncompleteReadError, OSError, pickle.UnpicklingError) as exc:
            if not self.closing:
                log.warning(
                    "live intake process ended (%s); records are stored by the server's thread", type(exc).__name__
                )
        finally:
            self.state = "gone"
            for fut in self.pending.values():
                if not fut.done():
                    fut.set_exception(Gone("the intake process ended before answering"))
            self.pending.clear()

    def close(self) -> None:
        """Outside the event loop (a CLI): close and wait for the process."""
        self.closing = True
        with contextlib.suppress(Exception):
            if self.writer is not None:
                self.writer.close()
            self.sock.close()
        self._reap()

    async def aclose(self) -> None:
        """On the server's event loop: the transport's own socket is closed by the loop (uvloop duplicates the
        socket it is given, so closing ours alone leaves the process waiting for an end that never comes: a stop
        took 10 s), then the process is waited for off the loop."""
        self.closing = True
        with contextlib.suppress(Exception):
            if self.writer is not None:
                self.writer.close()
                await asyncio.wait_for(self.writer.wait_closed(), timeout=2)
        with contextlib.suppress(Exception):
            self.sock.close()
        await asyncio.to_thread(self._reap)

    def _reap(self) -> None:
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def _frames(buf: bytearray) -> list[bytes]:
    """The complete frames at the start of `buf`, removed from it."""
    out = []
    while len(buf) >= HEADER.size:
        size = HEADER.unpack_from(buf)[0]
        if len(buf) < HEADER.size + size:
            break
        out.append(bytes(buf[HEADER.size : HEADER.size + size]))
        del buf[: HEADER.size + size]
    return out


def _send(sock: socket.socket, msgs: list[object]) -> None:
    data = [pickle.dumps(m, protocol=pickle.HIGHEST_PROTOCOL) for m in msgs]
    sock.sendall(b"".join(HEADER.pack(len(d)) + d for d in data))


def main(fd: int) -> None:
    from features.livelog import LiveLog
    from leadscope.settings import quiet_environment

    quiet_environment()
    sock = socket.socket(fileno=fd)
    store = LiveLog(os.environ[URL_ENV])
    _send(sock, ["ready"])
    buf = bytearray()
    while True:
        frames = _frames(buf)
        while not frames:  # block for the next request; then take everything that arrived with it
            try:
                chunk = sock.recv(1 << 20)
            except OSError:  # the server closed its end with a request unread: it is gone all the same
                return
            if not chunk:
                return  # the server is gone
            buf += chunk
            frames = _frames(buf)
        batch = [pickle.loads(f) for f in frames]  # noqa: S301 - our own server, on a socket pair
        try:
            stored = {id(r) for r in store.add([r for _, recs in batch for r in recs])}
        except Exception as exc:  # noqa: BLE001 - each request answers 503, nothing of it stored
            _send(sock, [(n, None, type(exc).__name__) for n, _ in batch])
            continue
        _send(sock, [(n, [i for i, r in enumerate(recs) if id(r) in stored], None) for n, recs in batch])


if __name__ == "__main__":
    main(int(sys.argv[1]))
