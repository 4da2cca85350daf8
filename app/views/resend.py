"""Resend a new code and link."""

from flask import Blueprint, flash, redirect, url_for
from flask_babel import gettext as _

from .. import accounts
from ..endpoints import template
from ..forms import ResendForm
from ..signup_state import SignupState
from . import ask_for_email

bp = Blueprint("resend", __name__)
TEMPLATE = template("resend.resend")


@bp.route("/resend", methods=["GET", "POST"])
def resend():
    """Issue a new code and link; the answer never tells whether a registration exists."""
    refused, email, outcome = ask_for_email(ResendForm(), TEMPLATE, accounts.resend)
    if refused:
        return refused
    SignupState().last_email = email
    if outcome.email_sent:
        flash(_("If a registration is waiting for this address, we've sent a new code."), "info")
    else:
        flash(_("We could not send the email just now. Please try again in a moment."), "error")
    return redirect(url_for("verify.verify"), 303)
