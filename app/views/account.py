"""Sign in, sign out, and the account page: change the password, delete the account."""

import secrets
import time

from flask import Blueprint, flash, redirect, request, url_for
from flask_babel import get_locale, gettext as _, ngettext

from .. import accounts
from ..endpoints import template
from ..errors import handle_rate_limited, rate_limited_answer
from ..forms import ChangePasswordForm, DeleteAccountForm, LoginForm, LogoutForm
from ..signup_state import SignupState
from . import render_form, unavailable

bp = Blueprint("account", __name__)
LOGIN_TEMPLATE = template("account.login")
ACCOUNT_TEMPLATE = template("account.change_password")
# The account page's forms, by the endpoint each posts to, and the name the template gives it.
ACCOUNT_FORMS = {"account.change_password": ("password_form", ChangePasswordForm),
                 "account.delete": ("delete_form", DeleteAccountForm)}


@bp.route("/login", methods=["GET", "POST"])
def login():
    """Sign in with a verified account; a signup not yet verified is sent on to /verify."""
    form = LoginForm()
    state = SignupState()
    if not form.is_submitted():
        form.email.data = state.last_email  # just verified elsewhere, or signed out
    if not form.validate_on_submit():
        return render_form(LOGIN_TEMPLATE, 400 if form.is_submitted() else 200, form=form)
    email = form.email.normalised
    started, browser_key = time.time(), secrets.token_urlsafe(16)
    try:
        outcome = accounts.attempt_sign_in(email, form.password.data, browser_key)
    except accounts.Unavailable:
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
        state.remember_signup(email, started, browser_key)
        state.remember_email_allowance(email, outcome.retry_after)
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


def account_forms(user, **shown) -> dict:
    """The account page's context: the user and both forms (`shown` ones as they were posted)."""
    return {"user": user,
            "password_form": shown.get("password_form")
            or ChangePasswordForm(formdata=None, owner_email=user.email),
            "delete_form": shown.get("delete_form") or DeleteAccountForm(formdata=None)}


@bp.get("/account")
def account():
    """The signed-in user's page."""
    user = accounts.current_user()
    if user is None:
        return redirect(url_for("account.login"))
    return render_form(ACCOUNT_TEMPLATE, **account_forms(user))


def _account_post(name: str, form_for, act, password_field: str, wrong: str, done: tuple):
    """The steps both account forms share.

    Signed out: to the sign-in page. Invalid fields: the page again (400). `act(user, form)`
    returns False for a wrong password, said by `password_field` (400); a database that is
    down: 503. Success flashes `done`'s message (with its category) and redirects to its
    endpoint.
    """
    user = accounts.current_user()
    if user is None:
        return redirect(url_for("account.login"), 303)
    form = form_for(user)
    context = account_forms(user, **{name: form})
    if form.validate_on_submit():
        try:
            if act(user, form):
                message, category, endpoint = done
                flash(message, category)
                return redirect(url_for(endpoint), 303)
        except accounts.DatabaseUnavailable:
            return unavailable(ACCOUNT_TEMPLATE, form, **context)
        getattr(form, password_field).errors = [wrong]
    return render_form(ACCOUNT_TEMPLATE, 400, **context)


@bp.post("/account/password")
def change_password():
    """Change the password: other sessions end, this one stays, the owner is emailed."""
    return _account_post(
        "password_form", lambda user: ChangePasswordForm(owner_email=user.email),
        lambda user, form: accounts.change_password(
            user, form.current_password.data, form.password.data, str(get_locale())),
        "current_password", _("That is not your current password."),
        (_("Your password was changed. Any other device signed in to your account was signed "
           "out."), "success", "account.account"))


@bp.post("/account/delete")
def delete():
    """Delete the account with its password: the row goes, every session ends, a goodbye email."""
    return _account_post(
        "delete_form", lambda _user: DeleteAccountForm(),
        lambda user, form: accounts.delete_account(user, form.password.data, str(get_locale())),
        "password", _("That is not your password."),
        (_("Your account was deleted, and you are signed out everywhere. You can sign up again "
           "with the same address at any time."), "info", "main.index"))


@bp.errorhandler(429)
def rate_limited(exc):
    """The account page's forms over the per-IP limit: the page again, with when to retry."""
    user = accounts.current_user()
    if request.endpoint not in ACCOUNT_FORMS or user is None:
        return handle_rate_limited(exc)
    message, headers = rate_limited_answer()
    name, form_class = ACCOUNT_FORMS[request.endpoint]
    form = form_class(formdata=None)
    form.form_errors.append(message)
    return render_form(ACCOUNT_TEMPLATE, 429, headers, **account_forms(user, **{name: form}))
