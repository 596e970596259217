"""Connecting to Ray: an existing cluster when given an address (or when running as a Ray job),
else a private local one bound to loopback.

Ray's head runs arbitrary code for whoever reaches its ports and has no authentication, so the
embedded default must never listen beyond 127.0.0.1 (FIELD-NOTES: Ray rewrites 127.0.0.1 to the
first non-loopback address unless told not to).
"""

from __future__ import annotations

import logging
import os

log = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"


def connect(address: str | None = None, *, num_cpus: int | None = None, num_gpus: int | None = None) -> None:
    """Attach this process to Ray once. `address` (e.g. 'ray://…' or 'HOST:6379' or 'auto') joins a
    cluster; inside `ray job submit`, RAY_ADDRESS is set and wins; otherwise a local Ray starts
    on loopback with `num_cpus` / `num_gpus` (fake GPUs are fine for trying the pool logic)."""
    import ray

    if ray.is_initialized():
        return
    if address or os.environ.get("RAY_ADDRESS"):
        ray.init(address=address or None, logging_level=logging.WARNING, log_to_driver=False)
        log.info("joined Ray cluster at %s", address or os.environ["RAY_ADDRESS"])
        return
    keep_ray_on_loopback()
    ray.init(num_cpus=num_cpus, num_gpus=num_gpus, include_dashboard=False, _node_ip_address=LOOPBACK,
             logging_level=logging.WARNING, log_to_driver=False)
    ip = ray.util.get_node_ip_address()
    if ip != LOOPBACK:
        ray.shutdown()
        raise RuntimeError(f"local Ray came up on {ip}, not {LOOPBACK}; refusing to expose it")
    log.info("started a local Ray on %s: %s", LOOPBACK, ray.cluster_resources())


def keep_ray_on_loopback() -> None:
    """Turn off Ray's 'cluster' address rewrite for a local instance (and the processes it starts).
    Ray reads RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER once, at import, into a module constant; `ray` is
    usually imported by now, so the constant is set too (a private name: checked after start)."""
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    from ray._private import ray_constants

    ray_constants.ENABLE_RAY_CLUSTER = False


def disconnect() -> None:
    import ray

    if ray.is_initialized():
        ray.shutdown()
