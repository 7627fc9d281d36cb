"""The distributed engine (LEADSCOPE_ENGINE=ray): connecting to Ray once per process.

A cluster is named by `ray_address` (ray://head:10001, or auto for the cluster this machine belongs to); without
one, leadscope starts a local Ray bounded by `ray_cpus` and `ray_memory_mb` (Ray would otherwise take every core
and a third of the memory). The cluster's workers must have leadscope installed (the same lock file), since the
feature functions and the model code run there.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

from leadscope.settings import Settings

_lock = threading.Lock()


class EngineUnavailable(RuntimeError):
    """Ray could not be started or reached; the message says why (the CLI shows it and exits 2)."""


def ray_cpus(settings: Settings) -> int:
    return settings.ray_cpus or os.cpu_count() or 1


def ensure_ray(settings: Settings) -> Any:
    """The `ray` module, connected: the process's existing connection, the cluster at ray_address, or a local Ray
    started now (shut down when the process exits). Ray's per-dataset progress logs are turned down to warnings."""
    try:
        import ray
    except ImportError as e:  # the lock installs it; a trimmed install may not have it
        raise EngineUnavailable(f"engine=ray needs the ray package ({e})") from e
    with _lock:
        if ray.is_initialized():
            return ray
        options: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "logging_level": logging.WARNING}
        if settings.ray_address:
            options["address"] = settings.ray_address
        else:
            options |= {"num_cpus": ray_cpus(settings), "object_store_memory": settings.ray_memory_mb * 1024**2}
        try:
            ray.init(**options)
        except Exception as e:  # noqa: BLE001 - Ray raises many kinds here; all mean the same to the user
            where = settings.ray_address or "a local Ray"
            raise EngineUnavailable(f"could not start or reach {where}: {type(e).__name__}: {e}") from e
        import ray.data

        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False
        ctx.print_on_execution_start = False
        logging.getLogger("ray.data").setLevel(logging.WARNING)
        return ray
