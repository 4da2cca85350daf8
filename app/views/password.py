"""Forgotten passwords: ask for help (`/password/forgot`), then set a new password with the
emailed code (`/password/reset`) or link (`/password/reset/<token>`)."""

from flask import Blueprint, current_app, flash, redirect, url_for
from flask_babel import get_locale, gettext as _, ngettext

from .. import accounts
from ..endpoints import template
from ..forms import ForgotForm, ResetForm, ResetLinkForm
from ..signup_state import SignupState
from . import ask_for_email, masked, render_form, unavailable

bp = Blueprint("password", __name__, url_prefix="/password")
FORGOT_TEMPLATE = template("password.forgot")
RESET_TEMPLATE = template("password.reset")
LINK_TEMPLATE = template("password.reset_link")
INVALID_LINK_TEMPLATE = "password/reset_link_invalid.html"
NO_REFERRER = {"Referrer-Policy": "no-referrer"}


@bp.route("/forgot", methods=["GET", "POST"])
def forgot():
    """Ask for a reset; the answer is the same whatever the address (only the email differs)."""
    refused, email, outcome = ask_for_email(ForgotForm(), FORGOT_TEMPLATE,
                                            accounts.forgot_password)
    if refused:
        return refused
    SignupState().reset_email = email
    if not outcome.email_sent:
        flash(_("We could not send the email just now. Please try again in a moment."), "error")
    return redirect(url_for("password.reset"), 303)


def _reset_context() -> dict:
    """What the code page says around its form: where the email went, for how long."""
    return {"masked_email": masked(SignupState().reset_email),
            "code_minutes": current_app.config["CODE_TTL_SECONDS"] // 60}


def _finish(result, form, template, headers=None, **context):
    """Turn the outcome of a reset into the response the person sees."""
    headers = dict(headers or {})
    if result.status == "verified":
        accounts.sign_in(result.result)
        flash(_("Your password was changed. You are signed in here and signed out everywhere "
                "else."), "success")
        return redirect(url_for("account.account"), 303)
    if result.status == "unavailable":
        return unavailable(template, form, **context)
    status, field = 400, getattr(form, "code", None)
    if result.status == "locked":
        status = 429
        headers["Retry-After"] = str(result.retry_after or 60)
        message = ngettext(
            "Too many wrong codes for this address. You can try again in %(num)d minute, or "
            "use the link in the email.",
            "Too many wrong codes for this address. You can try again in %(num)d minutes, or "
            "use the link in the email.", max(1, -(-(result.retry_after or 60) // 60)))
    elif result.status == "busy":
        status, field = 409, None
        message = _("This password is being changed right now. Wait a moment and sign in.")
    else:  # wrong, unknown, expired, code_dead: one answer, whatever the address's state
        message = _("That code is not right (or has expired).")
    if field is None:
        form.form_errors.append(message)
    else:
        field.errors = list(field.errors) + [message]
    return render_form(template, status, headers, form=form, **context)


@bp.route("/reset", methods=["GET", "POST"])
def reset():
    """A new password with the emailed code."""
    form = ResetForm()
    if not form.is_submitted():
        form.email.data = SignupState().reset_email
    context = _reset_context()
    if not form.validate_on_submit():
        return render_form(RESET_TEMPLATE, 400 if form.is_submitted() else 200, form=form,
                           **context)
    try:
        result = accounts.reset_password(form.password.data, str(get_locale()),
                                         email=form.email.normalised, code=form.normalised_code)
    except accounts.Unavailable:
        return unavailable(RESET_TEMPLATE, form, **context)
    return _finish(result, form, RESET_TEMPLATE, **context)


@bp.route("/reset/<token>", methods=["GET", "POST"])
def reset_link(token):
    """The emailed link: GET shows the form and changes nothing; POST sets the password."""
    form = ResetLinkForm()
    try:
        found = accounts.reset_for_link(token)
    except accounts.Unavailable:
        return unavailable(LINK_TEMPLATE, form, masked_email=None, token=token)
    if found is None:
        return render_form(INVALID_LINK_TEMPLATE, 404, NO_REFERRER)
    form.account_email = found.email
    context = {"masked_email": masked(found.email), "token": token}
    if not form.validate_on_submit():
        return render_form(LINK_TEMPLATE, 400 if form.is_submitted() else 200, NO_REFERRER,
                           form=form, **context)
    try:
        result = accounts.reset_password(form.password.data, str(get_locale()), token=token)
    except accounts.Unavailable:
        return unavailable(LINK_TEMPLATE, form, **context)
    if result.status == "unknown":
        return render_form(INVALID_LINK_TEMPLATE, 404, NO_REFERRER)
    return _finish(result, form, LINK_TEMPLATE, headers=NO_REFERRER, **context)
