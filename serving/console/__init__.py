"""The console at /console: server-rendered pages for marketers, sales and data scientists, in the same app.
serving/console/base.py holds what every page shares (sessions, CSRF, scopes, the in-process API call, templates);
one module per page adds its routes to the one router."""

from __future__ import annotations

from serving.console import audiences, leads, login, models  # noqa: F401 - each adds its routes to the router
from serving.console.audiences import _seed_ids
from serving.console.base import Sessions, _local_secret, install, router
from serving.console.leads import _find, warm
from serving.console.models import _card

__all__ = ["Sessions", "_card", "_find", "_local_secret", "_seed_ids", "install", "router", "warm"]
