"""One blueprint per feature; helpers the views share."""

from __future__ import annotations

from flask import render_template
from flask_babel import get_locale, gettext as _, ngettext

from .. import accounts
from ..security import mask_email
from ..signup_state import SignupState

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
    state = SignupState()
    if not form.is_submitted():
        form.email.data = state.last_email
    if not form.validate_on_submit():
        return render_form(template, 400 if form.is_submitted() else 200, form=form,
                           resend_wait=state.seconds_until_resend(form.email.data)), None, None
    email = form.email.normalised
    try:
        outcome = send(email, str(get_locale()))
    except accounts.Unavailable:
        return unavailable(template, form, resend_wait=0), None, None
    state.remember_email_allowance(email, outcome.retry_after)
    if outcome.retry_after:
        form.email.errors.append(ngettext(
            "You can ask for a new code in %(num)d second.",
            "You can ask for a new code in %(num)d seconds.", outcome.retry_after))
        return render_form(template, 429, {"Retry-After": str(outcome.retry_after)}, form=form,
                           retry_after=outcome.retry_after,
                           resend_wait=outcome.retry_after), None, None
    return None, email, outcome


def masked(email: str | None) -> str | None:
    """The masked address for display."""
    return mask_email(email) if email else None
