"""The signup form."""

from flask import Blueprint, flash, redirect, url_for
from flask_babel import get_locale, gettext as _

from .. import accounts
from ..forms import SignupForm
from ..pending import StoreUnavailable
from . import remember_signup, render_form, unavailable

bp = Blueprint("signup", __name__)
TEMPLATE = "signup/signup.html"


@bp.route("/signup", methods=["GET", "POST"])
def signup():
    """Show the form; on a valid POST store the pending registration and email the code."""
    form = SignupForm()
    if not form.validate_on_submit():
        return render_form(TEMPLATE, 400 if form.is_submitted() else 200, form=form)
    email = form.email.normalised
    try:
        outcome = accounts.signup(email, form.password.data, (form.name.data or "").strip(),
                                  str(get_locale()))
    except (StoreUnavailable, accounts.DatabaseUnavailable):
        return unavailable(TEMPLATE, form)
    remember_signup(email)
    if outcome.retry_after:
        flash(_("We have emailed this address recently. You can ask for a new code in "
                "%(seconds)d seconds.", seconds=outcome.retry_after), "warning")
    elif not outcome.email_sent:
        flash(_("We could not send the email just now. Your registration is saved: ask for a "
                "new code in a moment."), "error")
    return redirect(url_for("verify.verify"), 303)
