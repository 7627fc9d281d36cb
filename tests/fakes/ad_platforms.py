"""A local stand-in for Meta's Conversions API, Google Ads uploadClickConversions and Baidu oCPC upload: a real
HTTP server on 127.0.0.1 that checks every payload against the platform's documented rules, records what it
accepted (by the platform's dedup key), and can inject 500s, timeouts and Google partial failures.

Faults are injected before a request is processed (the platform saw nothing), so a correct client delivers each
event exactly once; `received` counts every accepted row, so a duplicate shows up."""

from __future__ import annotations

import json
import random
import re
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

HEX64 = re.compile(r"^[0-9a-f]{64}$")
GOOGLE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}[+-]\d{2}:\d{2}$")


class FakePlatforms:
    def __init__(self, *, fail_rate: float = 0.0, timeout_rate: float = 0.0, partial_rate: float = 0.0, seed: int = 1):
        self.fail_rate, self.timeout_rate, self.partial_rate = fail_rate, timeout_rate, partial_rate
        self.rng = random.Random(seed)
        self.lock = threading.Lock()
        self.received: Counter = Counter()  # (platform, dedup key) → times accepted
        self.calls: Counter = Counter()  # (platform, outcome) → count
        self.violations: list[str] = []
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> FakePlatforms:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def mapping_yaml(self) -> str:
        """The shipped mapping with every endpoint pointed at this server."""
        from serving.signals.mapping import DEFAULT

        text = DEFAULT.read_text()
        text = text.replace(
            "https://graph.facebook.com/v21.0/{dataset_id}/events", f"{self.url}/meta/{{dataset_id}}/events"
        )
        text = text.replace(
            "https://googleads.googleapis.com/v22/customers/{customer_id}:uploadClickConversions",
            f"{self.url}/google/customers/{{customer_id}}:uploadClickConversions",
        )
        return text.replace("https://ocpc.baidu.com/ocpcapi/api/uploadConvertData", f"{self.url}/baidu/upload")

    # --- validation per platform ----------------------------------------------------------------------------

    def _meta(self, query: dict, body: dict) -> list[str]:
        errs = []
        data = body.get("data")
        if not query.get("access_token"):
            errs.append("meta: no access_token")
        if not isinstance(data, list) or not 1 <= len(data) <= 1000:
            return errs + ["meta: data must hold 1..1000 events"]
        now = time.time()
        for ev in data:
            if not ev.get("event_name") or not ev.get("event_id"):
                errs.append("meta: event_name and event_id required")
            if ev.get("action_source") != "system_generated":
                errs.append("meta: action_source must be system_generated for CRM events")
            t = ev.get("event_time")
            if not isinstance(t, int) or now - t > 7 * 86400 or t > now + 60:
                errs.append("meta: event_time must be a unix time within the last 7 days")
            user = ev.get("user_data", {})
            for key in ("em", "ph", "fn", "ln", "ct", "st", "zp", "country", "external_id"):
                for v in user.get(key, []):
                    if not HEX64.match(v):
                        errs.append(f"meta: user_data.{key} not SHA-256 hex")
            if "lead_id" in user and not str(user["lead_id"]).isdigit():
                errs.append("meta: lead_id must be the unhashed numeric id")
            if not ({"em", "ph", "lead_id", "fbc", "fbp", "external_id"} & set(user)):
                errs.append("meta: no customer information")
            custom = ev.get("custom_data", {})
            if "value" in custom and not re.match(r"^[a-z]{3}$", str(custom.get("currency", ""))):
                errs.append("meta: value needs a currency")
            if custom.get("event_source") != "crm":
                errs.append("meta: custom_data.event_source must be crm")
        return errs

    def _google(self, headers: dict, body: dict) -> list[str]:
        errs = []
        rows = body.get("conversions")
        if not headers.get("developer-token") or not headers.get("authorization", "").startswith("Bearer "):
            errs.append("google: developer-token and bearer token required")
        if body.get("partialFailure") is not True:
            errs.append("google: partialFailure must be true")
        if not isinstance(rows, list) or not 1 <= len(rows) <= 2000:
            return errs + ["google: 1..2000 conversions per request"]
        for r in rows:
            if not str(r.get("conversionAction", "")).startswith("customers/"):
                errs.append("google: conversionAction must be a resource name")
            if not GOOGLE_TIME.match(str(r.get("conversionDateTime", ""))):
                errs.append("google: conversionDateTime must be yyyy-mm-dd hh:mm:ss+hh:mm")
            if not r.get("orderId"):
                errs.append("google: orderId required for dedup")
            clicks = [k for k in ("gclid", "gbraid", "wbraid") if r.get(k)]
            ids = r.get("userIdentifiers", [])
            if len(clicks) > 1 or (not clicks and not ids):
                errs.append("google: exactly one click id, or user identifiers")
            for u in ids:
                v = u.get("hashedEmail") or u.get("hashedPhoneNumber") or ""
                if not HEX64.match(v):
                    errs.append("google: identifiers must be SHA-256 hex")
            if "conversionValue" in r and not re.match(r"^[A-Z]{3}$", str(r.get("currencyCode", ""))):
                errs.append("google: conversionValue needs currencyCode")
        return errs

    def _baidu(self, body: dict) -> list[str]:
        errs = []
        rows = body.get("conversionTypes")
        if not body.get("token"):
            errs.append("baidu: token required")
        if not isinstance(rows, list) or not 1 <= len(rows) < 100:
            return errs + ["baidu: 1..99 conversionTypes per request"]
        for r in rows:
            q = parse_qs(urlparse(str(r.get("logidUrl", ""))).query)
            if not q.get("bd_vid"):
                errs.append("baidu: logidUrl must carry bd_vid")
            if not isinstance(r.get("newType"), int):
                errs.append("baidu: newType must be an integer")
        return errs

    # --- HTTP ---------------------------------------------------------------------------------------------------

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:  # quiet
                pass

            def _send(self, status: int, payload: dict) -> None:
                data = json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (an injected timeout)

            def do_POST(self) -> None:  # noqa: N802
                url = urlparse(self.path)
                platform = url.path.split("/")[1]
                body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))) or b"{}")
                with fake.lock:
                    roll = fake.rng.random()
                if roll < fake.fail_rate:
                    fake.calls[(platform, "500")] += 1
                    return self._send(500, {"error": {"message": "injected failure"}})
                if roll < fake.fail_rate + fake.timeout_rate:
                    fake.calls[(platform, "timeout")] += 1
                    time.sleep(1.5)  # longer than the client's timeout in the tests: the platform saw nothing
                    return self._send(503, {"error": {"message": "too late"}})
                headers = {k.lower(): v for k, v in self.headers.items()}
                if platform == "meta":
                    errs = fake._meta(parse_qs(url.query), body)
                elif platform == "google":
                    errs = fake._google(headers, body)
                elif platform == "baidu":
                    errs = fake._baidu(body)
                else:
                    errs = [f"unknown platform {platform}"]
                if errs:
                    with fake.lock:
                        fake.violations.extend(errs)
                        fake.calls[(platform, "400")] += 1
                    return self._send(400, {"error": {"message": "; ".join(sorted(set(errs)))[:500]}})
                with fake.lock:
                    fake.calls[(platform, "200")] += 1
                    if platform == "meta":
                        for ev in body["data"]:
                            fake.received[("meta", ev["event_id"])] += 1
                        return self._send(200, {"events_received": len(body["data"]), "fbtrace_id": "fake"})
                    if platform == "google":
                        failed = []
                        for i, r in enumerate(body["conversions"]):
                            if fake.rng.random() < fake.partial_rate:
                                failed.append(i)
                            else:
                                fake.received[("google", r["orderId"])] += 1
                        payload: dict = {"results": [{} for _ in body["conversions"]]}
                        if failed:
                            payload["partialFailureError"] = {
                                "code": 3,
                                "message": "partial failure",
                                "details": [
                                    {
                                        "errors": [
                                            {
                                                "message": "injected row failure",
                                                "location": {
                                                    "fieldPathElements": [{"fieldName": "conversions", "index": i}]
                                                },
                                            }
                                            for i in failed
                                        ]
                                    }
                                ],
                            }
                        return self._send(200, payload)
                    for r in body["conversionTypes"]:
                        bd_vid = parse_qs(urlparse(r["logidUrl"]).query)["bd_vid"][0]
                        fake.received[("baidu", f"{bd_vid}:{r['newType']}")] += 1
                    return self._send(200, {"header": {"status": 0, "desc": "success"}})

        return Handler
