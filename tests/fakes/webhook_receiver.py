"""A CRM's webhook endpoint: a real HTTP server on 127.0.0.1 that verifies every message's Standard Webhooks
signature with the `standardwebhooks` package (the receiver's side of the spec) and records what it accepted by
webhook-id. A bad or missing signature is answered 401 and recorded as a violation."""

from __future__ import annotations

import json
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks.webhooks import Webhook, WebhookVerificationError


class WebhookReceiver:
    def __init__(self, *, fail_first: int = 0) -> None:
        self.secret: str | None = None  # set once the subscription is created (the secret is shown once)
        self.lock = threading.Lock()
        self.received: Counter = Counter()  # webhook-id → times accepted
        self.bodies: dict[str, dict] = {}
        self.violations: list[str] = []
        self.truncated = 0  # requests whose body ended before its content-length (the sender was killed)
        self.fail_first = fail_first  # answer 503 to the first N well-signed messages (retries must follow)
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks/leadscope"

    def __enter__(self) -> WebhookReceiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def messages(self, kind: str = "score.changed") -> list[dict]:
        with self.lock:
            return [b for b in self.bodies.values() if b["type"] == kind]

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                length = int(self.headers.get("content-length", 0))
                body = self.rfile.read(length)
                if len(body) < length:
                    # the sender died between its headers and its body (the SIGKILL test kills the server while it
                    # delivers): a truncated request, never answered, so never counted as delivered nor as a
                    # bad signature; the sender's retry brings the whole message
                    with outer.lock:
                        outer.truncated += 1
                    self.close_connection = True
                    return
                try:
                    assert outer.secret is not None, "no secret yet"
                    payload = Webhook(outer.secret).verify(body, dict(self.headers.items()))
                except (WebhookVerificationError, AssertionError) as exc:
                    with outer.lock:
                        outer.violations.append(f"{type(exc).__name__}: {exc}")
                    self.send_response(401)
                    self.end_headers()
                    return
                with outer.lock:
                    if outer.fail_first > 0:
                        outer.fail_first -= 1
                        self.send_response(503)
                        self.end_headers()
                        return
                    msg_id = self.headers["webhook-id"]
                    outer.received[msg_id] += 1
                    outer.bodies[msg_id] = payload if isinstance(payload, dict) else json.loads(body)
                self.send_response(204)
                self.end_headers()

        return Handler
