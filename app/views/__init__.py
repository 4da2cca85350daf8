"""One blueprint per feature; helpers the views share."""

from __future__ import annotations

import math
import time

from flask import current_app, render_template, session
from flask_babel import gettext as _

from ..security import mask_email

BLUEPRINT_MODULES = ("main", "signup", "verify", "resend", "account", "health")


def render_form(template: str, status: int = 200, headers=None, **context):
    """Render a page with its form; errors keep the status that says what went wrong."""
    return render_template(template, **context), status, headers or {}


def unavailable(template: str, form, **context):
    """Re-render a form with the 503 message for a dependency that is down."""
    form.form_errors.append(_("The service is temporarily unavailable. Please try again in a "
                              "minute: nothing you sent was lost."))
    return render_form(template, 503, {"Retry-After": "30"}, form=form, **context)


def remember_signup(email: str, started: float, browser_key: str) -> None:
    """Mark this browser as the one that signed up with `email`, and when it started."""
    session["signup_email"] = email
    session["signup_key"] = browser_key  # its digest is stored with the registration
    session["last_email"] = email
    # /verify/status reports "verified" only for an account created after this moment, so an
    # address that already had an account looks exactly like one still waiting (SPEC 3).
    session["signup_at"] = started


def remember_email_allowance(email: str, retry_after: int = 0) -> None:
    """Remember when this browser may next ask for an email to `email` (the resend countdown).

    Every signup or resend takes one email from the address's allowance, whatever the branch,
    so this tells the browser nothing it did not already know.
    """
    wait = retry_after or current_app.config["RESEND_COOLDOWN_SECONDS"]
    session["next_email_at"] = {"email": email, "at": time.time() + wait}


def seconds_until_resend(email: str | None) -> int:
    """Seconds this browser should wait before asking for another email to `email` (0: now)."""
    remembered = session.get("next_email_at")
    if not email or not isinstance(remembered, dict) or remembered.get("email") != email:
        return 0
    try:
        return max(0, math.ceil(float(remembered.get("at", 0)) - time.time()))
    except (TypeError, ValueError):
        return 0


def masked(email: str | None) -> str | None:
    """The masked address for display."""
    return mask_email(email) if email else None
