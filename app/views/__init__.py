"""One blueprint per feature; helpers the views share."""

from __future__ import annotations

import math
import time

from flask import current_app, render_template, session
from flask_babel import get_locale, gettext as _, ngettext

from .. import accounts
from ..pending import StoreUnavailable
from ..security import mask_email

BLUEPRINT_MODULES = ("main", "signup", "verify", "resend", "account", "password", "health")


def render_form(template: str, status: int = 200, headers=None, **context):
    """Render a page with its form; errors keep the status that says what went wrong."""
    return render_template(template, **context), status, headers or {}


def unavailable(template: str, form, **context):
    """Re-render a form with the 503 message for a dependency that is down."""
    form.form_errors.append(_("The service is temporarily unavailable. Please try again in a "
                              "minute: nothing you sent was lost."))
    return render_form(template, 503, {"Retry-After": "30"}, form=form, **context)


def ask_for_email(form, template: str, send):
    """What the forms that ask for an email share (resend, forgotten password).

    Validates the form, calls `send(email, locale)` (an `accounts` function answering a
    SignupOutcome) and remembers when this browser may ask again. Returns (None, email,
    outcome) when it ran within the email allowance, else (the response to give, None, None):
    the form with its errors, 503, or 429 with when to ask again.
    """
    if not form.is_submitted():
        form.email.data = session.get("last_email")
    if not form.validate_on_submit():
        return render_form(template, 400 if form.is_submitted() else 200, form=form,
                           resend_wait=seconds_until_resend(form.email.data)), None, None
    email = form.email.normalised
    try:
        outcome = send(email, str(get_locale()))
    except (StoreUnavailable, accounts.DatabaseUnavailable):
        return unavailable(template, form, resend_wait=0), None, None
    remember_email_allowance(email, outcome.retry_after)
    if outcome.retry_after:
        form.email.errors.append(ngettext(
            "You can ask for a new code in %(num)d second.",
            "You can ask for a new code in %(num)d seconds.", outcome.retry_after))
        return render_form(template, 429, {"Retry-After": str(outcome.retry_after)}, form=form,
                           retry_after=outcome.retry_after,
                           resend_wait=outcome.retry_after), None, None
    return None, email, outcome


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
