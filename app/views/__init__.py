"""One blueprint per feature; helpers the views share."""

from __future__ import annotations

from flask import render_template, session
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


def remember_signup(email: str) -> None:
    """Mark this browser as the one that signed up with `email`."""
    session["signup_email"] = email
    session["last_email"] = email


def masked(email: str | None) -> str | None:
    """The masked address for display."""
    return mask_email(email) if email else None
