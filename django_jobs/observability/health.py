"""The health verdict: is the database reachable, does a worker heartbeat?

``healthy`` is False (HTTP 503) when the database does not answer, when no
worker heartbeats within LEASE_SECONDS, or when the oldest due job waited
longer than ``HEALTH_MAX_READY_AGE`` (if set). The oldest ready age and the
pruning backlog are always reported, so a probe's body says what is wrong.
"""

from __future__ import annotations

import logging
from typing import Any

from django.db import DatabaseError, connections

from django_jobs.conf import jobs_settings
from django_jobs.observability.snapshot import cached_snapshot

logger = logging.getLogger("django_jobs.health")


def check_health(alias: str = "default") -> dict[str, Any]:
    """``{"healthy": bool, "checks": {...}}``; never raises for a database outage."""
    try:
        snapshot = cached_snapshot(alias)
    except DatabaseError as exc:
        logger.warning("health: database %r unreachable: %s", alias, exc)
        connections[alias].close()  # the next probe reconnects
        return {
            "healthy": False,
            "checks": {
                "database": {
                    "ok": False,
                    "error": type(exc).__name__,
                    # No server detail (host, port, user): the probe is unauthenticated.
                    "message": f"the database {alias!r} did not answer",
                }
            },
        }
    live = snapshot.live_workers
    oldest = snapshot.oldest_ready_age()
    limit = jobs_settings.HEALTH_MAX_READY_AGE
    checks: dict[str, Any] = {
        "database": {"ok": True},
        "workers": {
            "ok": bool(live),
            "live": len(live),
            "stale": len(snapshot.workers) - len(live),
        },
        "oldest_ready_age": {
            "ok": limit is None or oldest is None or oldest <= float(limit),
            "seconds": oldest,
            "limit": limit,
        },
        "prune_backlog": {"ok": True, "jobs": snapshot.prune_backlog},
    }
    return {"healthy": all(c["ok"] for c in checks.values()), "checks": checks}
