"""Sign in, sign out and the account page."""

from flask import Blueprint, flash, redirect, render_template, session, url_for
from flask_babel import gettext as _

from .. import accounts
from ..forms import LoginForm, LogoutForm
from . import render_form, unavailable

bp = Blueprint("account", __name__)


@bp.route("/login", methods=["GET", "POST"])
def login():
    """Sign in with a verified account."""
    form = LoginForm()
    if not form.is_submitted():
        form.email.data = session.get("last_email")  # just verified elsewhere, or signed out
    if not form.validate_on_submit():
        return render_form("account/login.html", 400 if form.is_submitted() else 200, form=form)
    try:
        user = accounts.authenticate(form.email.normalised, form.password.data)
    except accounts.DatabaseUnavailable:
        return unavailable("account/login.html", form)
    if user is None:
        form.form_errors.append(_("That email and password do not match an account. If you "
                                  "signed up recently, verify your address first."))
        return render_form("account/login.html", 400, form=form)
    accounts.sign_in(user)
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
