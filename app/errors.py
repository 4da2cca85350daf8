"""Error pages for 400/404/405/413/429/500/503: words, never a traceback."""

import logging
import time

from flask import current_app, jsonify, render_template, request
from flask_babel import gettext as _, ngettext
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException, InternalServerError

from . import metrics
from .endpoints import FORM_PAGES
from .forms import NotFormText

log = logging.getLogger(__name__)

MESSAGES = {
    400: lambda: _("The request could not be understood. Please go back and try again."),
    404: lambda: _("There is no page at this address."),
    405: lambda: _("This page does not accept that kind of request."),
    413: lambda: _("What you sent is too large."),
    429: lambda: _("Too many requests. Please wait a little and try again."),
    500: lambda: _("Something went wrong on our side. Please try again."),
    503: lambda: _("The service is temporarily unavailable. Please try again shortly."),
}


def render_error(code: int, message: str | None = None, headers=None):
    """The error page (JSON for /health and /metrics callers)."""
    message = message or MESSAGES.get(code, MESSAGES[400])()
    if request.path in ("/health", "/metrics"):
        return jsonify({"error": message}), code, headers or {}
    return render_template("errors/error.html", code=code, message=message), code, headers or {}


def _retry_after_seconds() -> int:
    """Seconds until the breached limit resets (Flask-Limiter's RateLimitExceeded knows)."""
    current = current_app.extensions["rate_limiter"].current_limit
    if current is None:
        return 60  # no window information: a minute is the smallest window we use
    return max(1, int(current.reset_at - time.time()))


def rate_limited_answer() -> tuple[str, dict]:
    """Count a request refused by a rate limit; the words and headers of its 429 answer."""
    metrics.RATE_LIMITED.labels(endpoint=request.endpoint or "unmatched").inc()
    wait = _retry_after_seconds()
    message = ngettext(
        "Too many attempts from your network. Please try again in %(num)d minute.",
        "Too many attempts from your network. Please try again in %(num)d minutes.",
        max(1, -(-wait // 60)))
    return message, {"Retry-After": str(wait)}


def handle_rate_limited(exc: HTTPException):
    """A rate limit: re-render the form with what was typed and when to try again (429)."""
    message, headers = rate_limited_answer()
    page = FORM_PAGES.get(request.endpoint)
    if page is None or page.form is None:
        return render_error(429, headers=headers)
    form = page.form()
    for secret in ("password", "confirm", "code"):
        if hasattr(form, secret):
            getattr(form, secret).data = ""
    form.form_errors.append(message)
    return render_template(page.template, form=form, same_browser=True,
                           token=(request.view_args or {}).get("token")), 429, headers


def handle_http(exc: HTTPException):
    """Any werkzeug HTTP error."""
    if exc.code == 429:
        return handle_rate_limited(exc)
    code = exc.code or 500
    if code >= 500 and code != 503:
        code = 500
    headers = {}
    if code == 405 and hasattr(exc, "valid_methods") and exc.valid_methods:
        headers["Allow"] = ", ".join(exc.valid_methods)
    return render_error(code, headers=headers)


def handle_csrf(exc: CSRFError):
    """A missing or wrong CSRF token: nothing was stored."""
    return render_error(400, _("This form has expired or was not sent from this site. Please "
                               "reload the page and try again."))


def handle_not_form_text(exc: NotFormText):
    """A file part or a non-text JSON value where a form field was expected: nothing was stored."""
    return render_error(400, _("Every field of this form must be text typed into the page (not "
                               "a file or another kind of value). Please go back and send the "
                               "form again."))


def handle_unexpected(exc: Exception):
    """Log the failure without request data, and show a page in words."""
    if isinstance(exc, HTTPException):
        return handle_http(exc)
    log.error("unhandled error on %s %s: %s", request.method, request.endpoint,
              exc.__class__.__name__, exc_info=exc)
    return render_error(500)


def init_app(app) -> None:
    """Register the handlers."""
    app.register_error_handler(CSRFError, handle_csrf)
    app.register_error_handler(NotFormText, handle_not_form_text)
    app.register_error_handler(HTTPException, handle_http)
    app.register_error_handler(InternalServerError, handle_http)
    app.register_error_handler(Exception, handle_unexpected)
