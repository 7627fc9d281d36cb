"""The applier in a child process of each server (live_apply_process), and the webhook deliverer thread."""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time

from leadscope.settings import Settings
from serving.live import Live
from serving.webhooks import Webhooks

log = logging.getLogger("leadscope.live")
GRACE_SECONDS = 1.0  # how long a closing server waits for the child to end by itself, then for SIGTERM


class Child:
    """The applier in its own process (live_apply_process): a pass is CPU-bound Python (pandas, Feast's write,
    TreeSHAP) and would hold the server's interpreter lock while requests wait; in a child it runs on the other
    core. The child loads its own champions and store, follows new champions and materialisations, and exits when
    the server's end of the pipe closes (also when the server is killed). Until it is ready, passes run in the
    server's applier thread."""

    def __init__(self, settings: Settings, origin: str) -> None:
        import multiprocessing as mp

        self.ready = threading.Event()
        self.lock = threading.Lock()
        self.closing = False
        ctx = mp.get_context("spawn")
        self.conn, theirs = ctx.Pipe()
        self.proc = ctx.Process(
            target=_child_main, args=(settings.model_dump(), theirs, origin), daemon=True, name="live"
        )
        self.proc.start()
        theirs.close()
        threading.Thread(target=self._wait_ready, name="live-child", daemon=True).start()

    def _wait_ready(self) -> None:
        try:
            if self.conn.recv() == ("ready", None):
                self.ready.set()
        except (EOFError, OSError, TypeError):  # TypeError: the server closed the pipe meanwhile (stopping)
            if not self.closing:
                log.warning("live applier process did not start; passes run in the server")

    def apply(self, ids: list[str]) -> tuple[bool, list]:
        """One pass in the child: (whether it stored webhook messages, the cache rows it wrote: the server puts
        them in its own cache). Raises what the pass raised."""
        with self.lock:
            self.conn.send(ids)
            kind, value = self.conn.recv()
        if kind == "error":
            raise RuntimeError(f"live pass failed in the applier process: {value}")
        return value

    def close(self) -> None:
        """Close the pipe: the child sees its end and exits after the pass it is in (a pass takes well under a
        second). A child still loading cannot see it: after GRACE_SECONDS it is terminated (it holds nothing that
        is not stored: records are applied again by replay), so a server stops in seconds, not at a timeout."""
        self.closing = True
        with contextlib.suppress(Exception):
            self.conn.close()
        self.proc.join(timeout=GRACE_SECONDS)
        if self.proc.is_alive():
            self.proc.terminate()
            self.proc.join(timeout=GRACE_SECONDS)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join(timeout=GRACE_SECONDS)


def _child_main(settings_data: dict, conn: object, origin: str) -> None:
    from leadscope.settings import quiet_environment
    from serving.outbox import Policy
    from serving.state import ServingState, load

    quiet_environment()
    with contextlib.suppress(OSError):
        os.nice(10)  # background work: the server's requests get the cores first, passes take what is left
    settings = Settings.model_validate(settings_data)
    state = ServingState(settings)
    load(state)
    hooks = Webhooks(
        settings.database_url,
        Policy(max_attempts=settings.webhooks_max_attempts, backoff_cap=3600.0),
        production=settings.profile == "production",
    )
    state.live = Live(settings, state, hooks, origin=origin)
    conn.send(("ready", None))
    last = time.monotonic()
    while True:
        try:
            if not conn.poll(settings.model_poll_seconds):
                state.refresh()  # new champions; after a materialisation, unfolded records again
                last = time.monotonic()
                continue
            ids = conn.recv()
        except (EOFError, OSError):
            return  # the server is gone
        try:
            state.live.sent.clear()
            state.live.puts = []
            state.live.apply(ids)
            conn.send(("ok", (state.live.sent.is_set(), state.live.puts)))
        except Exception as exc:  # noqa: BLE001 - reported to the server, whose request says not applied
            conn.send(("error", type(exc).__name__))
        if time.monotonic() - last > settings.model_poll_seconds:
            with contextlib.suppress(Exception):
                state.refresh()
            last = time.monotonic()


def deliver_forever_thread(live_: Live, every_seconds: float, stop: threading.Event) -> None:
    """Send due webhook messages: right after a pass that stored some, and every `every_seconds`."""
    import httpx

    with httpx.Client() as client:
        while not stop.is_set():
            try:
                counts = live_.hooks.deliver(client, max_seconds=max(every_seconds, 1.0) * 5)
                if counts:
                    log.info("webhooks delivered: %s", counts)
            except Exception as exc:  # noqa: BLE001 - a failed round is retried at the next one
                log.warning("webhook delivery round failed: %s", type(exc).__name__)
            live_.sent.wait(timeout=every_seconds)
            live_.sent.clear()
