"""The action catalogue of next-best-action (a YAML file, validated on load)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from leadscope.yamlfile import load_validated

DEFAULT = Path(__file__).with_name("actions.yaml")
Channel = Literal[
    "email",
    "sms",
    "wechat",
    "sales_call",
    "ad_retargeting",
    "coupon",
    "referral_invitation",
    "retention_offer",
    "do_nothing",
]
Stage = Literal["prospect", "new", "active", "at_risk", "lapsed"]


class Eligibility(BaseModel):
    model_config = ConfigDict(extra="forbid")
    lifecycle_stages: list[Stage] | None = Field(None, description="Only customers in these stages (default: all).")
    consent: Literal["email", "sms", "ads"] | None = Field(None, description="The consent the channel needs.")
    reachable: Literal["email", "phone", "wechat"] | None = Field(None, description="The identifier it needs.")


class Action(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")
    channel: Channel
    cost: float = Field(ge=0, allow_inf_nan=False)
    goal: Literal["convert", "retain", "refer", "upsell"]
    eligibility: Eligibility = Eligibility()
    cooldown_days: int = Field(0, ge=0, description="Not again within this many days of the last time.")
    max_per_30d: int | None = Field(None, ge=1, description="At most this many times in 30 days.")


class Catalogue(BaseModel):
    model_config = ConfigDict(extra="forbid")
    contacts_per_week: int | None = Field(None, ge=0, description="Contacts of any kind per customer in 7 days.")
    capacity: dict[Channel, int] = Field(default_factory=dict, description="Default per-channel plan capacity.")
    actions: list[Action] = Field(min_length=1)

    @model_validator(mode="after")
    def _consistent(self) -> Catalogue:
        ids = [a.id for a in self.actions]
        if dup := sorted({i for i in ids if ids.count(i) > 1}):
            raise ValueError(f"action ids repeated: {', '.join(dup)}")
        nothing = [a.id for a in self.actions if a.channel == "do_nothing"]
        if len(nothing) != 1:
            raise ValueError("exactly one action must have channel do_nothing (the fallback when nothing pays)")
        if any(a.cost for a in self.actions if a.channel == "do_nothing"):
            raise ValueError("the do_nothing action costs nothing")
        if bad := [c for c, n in self.capacity.items() if n < 0]:
            raise ValueError(f"capacity.{bad[0]}: must be at least 0")
        return self

    @property
    def nothing(self) -> Action:
        return next(a for a in self.actions if a.channel == "do_nothing")

    @property
    def contacts(self) -> list[Action]:
        return [a for a in self.actions if a.channel != "do_nothing"]

    def get(self, action_id: str) -> Action:
        return next(a for a in self.actions if a.id == action_id)

    def capacities(self, spec: str | None = None) -> dict[str, int]:
        """Per-channel plan capacity: the catalogue's defaults, overridden by "channel=count,…"; ValueError
        naming the bad part when a channel is not in the catalogue or a count is not a whole number."""
        caps = dict(self.capacity)
        channels = {a.channel for a in self.actions}
        for part in (p.strip() for p in (spec or "").split(",")):
            if not part:
                continue
            channel, _, n = (x.strip() for x in part.partition("="))
            if channel not in channels or not n.isdigit():
                raise ValueError(f"{part!r} is not channel=count with a catalogue channel")
            caps[channel] = int(n)
        return caps


class CatalogueError(ValueError):
    """One line naming the file, the field and the problem."""


def load(path: Path | None = None) -> Catalogue:
    return load_validated(path or DEFAULT, Catalogue, "action catalogue", CatalogueError)
