"""The signup form, with a typo question before anything is stored."""

import secrets
import time

from flask import Blueprint, flash, redirect, request, url_for
from flask_babel import get_locale, gettext as _, ngettext

from .. import accounts, fastpaths, typos
from ..endpoints import template
from ..forms import SignupForm, normalise_email
from ..signup_state import SignupState
from . import render_form, unavailable

bp = Blueprint("signup", __name__)
TEMPLATE = template("signup.signup")


def apply_suggestion(form: SignupForm) -> None:
    """"Use the suggestion": swap in the corrected address, unless the person edited the field.

    The suggestion is computed again here rather than taken from the request, so the button
    can only ever choose the hint the server offered for what was typed.
    """
    if request.form.get("choice") != "suggested":
        return
    typed = form.typed_email.data or ""
    try:
        current = normalise_email(form.email.data or "")
    except ValueError:
        return
    suggestion = typos.suggest(typed)
    if current == typed and suggestion:
        form.email.data = suggestion


@bp.route("/signup", methods=["GET", "POST"])
def signup():
    """Show the form; on a valid POST store the pending registration and email the code."""
    if request.method == "GET":
        return fastpaths.blank_page(TEMPLATE, SignupForm)
    form = SignupForm()
    if form.is_submitted():
        apply_suggestion(form)
    if not form.validate_on_submit():
        return render_form(TEMPLATE, 400 if form.is_submitted() else 200, form=form)
    email = form.email.normalised
    suggestion = typos.suggest(email)
    if suggestion and form.typed_email.data != email:
        # A question, not an error: 200, and nothing is stored until the person answers. The
        # passwords are shown again (only here, on a no-store page) so answering is one press.
        form.typed_email.data = email
        form.password.keep_value = form.confirm.keep_value = True
        return render_form(TEMPLATE, 200, form=form, suggestion=suggestion)
    started = time.time()
    browser_key = secrets.token_urlsafe(16)
    try:
        outcome = accounts.signup(email, form.password.data, (form.name.data or "").strip(),
                                  str(get_locale()), browser_key)
    except accounts.Unavailable:
        return unavailable(TEMPLATE, form)
    state = SignupState()
    state.remember_email_allowance(email, outcome.retry_after)
    if outcome.retry_after:
        # Nothing was stored (the registration already pending, its code and link stay), so
        # this browser did not sign up: marked as the signing-up browser, it would no longer
        # be asked for the password that registration needs (and one that signed up before
        # keeps its mark). The answer is the same for every address: the allowance is.
        state.last_email = email
        flash(ngettext("We have emailed this address recently. You can ask for a new code in "
                       "%(num)d second.",
                       "We have emailed this address recently. You can ask for a new code in "
                       "%(num)d seconds.", outcome.retry_after), "warning")
        return redirect(url_for("verify.verify"), 303)
    state.remember_signup(email, started, browser_key)
    if not outcome.email_sent:
        flash(_("We could not send the email just now. Your registration is saved: ask for a "
                "new code in a moment."), "error")
    return redirect(url_for("verify.verify"), 303)
