"""Resend a new code and link."""

from flask import Blueprint, flash, redirect, session, url_for
from flask_babel import get_locale, gettext as _, ngettext

from .. import accounts
from ..forms import ResendForm
from ..pending import StoreUnavailable
from . import remember_email_allowance, render_form, seconds_until_resend, unavailable

bp = Blueprint("resend", __name__)
TEMPLATE = "resend/resend.html"


@bp.route("/resend", methods=["GET", "POST"])
def resend():
    """Issue a new code and link; the answer never tells whether a registration exists."""
    form = ResendForm()
    if not form.is_submitted():
        form.email.data = session.get("last_email")
    if not form.validate_on_submit():
        wait = seconds_until_resend(form.email.data)
        return render_form(TEMPLATE, 400 if form.is_submitted() else 200, form=form,
                           resend_wait=wait)
    email = form.email.normalised
    try:
        outcome = accounts.resend(email, str(get_locale()))
    except (StoreUnavailable, accounts.DatabaseUnavailable):
        return unavailable(TEMPLATE, form, resend_wait=0)
    if outcome.retry_after:
        remember_email_allowance(email, outcome.retry_after)
        form.email.errors.append(ngettext(
            "You can ask for a new code in %(num)d second.",
            "You can ask for a new code in %(num)d seconds.", outcome.retry_after))
        return render_form(TEMPLATE, 429, {"Retry-After": str(outcome.retry_after)}, form=form,
                           retry_after=outcome.retry_after, resend_wait=outcome.retry_after)
    session["last_email"] = email
    remember_email_allowance(email)
    if outcome.email_sent:
        flash(_("If a registration is waiting for this address, we've sent a new code."), "info")
    else:
        flash(_("We could not send the email just now. Please try again in a moment."), "error")
    return redirect(url_for("verify.verify"), 303)
