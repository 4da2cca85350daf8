"""Prometheus metrics (`/metrics`), correct across gunicorn workers (multiprocess mode).

The metric objects live at module level because prometheus-client registers them once per
process; under gunicorn, `gunicorn.conf.py` sets PROMETHEUS_MULTIPROC_DIR before any worker
imports this module, so every worker writes its samples to files that `/metrics` sums.
"""

from __future__ import annotations

import time

from flask import Response, g, request
from prometheus_client import (CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, Counter, Gauge,
                               Histogram, generate_latest, multiprocess, values)

# prometheus-client picks its value class once, when first imported: follow that choice rather
# than the environment now (which a later import of gunicorn.conf.py may have changed).
MULTIPROCESS = values.ValueClass is not values.MutexValue

STARTED = Counter("signup_started_total", "Signups accepted (forms that passed validation).")
EMAILS_SENT = Counter("signup_emails_sent_total", "Emails sent, by kind.", ["kind"])
EMAILS_FAILED = Counter("signup_emails_failed_total", "Emails that could not be sent, by kind.",
                        ["kind"])
VERIFIED = Counter("signup_verified_total", "Registrations verified, by method.", ["method"])
WRONG_CODES = Counter("signup_wrong_codes_total",
                      "Wrong codes (including unknown addresses and wrong signup passwords).")
EXPIRED = Counter("signup_expired_total", "Codes entered after they expired.")
RESENDS = Counter("signup_resends_total", "Resend requests within the email allowance.")
PASSWORD_RESETS = Counter(
    "signup_password_resets_total",
    "Password resets by stage: requested (a code and link emailed to an account), refused (a "
    "reset code refused: wrong, expired, dead, locked or for no reset), completed.", ["stage"])
LOGIN_FAILURES = Counter(
    "signup_login_failures_total",
    "Failed sign-ins, by reason: password (wrong address or password), throttled (refused: "
    "LOGIN_MAX_FAILURES reached for the address).", ["reason"])
ACCOUNTS_DELETED = Counter("signup_accounts_deleted_total",
                           "Accounts deleted (by their owner on /account, or by `users delete`).")
RATE_LIMITED = Counter("signup_rate_limited_total", "Requests refused by a rate limit.",
                       ["endpoint"])
# Each worker reports what it sees; "live" modes forget workers that have exited.
PENDING = Gauge("signup_pending_registrations", "Pending registrations (all backends).",
                multiprocess_mode="livemostrecent")
FALLBACK = Gauge("signup_fallback_active", "1 while a worker serves from the memory fallback.",
                 multiprocess_mode="livemax")
DURATION = Histogram("signup_request_duration_seconds", "Request duration, by endpoint.",
                     ["endpoint"])


def record_check(status: str, method: str) -> None:
    """Count the outcome of a code or link verification."""
    if status == "verified":
        VERIFIED.labels(method=method).inc()
    elif status in ("wrong", "unknown", "wrong_password"):
        WRONG_CODES.inc()
    elif status == "expired":
        EXPIRED.inc()


def _start_timer():
    g.metrics_started = time.perf_counter()


def _observe(response):
    started = g.pop("metrics_started", None)
    if started is not None:
        # The endpoint name, never the path: paths carry link tokens and unbounded values.
        endpoint = request.endpoint or "unmatched"
        DURATION.labels(endpoint=endpoint).observe(time.perf_counter() - started)
    return response


def exposition(manager) -> Response:
    """The text exposition, with the gauges refreshed from this worker's view."""
    try:
        PENDING.set(manager.get_stats()["total"])
    except Exception:  # a store outage must not break scraping; the gauge keeps its last value
        pass
    FALLBACK.set(1 if manager.degraded else 0)
    if MULTIPROCESS:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = REGISTRY
    return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)


def init_app(app) -> None:
    """Time every request."""
    app.before_request(_start_timer)
    app.after_request(_observe)
