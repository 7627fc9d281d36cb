"""Payload builders, one per ad platform, behind one interface (`Exporter`), so a second Google exporter (the
Data Manager API Google moves new adopters to in 2026) is one more class, not a rewrite.

Each exporter turns a stored event into its platform's row (or a reason to skip it), a batch of rows into an
HTTP request, and the platform's answer into a per-row outcome. Rows hold hashed identifiers only.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, Protocol
from urllib.parse import urlencode

from serving.signals.mapping import PlatformConfig

Outcome = tuple[Literal["sent", "retry", "failed"], str | None]


@dataclass(frozen=True)
class Event:
    """What the outbox knows of an accepted event: no raw personal data, only platform-hashed identifiers."""

    event_id: str
    customer_id: str
    ts: datetime
    stage: str
    value: float | None
    currency: str | None
    ids: dict[str, Any]  # {"meta": {...}, "google": {...}} hashed; click ids unhashed under "click"
    ads_consent: bool = False  # default-deny: only a customer whose ads consent is known to be true is sent


@dataclass(frozen=True)
class Request:
    url: str
    headers: dict[str, str]
    body: dict[str, Any]


class Exporter(Protocol):
    name: str
    max_batch: int

    def row(self, event: Event, now: datetime) -> tuple[dict | None, str | None]: ...

    def still_valid(self, row: dict, now: datetime) -> str | None: ...

    def request(self, rows: list[dict]) -> Request: ...

    def outcomes(self, status: int, body: Any, n: int) -> list[Outcome]: ...


def _transient(status: int) -> bool:
    return status == 429 or status >= 500


def _whole_batch(status: int, body: Any, n: int, ok: bool) -> list[Outcome]:
    if ok:
        return [("sent", None)] * n
    reason = f"HTTP {status}: {str(body)[:200]}"
    return [("retry" if _transient(status) or status == 0 else "failed", reason)] * n


class Meta:
    """Conversions API: event_name, event_time, event_id (dedup), action_source=system_generated for CRM events,
    user_data hashed (lead_id, fbc, fbp as they are), custom_data with value/currency/event_source=crm."""

    name = "meta"
    max_batch = 1_000
    max_age = timedelta(days=7)

    def __init__(self, cfg: PlatformConfig) -> None:
        self.cfg = cfg

    def row(self, event: Event, now: datetime) -> tuple[dict | None, str | None]:
        name = self.cfg.events.get(event.stage)
        if name is None:
            return None, f"stage {event.stage} is not mapped for meta"
        if now - event.ts > self.max_age:
            return None, "older than 7 days: Meta refuses it"
        user = {k: [v] for k, v in event.ids.get("meta", {}).items() if v}
        click = event.ids.get("click", {})
        for ours, theirs in (("meta_lead_id", "lead_id"), ("fbc", "fbc"), ("fbp", "fbp")):
            if click.get(ours):
                user[theirs] = click[ours]
        if not ({"em", "ph", "lead_id", "fbc", "fbp"} & set(user)):
            return None, "no Meta identifier (email, phone, lead_id, fbc or fbp)"
        custom: dict[str, Any] = {"event_source": "crm", "lead_event_source": "leadscope"}
        if event.value is not None:
            custom["value"] = round(event.value, 2)
            custom["currency"] = (event.currency or "USD").lower()
        row = {
            "event_name": str(name),
            "event_time": int(event.ts.timestamp()),
            "event_id": event.event_id,
            "action_source": "system_generated",
            "user_data": user,
            "custom_data": custom,
        }
        return row, None

    def still_valid(self, row: dict, now: datetime) -> str | None:
        if now.timestamp() - row["event_time"] > self.max_age.total_seconds():
            return "older than 7 days: Meta refuses it"
        return None

    def request(self, rows: list[dict]) -> Request:
        url = self.cfg.endpoint.format(dataset_id=self.cfg.env(self.cfg.dataset_id_env, "0"))
        token = self.cfg.env(self.cfg.token_env)
        return Request(f"{url}?{urlencode({'access_token': token})}", {}, {"data": rows})

    def outcomes(self, status: int, body: Any, n: int) -> list[Outcome]:
        ok = status == 200 and isinstance(body, dict) and body.get("events_received") == n
        return _whole_batch(status, body, n, ok)


class GoogleAds:
    """uploadClickConversions: a click id (gclid/gbraid/wbraid) when there is one, else enhanced conversions for
    leads (hashed e-mail / E.164 phone); orderId = event_id for dedup; partialFailure on, so failed rows are
    retried alone."""

    name = "google"
    max_batch = 2_000

    def __init__(self, cfg: PlatformConfig) -> None:
        self.cfg = cfg

    def row(self, event: Event, now: datetime) -> tuple[dict | None, str | None]:
        action = self.cfg.events.get(event.stage)
        if action is None:
            return None, f"stage {event.stage} is not mapped for google"
        row: dict[str, Any] = {
            "conversionAction": str(action).format(customer_id=self.cfg.env(self.cfg.customer_id_env, "0")),
            "conversionDateTime": event.ts.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S+00:00"),
            "orderId": event.event_id,
        }
        if event.value is not None:
            row["conversionValue"] = round(event.value, 2)
            row["currencyCode"] = (event.currency or "USD").upper()
        click = event.ids.get("click", {})
        key = next((k for k in ("gclid", "gbraid", "wbraid") if click.get(k)), None)
        if key:
            row[key] = click[key]
            return row, None
        google = event.ids.get("google", {})
        identifiers = [{"hashedEmail": google["em"]}] if google.get("em") else []
        identifiers += [{"hashedPhoneNumber": google["ph"]}] if google.get("ph") else []
        if not identifiers:
            return None, "no Google identifier (gclid, gbraid, wbraid, email or phone)"
        row["userIdentifiers"] = identifiers
        return row, None

    def still_valid(self, row: dict, now: datetime) -> str | None:
        return None

    def request(self, rows: list[dict]) -> Request:
        cid = self.cfg.env(self.cfg.customer_id_env, "0")
        headers = {
            "authorization": f"Bearer {self.cfg.env(self.cfg.token_env)}",
            "developer-token": self.cfg.env(self.cfg.developer_token_env),
        }
        return Request(
            self.cfg.endpoint.format(customer_id=cid), headers, {"conversions": rows, "partialFailure": True}
        )

    def outcomes(self, status: int, body: Any, n: int) -> list[Outcome]:
        if status != 200 or not isinstance(body, dict):
            return _whole_batch(status, body, n, False)
        out: list[Outcome] = [("sent", None)] * n
        for detail in (body.get("partialFailureError") or {}).get("details", []):
            for err in detail.get("errors", []):
                for el in err.get("location", {}).get("fieldPathElements", []):
                    if el.get("fieldName") == "conversions" and isinstance(el.get("index"), int) and el["index"] < n:
                        out[el["index"]] = ("retry", str(err.get("message", "partial failure"))[:200])
        return out


class Baidu:
    """oCPC API upload: conversionTypes items with logidUrl (the landing URL carrying bd_vid) and newType;
    fewer than 100 per request."""

    name = "baidu"
    max_batch = 99

    def __init__(self, cfg: PlatformConfig) -> None:
        self.cfg = cfg

    def row(self, event: Event, now: datetime) -> tuple[dict | None, str | None]:
        kind = self.cfg.events.get(event.stage)
        if kind is None:
            return None, f"stage {event.stage} is not mapped for baidu"
        bd_vid = event.ids.get("click", {}).get("bd_vid")
        if not bd_vid:
            return None, "no bd_vid: Baidu needs the click's bd_vid"
        landing = self.cfg.landing_url or "https://www.example.com/"
        sep = "&" if "?" in landing else "?"
        row: dict[str, Any] = {"logidUrl": f"{landing}{sep}{urlencode({'bd_vid': bd_vid})}", "newType": int(kind)}
        if event.value is not None:
            row["convertValue"] = int(round(event.value * 100))  # in fen (cents)
        return row, None

    def still_valid(self, row: dict, now: datetime) -> str | None:
        return None

    def request(self, rows: list[dict]) -> Request:
        return Request(self.cfg.endpoint, {}, {"token": self.cfg.env(self.cfg.token_env), "conversionTypes": rows})

    def outcomes(self, status: int, body: Any, n: int) -> list[Outcome]:
        ok = status == 200 and isinstance(body, dict) and (body.get("header") or {}).get("status") == 0
        return _whole_batch(status, body, n, ok)


EXPORTERS = {"meta": Meta, "google": GoogleAds, "baidu": Baidu}
