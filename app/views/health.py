"""`/health` and `/metrics` for operators."""

import hmac

from flask import Blueprint, current_app, jsonify, request

from ..health_report import health_report, metrics_page

bp = Blueprint("health", __name__)


def authorised() -> bool:
    """True when HEALTH_TOKEN is unset or the caller presents it as a bearer token."""
    token = current_app.config.get("HEALTH_TOKEN")
    if not token:
        return True
    given = request.headers.get("Authorization", "")
    return hmac.compare_digest(given.encode(), f"Bearer {token}".encode())


@bp.get("/health")
def health():
    """healthy / degraded (200) or unhealthy (503), with detail for authorised callers."""
    body, code = health_report()
    if not authorised():
        return jsonify({"status": body["status"]}), code
    return jsonify(body), code


@bp.get("/metrics")
def prometheus_metrics():
    """Prometheus text exposition (summed across gunicorn workers); HEALTH_TOKEN guards it."""
    if not authorised():
        return jsonify({"error": "a bearer token is required"}), 401, {
            "WWW-Authenticate": "Bearer"}
    return metrics_page()
