"""`/health` and `/metrics` for operators."""

import hmac

from flask import Blueprint, current_app, jsonify, request
from sqlalchemy import text

from .. import __version__, metrics
from ..extensions import db
from ..pending import get_manager

bp = Blueprint("health", __name__)


def authorised() -> bool:
    """True when HEALTH_TOKEN is unset or the caller presents it as a bearer token."""
    token = current_app.config.get("HEALTH_TOKEN")
    if not token:
        return True
    given = request.headers.get("Authorization", "")
    return hmac.compare_digest(given.encode(), f"Bearer {token}".encode())


def database_status() -> dict:
    """Whether the users database answers a trivial query."""
    try:
        db.session.execute(text("SELECT 1"))
        return {"status": "healthy"}
    except Exception as exc:  # any driver error means "cannot serve"
        db.session.rollback()
        return {"status": "unhealthy", "error": exc.__class__.__name__}


@bp.get("/health")
def health():
    """healthy / degraded (200) or unhealthy (503), with detail for authorised callers."""
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
    code = 503 if status == "unhealthy" else 200
    if not authorised():
        return jsonify({"status": status}), code
    body = {
        "status": status,
        "version": __version__,
        "redis": checked["redis"],
        "pending_registrations": checked["pending_registrations"],
        "database": database,
        "mail": current_app.extensions["mail_status"].as_dict(),
    }
    return jsonify(body), code


@bp.get("/metrics")
def prometheus_metrics():
    """Prometheus text exposition (summed across gunicorn workers); HEALTH_TOKEN guards it."""
    if not authorised():
        return jsonify({"error": "a bearer token is required"}), 401, {
            "WWW-Authenticate": "Bearer"}
    return metrics.exposition(get_manager())
