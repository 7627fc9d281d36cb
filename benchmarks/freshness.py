"""The real-time loop, side by side in one run (issue #18), against the real server in a child process:

1. event → changed score: p50/p99 from the 202 of POST /v1/events (wait=false) to the first /v1/scores whose answer
   differs; and the round trip of POST /v1/events with wait=true (the answer comes once the score has changed);
2. event intake, durable: events/s in batches of 100 at concurrency 4 (wait=false), and how long the applier then
   needs until every record is online (the applied rate);
3. /v1/scores under a mixed load (10 % POST /v1/events of 1 record, wait=false as a streaming CRM posts them, 90 %
   scores of the same customers) against pure scoring with a warm cache, concurrency 8: once with events and
   scores sharing the 8 connections (an event's wait holds a connection), once with the events posted by a
   separate client at 10 % of all requests; the three loads in interleaved rounds of about 2 s;
4. the cold path (the cache off: every read goes to the online store) against GET /healthz, concurrency 8, in
   interleaved rounds of about 2 s (the ratio is over all rounds; the spread of the rounds is printed too).

Its company is generated here, with a history ending today (live records arrive now): 4,000 customers, seed 7,
kept in /tmp/leadscope-freshness (rebuilt in about a minute when absent).
Usage: python -m benchmarks.freshness [--seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import numpy as np

from benchmarks._load import Result, drive, free_port, start_server
from leadscope.settings import Settings

WORK = Path("/tmp/leadscope-freshness")
EVENTS = [("web", "pricing_view"), ("web", "page_view"), ("form", "form_submit"), ("email", "email_open")]


def company() -> Settings:
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    home = WORK / today.strftime("%Y%m%d")
    settings = Settings(home=home, customers=4_000, seed=7, world_end=today)
    if not (home / "ready").exists():
        from features.build import build
        from leadscope.synth import generate
        from training import oracle, propensity

        generate(customers=settings.customers, seed=settings.seed, end=today, days=settings.world_days).write(
            settings.raw_dir
        )
        build(settings)
        propensity.train(settings, oracle=oracle.for_propensity(settings))
        (home / "ready").touch()
    # every run starts from a clean service database (live records, history, keys): earlier runs' records would
    # make each customer's history, and so each pass, longer
    db = Path(settings.database_url.removeprefix("sqlite:///"))
    for path in (db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")):
        path.unlink(missing_ok=True)
    # the build above may have opened that database in this process: its pooled connections would write the
    # benchmark's key into the unlinked file, and the server would answer 401
    from leadscope.db import engine_for

    engine_for.cache_clear()
    return settings


def merged(results: list[Result]) -> Result:
    """Rounds of one load as one result: all requests over all their time."""
    return Result(
        results[0].name.split(" (")[0] + (f" ({len(results)} rounds)" if len(results) > 1 else ""),
        sum(r.requests for r in results),
        sum(r.errors for r in results),
        sum(r.seconds for r in results),
        np.concatenate([r.latencies_ms for r in results]),
    )


def env_of(settings: Settings, **extra: str) -> dict[str, str]:
    return {"LEADSCOPE_HOME": str(settings.home), "LEADSCOPE_LOG_FORMAT": "text", **extra}


def record(cid: str, rng: random.Random) -> dict:
    ch, et = rng.choice(EVENTS)
    return {"id": uuid.uuid4().hex, "type": "event", "customer_id": cid, "ts": datetime.now(UTC).isoformat(),
            "channel": ch, "event_type": et}  # fmt: skip


async def freshness(base: str, headers: dict, ids: list[str], n: int) -> tuple[np.ndarray, np.ndarray]:
    rng = random.Random(1)
    lag, trip = [], []
    async with aiohttp.ClientSession(headers=headers) as s:

        async def score(cid: str) -> str:
            async with s.post(f"{base}/v1/scores", json={"customer_ids": [cid]}) as r:
                assert r.status == 200, f"/v1/scores answered {r.status}: {await r.text()}"
                return json.dumps((await r.json())["results"][0].get("propensity"))

        for k in range(n):
            cid = ids[k % len(ids)]
            before = await score(cid)
            wait = k % 2 == 1
            t0 = time.perf_counter()
            async with s.post(f"{base}/v1/events", params={"wait": str(wait).lower()},
                              json={"events": [record(cid, rng)]}) as r:  # fmt: skip
                assert r.status == 202, await r.text()
            t1 = time.perf_counter()
            if wait:
                trip.append((t1 - t0) * 1000)
                continue
            while await score(cid) == before and time.perf_counter() - t1 < 5:
                pass
            lag.append((time.perf_counter() - t1) * 1000)
    return np.array(lag), np.array(trip)


async def intake(base: str, headers: dict, ids: list[str], seconds: float) -> tuple[int, float]:
    rng = random.Random(2)
    stop = time.perf_counter() + seconds
    n = 0

    async def worker(s: aiohttp.ClientSession) -> None:
        nonlocal n
        while time.perf_counter() < stop:
            body = {"events": [record(rng.choice(ids), rng) for _ in range(100)]}
            async with s.post(f"{base}/v1/events", params={"wait": "false"}, json=body) as r:
                assert r.status == 202, await r.text()
                n += (await r.json())["accepted"]

    t0 = time.perf_counter()
    async with aiohttp.ClientSession(headers=headers) as s:
        await asyncio.gather(*(worker(s) for _ in range(4)))
    return n, time.perf_counter() - t0


def drained(settings: Settings, timeout: float = 600) -> float:
    from features.live import LiveLog

    log, t0 = LiveLog(settings.database_url), time.perf_counter()
    while log.unapplied(limit=1) and time.perf_counter() - t0 < timeout:
        time.sleep(0.05)
    return time.perf_counter() - t0


async def mixed(base: str, headers: dict, ids: list[str], seconds: float, share: float) -> Result:
    rng = random.Random(3)
    lat: list[float] = []
    ev_lat: list[float] = []
    errors, events = 0, 0
    stop = time.perf_counter() + seconds

    async def worker(s: aiohttp.ClientSession) -> None:
        nonlocal errors, events
        while time.perf_counter() < stop:
            cid = rng.choice(ids)
            if rng.random() < share:
                body = {"events": [record(cid, rng)]}
                t0 = time.perf_counter()
                async with s.post(f"{base}/v1/events", params={"wait": "false"}, json=body) as r:
                    await r.read()
                    errors += r.status != 202
                    events += 1
                ev_lat.append((time.perf_counter() - t0) * 1000)
                continue
            t0 = time.perf_counter()
            async with s.post(f"{base}/v1/scores", json={"customer_ids": [cid]}) as r:
                await r.read()
                errors += r.status != 200
            lat.append((time.perf_counter() - t0) * 1000)

    t0 = time.perf_counter()
    async with aiohttp.ClientSession(headers=headers, connector=aiohttp.TCPConnector(limit=8)) as s:
        await asyncio.gather(*(worker(s) for _ in range(8)))
    name = f"scores, {share:.0%} events" + (
        f" ({events} posted, p50 {np.percentile(ev_lat, 50):.1f} ms)" if events else ""
    )
    return Result(name, len(lat), errors, time.perf_counter() - t0, np.array(lat))


async def mixed_stream(base: str, headers: dict, ids: list[str], seconds: float, share: float) -> Result:
    """Scoring at concurrency 8 as in the pure run, while a separate client posts events (wait=false) so that they
    are `share` of all requests: CRMs send events and score requests from different connections."""
    rng = random.Random(4)
    lat: list[float] = []
    ev_lat: list[float] = []
    errors, events, inflight = 0, 0, 0
    stop = time.perf_counter() + seconds

    async def scorer(s: aiohttp.ClientSession) -> None:
        nonlocal errors
        while time.perf_counter() < stop:
            t0 = time.perf_counter()
            async with s.post(f"{base}/v1/scores", json={"customer_ids": [rng.choice(ids)]}) as r:
                await r.read()
                errors += r.status != 200
            lat.append((time.perf_counter() - t0) * 1000)

    async def post(s: aiohttp.ClientSession) -> None:
        nonlocal errors, events, inflight
        inflight += 1
        t0 = time.perf_counter()
        body = {"events": [record(rng.choice(ids), rng)]}
        async with s.post(f"{base}/v1/events", params={"wait": "false"}, json=body) as r:
            await r.read()
            errors += r.status != 202
        ev_lat.append((time.perf_counter() - t0) * 1000)
        events += 1
        inflight -= 1

    async def poster(s: aiohttp.ClientSession) -> None:
        tasks = []
        while time.perf_counter() < stop:
            due = share / (1 - share) * len(lat) - events - inflight
            for _ in range(int(due)):
                tasks.append(asyncio.create_task(post(s)))
            await asyncio.sleep(0.01)
        await asyncio.gather(*tasks)

    t0 = time.perf_counter()
    async with aiohttp.ClientSession(headers=headers) as s, aiohttp.ClientSession(headers=headers) as e:
        await asyncio.gather(*(scorer(s) for _ in range(8)), poster(e))
    name = f"scores + {events / (events + len(lat)):.0%} events stream (p50 {np.percentile(ev_lat, 50):.1f} ms)"
    return Result(name, len(lat), errors, time.perf_counter() - t0, np.array(lat))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--events", type=int, default=200)
    args = ap.parse_args()
    settings = company()
    from leadscope.tables import read_table

    ids = read_table(settings.raw_dir, "customers")["customer_id"].astype(str).tolist()
    rng = random.Random(0)
    same = rng.sample(ids, 500)
    server = start_server(free_port(), cwd=Path.cwd(), env=env_of(settings))
    try:
        base, h = f"http://127.0.0.1:{server.port}", server.headers
        lag, trip = asyncio.run(freshness(base, h, rng.sample(ids, args.events), args.events))
        n, took = asyncio.run(intake(base, h, ids, args.seconds))
        drain = drained(settings)
        asyncio.run(mixed(base, h, same, 2, 0.0))  # warm the cache on the same customers
        # the three loads in interleaved rounds of about 2 s (the machine's speed drifts within a minute)
        rounds = max(1, round(args.seconds / 2))
        part = args.seconds / rounds
        pures, mixes, streams = [], [], []
        for _ in range(rounds):
            pures.append(asyncio.run(mixed(base, h, same, part, 0.0)))
            mixes.append(asyncio.run(mixed(base, h, same, part, 0.10)))
            streams.append(asyncio.run(mixed_stream(base, h, same, part, 0.10)))
        pure, mix, stream = merged(pures), merged(mixes), merged(streams)
    finally:
        server.stop()
    cold_server = start_server(free_port(), cwd=Path.cwd(), env=env_of(settings, LEADSCOPE_FEATURE_CACHE_SIZE="0"))
    try:
        base, h = f"http://127.0.0.1:{cold_server.port}", cold_server.headers

        def one(i: int) -> bytes:
            return json.dumps({"customer_ids": [ids[i % len(ids)]]}).encode()

        # interleaved in short rounds: the machine's speed drifts by tens of percent within a minute, and one long
        # window of each would measure the drift as much as the two routes
        rounds = max(1, round(args.seconds / 2))
        healths, colds = [], []
        for r in range(rounds):
            healths.append(asyncio.run(drive("GET /healthz", f"{base}/healthz", method="GET", body=lambda i: None,
                                             concurrency=8, seconds=args.seconds / rounds)))  # fmt: skip
            colds.append(asyncio.run(drive("scores, cache off (cold)", f"{base}/v1/scores", method="POST",
                                           body=lambda i, r=r: one(i + r * 100_003), concurrency=8,
                                           seconds=args.seconds / rounds, headers=h)))  # fmt: skip
        health, cold = merged(healths), merged(colds)
    finally:
        cold_server.stop()
    print(f"company: {settings.customers:,} customers, history to {settings.world_end:%Y-%m-%d}; 1 uvicorn worker")
    print(
        f"event → changed score (202 of wait=false → first /v1/scores that differs), {len(lag)} events: "
        f"p50 {np.percentile(lag, 50):.1f} ms, p99 {np.percentile(lag, 99):.1f} ms (target p99 ≤ 1,000, aim ≤ 100)"
    )
    print(
        f"POST /v1/events wait=true round trip (answer = score changed), {len(trip)} events: "
        f"p50 {np.percentile(trip, 50):.1f} ms, p99 {np.percentile(trip, 99):.1f} ms"
    )
    print(
        f"intake, batches of 100 at c=4 (durable 202s): {n / took:,.0f} events/s over {took:.1f} s "
        f"(target ≥ 2,000); all online {drain:.1f} s after the last 202 → applied {n / (took + drain):,.0f} "
        "events/s"
    )
    for r in (pure, mix, stream, health, cold):
        print(r.row())
    for label, loads in (("mixed (shared connections)", mixes), ("mixed (separate event stream)", streams)):
        total = merged(loads)
        spread = sorted(m.rps / p.rps for m, p in zip(loads, pures, strict=True))
        print(
            f"ratio {label} / pure scoring requests/s: {total.rps / pure.rps:.1%} (target ≥ 50%; rounds from "
            f"{spread[0]:.1%} to {spread[-1]:.1%})"
        )
    per_round = sorted(c.rps / h.rps for c, h in zip(colds, healths, strict=True))
    print(
        f"ratio cold scoring / GET /healthz requests/s: {cold.rps / health.rps:.1%} (target ≥ 20%; "
        f"{len(per_round)} interleaved rounds of {args.seconds / rounds:.1f} s each, from {per_round[0]:.1%} to "
        f"{per_round[-1]:.1%})"
    )


if __name__ == "__main__":
    main()
