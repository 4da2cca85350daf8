"""Sign in, sign out and the account page."""

import secrets
import time

from flask import Blueprint, flash, redirect, render_template, session, url_for
from flask_babel import gettext as _, ngettext

from .. import accounts
from ..forms import LoginForm, LogoutForm
from ..pending import StoreUnavailable
from . import remember_email_allowance, remember_signup, render_form, unavailable

bp = Blueprint("account", __name__)
LOGIN_TEMPLATE = "account/login.html"


@bp.route("/login", methods=["GET", "POST"])
def login():
    """Sign in with a verified account; a signup not yet verified is sent on to /verify."""
    form = LoginForm()
    if not form.is_submitted():
        form.email.data = session.get("last_email")  # just verified elsewhere, or signed out
    if not form.validate_on_submit():
        return render_form(LOGIN_TEMPLATE, 400 if form.is_submitted() else 200, form=form)
    email = form.email.normalised
    started, browser_key = time.time(), secrets.token_urlsafe(16)
    try:
        outcome = accounts.attempt_sign_in(email, form.password.data, browser_key)
    except (StoreUnavailable, accounts.DatabaseUnavailable):
        return unavailable(LOGIN_TEMPLATE, form)
    if outcome.status == "locked":
        form.form_errors.append(ngettext(
            "Too many failed sign-ins for this address. You can try again in %(num)d minute, "
            "or choose a new password now.",
            "Too many failed sign-ins for this address. You can try again in %(num)d minutes, "
            "or choose a new password now.", max(1, -(-outcome.retry_after // 60))))
        return render_form(LOGIN_TEMPLATE, 429, {"Retry-After": str(outcome.retry_after)},
                           form=form)
    if outcome.status == "unverified":
        # This browser proved the signup password: it now counts as the one that signed up.
        remember_signup(email, started, browser_key)
        remember_email_allowance(email, outcome.retry_after)
        if outcome.retry_after:
            flash(ngettext("This address is not verified yet. We emailed it a code recently: "
                           "enter that code, or ask for a new one in %(num)d second.",
                           "This address is not verified yet. We emailed it a code recently: "
                           "enter that code, or ask for a new one in %(num)d seconds.",
                           outcome.retry_after), "warning")
        elif outcome.email_sent:
            flash(_("This address is not verified yet. We've emailed it a new code: enter it "
                    "below to finish signing up."), "info")
        else:
            flash(_("This address is not verified yet, and we could not send a new code just "
                    "now. Ask for one in a moment."), "error")
        return redirect(url_for("verify.verify"), 303)
    if outcome.status != "ok":
        form.form_errors.append(_("That email and password do not match an account. If you "
                                  "signed up recently, verify your address first."))
        return render_form(LOGIN_TEMPLATE, 400, form=form)
    accounts.sign_in(outcome.user)
    return redirect(url_for("account.account"), 303)


@bp.route("/logout", methods=["GET", "POST"])
def logout():
    """GET shows a sign-out button; POST signs out here and ends the user's other sessions."""
    form = LogoutForm()
    if form.validate_on_submit():
        try:
            accounts.sign_out()
            flash(_("You are signed out."), "info")
        except accounts.DatabaseUnavailable:
            flash(_("You are signed out on this browser, but we could not sign you out on your "
                    "other devices just now. Sign in and out again in a few minutes."), "warning")
        return redirect(url_for("main.index"), 303)
    return render_form("account/logout.html", 400 if form.is_submitted() else 200, form=form)


@bp.get("/account")
def account():
    """The signed-in user's page."""
    user = accounts.current_user()
    if user is None:
        return redirect(url_for("account.login"))
    return render_template("account/account.html", user=user)
