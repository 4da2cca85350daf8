"""What `/health` and `/metrics` report, gathered from the pending manager and the database.

The health view calls these; it never reads the manager or the database itself.
"""

from __future__ import annotations

from flask import current_app
from sqlalchemy import text

from . import metrics
from .extensions import db
from .pending import get_manager
from .version import __version__


def database_status() -> dict:
    """Whether the users database answers a trivial query."""
    try:
        db.session.execute(text("SELECT 1"))
        return {"status": "healthy"}
    except Exception as exc:  # any driver error means "cannot serve"
        db.session.rollback()
        return {"status": "unhealthy", "error": exc.__class__.__name__}


def health_report() -> tuple[dict, int]:
    """The full report and its HTTP status: healthy / degraded (200) or unhealthy (503).

    Callers without the HEALTH_TOKEN get only `{"status": ...}` of it (see the view).
    """
    manager = get_manager()
    checked = manager.health_check()
    database = database_status()
    redis_down = checked["redis"]["status"] == "unhealthy"
    if database["status"] != "healthy" or (redis_down and not manager.fallback_enabled):
        status = "unhealthy"
    elif manager.degraded or redis_down:
        status = "degraded"
    else:
        status = "healthy"
    body = {
        "status": status,
        "version": __version__,
        "redis": checked["redis"],
        "pending_registrations": checked["pending_registrations"],
        "database": database,
        "mail": current_app.extensions["mail_status"].as_dict(),
    }
    return body, 503 if status == "unhealthy" else 200


def metrics_page():
    """The Prometheus text exposition, summed across gunicorn workers."""
    return metrics.exposition(get_manager())
