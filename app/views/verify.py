"""Verification by code (`/verify`), by the emailed link (`/verify/<token>`), and the waiting
page's status check (`/verify/status`, `/verify/done`)."""

from flask import Blueprint, current_app, flash, jsonify, redirect, render_template, url_for
from flask_babel import gettext as _, ngettext

from .. import accounts, fastpaths
from ..endpoints import template
from ..forms import LinkForm, VerifyForm
from ..signup_state import SignupState
from . import masked, render_form, unavailable

bp = Blueprint("verify", __name__)
CODE_TEMPLATE = template("verify.verify")
LINK_TEMPLATE = template("verify.link")
INVALID_LINK_TEMPLATE = "verify/link_invalid.html"
DONE_TEMPLATE = "verify/done.html"
NO_REFERRER = {"Referrer-Policy": "no-referrer"}


def _code_page_context(email):
    """What the code page shows around its form: where the code went, resend, the watcher."""
    cfg, state = current_app.config, SignupState()
    same_browser = state.signed_up(email)
    return {"masked_email": masked(email), "code_minutes": cfg["CODE_TTL_SECONDS"] // 60,
            "same_browser": same_browser, "resend_email": email or None,
            "resend_wait": state.seconds_until_resend(email),
            # Only the browser that signed up waits for a verification made elsewhere.
            "watch_status": same_browser}


def signup_status() -> str:
    """"none", "pending" or "verified" for this browser's own signup (`accounts.signup_status`)."""
    state = SignupState()
    return accounts.signup_status(state.signup_email, state.signup_at)


# Answers that refuse a code. They must read the same whether the address is new, pending,
# already a user or unknown, and whether the code was right but the password given with it
# wrong: otherwise the page would tell an account exists, or confirm a code.
REFUSED = ("wrong", "unknown", "expired", "code_dead", "wrong_password")


def _refused_message(result, same_browser) -> str:
    """The words for a refused code.

    Any other browser only hears "not right". The signing-up browser is also told how many
    tries are left, as the store counted them: every refusal counts on the code and on the
    address whatever the address's state (with no registration, on a stand-in for the code),
    so the numbers cannot tell a pending address from one with an account, and a copied
    cookie cannot reset them.
    """
    message = _("That code is not right (or has expired).")
    if not same_browser:
        return message
    if result.status == "code_dead":
        return _("This code was tried too many times. Ask for a new code.")
    if result.attempts_left is None:
        return message
    return message + " " + _("Attempts left: %(n)d.", n=result.attempts_left)


def _locked_message(template: str, retry_after: int) -> str:
    """The per-address lock, in minutes; on the link page, the way that still works."""
    minutes = max(1, -(-retry_after // 60))
    if template == LINK_TEMPLATE:
        return ngettext(
            "Too many wrong tries for this address. You can try again in %(num)d minute, or "
            "confirm in the browser you signed up with.",
            "Too many wrong tries for this address. You can try again in %(num)d minutes, or "
            "confirm in the browser you signed up with.", minutes)
    return ngettext(
        "Too many wrong codes for this address. You can try again in %(num)d minute.",
        "Too many wrong codes for this address. You can try again in %(num)d minutes.",
        minutes)


def _finish(result, form, template, headers=None, **context):
    """Turn a CodeCheck into the response the person sees."""
    headers = dict(headers or {})
    if result.status == "verified":
        promotion = result.result
        if promotion.already_verified:
            form.form_errors.append(_("This address is already verified. Please sign in."))
            return render_form(template, 409, headers, form=form, **context)
        accounts.sign_in(promotion.user)
        flash(_("Your address is verified. Welcome!"), "success")
        return redirect(url_for("account.account"), 303)
    status, message, field = 400, None, getattr(form, "code", None)
    if result.status in REFUSED and template == CODE_TEMPLATE:
        message = _refused_message(result, context.get("same_browser"))
    elif result.status == "wrong_password":
        # The link page: its token was emailed, so saying the password failed confirms nothing.
        field = form.password
        # The address was signed up again (perhaps by someone else) since this browser did:
        # it has to give that signup's password now, so the field is shown.
        context["same_browser"] = False
        message = _("That is not the password chosen at signup. Enter it to finish on this "
                    "device, or use the browser you signed up with.")
    elif result.status == "locked":
        status = 429
        headers["Retry-After"] = str(result.retry_after or 60)
        message = _locked_message(template, result.retry_after or 60)
    elif result.status == "busy":
        status = 409
        message = _("This registration is being verified right now. Wait a moment and sign in.")
    elif result.status == "unavailable":
        return unavailable(template, form, **context)
    if (template == CODE_TEMPLATE and result.status in REFUSED and not context["resend_wait"]
            and fastpaths.enabled()):
        return _refused_code_page(form, message, context), status, headers
    if field is None:
        form.form_errors.append(message)
    else:
        field.errors = list(field.errors) + [message]
    return render_form(template, status, headers, form=form, offer_resend=True, **context)


def _refused_code_page(form, message: str, context: dict) -> str:
    """The code page refusing a code, from the fast paths' cache: the path a guesser hammers.

    It is the page `render_form` would give (tests/test_fastpaths.py compares the two), with
    the typed address, the message and the masked address as slots; everything else it shows
    is in the variant.
    """
    slots = {"typed": form.email.data or "", "address": context["resend_email"] or "",
             "message": message, "masked": context["masked_email"] or ""}
    variant = ("refused", context["same_browser"], context["watch_status"],
               bool(context["resend_email"]), bool(context["masked_email"]))

    def make_context(texts):
        shown = VerifyForm(formdata=None, data={"email": texts["typed"]})
        shown.code.errors = [texts["message"]]
        return {**context, "form": shown, "offer_resend": True,
                "resend_email": texts["address"] if context["resend_email"] else None,
                "masked_email": texts["masked"] if context["masked_email"] else None}

    return fastpaths.page(CODE_TEMPLATE, variant, slots, make_context)


@bp.route("/verify", methods=["GET", "POST"])
def verify():
    """Code entry: the signing-up browser needs only the code, any other also the password."""
    form, state = VerifyForm(), SignupState()
    if not form.is_submitted():
        form.email.data = state.last_email
    email = getattr(form.email, "normalised", None) or form.email.data
    if not form.validate_on_submit():
        context = _code_page_context(state.last_email if not form.is_submitted() else email)
        return render_form(CODE_TEMPLATE, 400 if form.is_submitted() else 200, form=form,
                           **context)
    email = form.email.normalised
    context = _code_page_context(email)
    same_browser = context["same_browser"]
    if not same_browser and not form.password.data:
        form.password.errors = [_("Enter the password you chose at signup: this browser is not "
                                  "the one that signed up.")]
        return render_form(CODE_TEMPLATE, 400, form=form, **context)
    try:
        result = accounts.verify_code(email, form.normalised_code,
                                      signup_email=state.signup_email,
                                      browser_key=state.signup_key,
                                      password=form.password.data or None)
    except accounts.Unavailable:
        return unavailable(CODE_TEMPLATE, form, **context)
    return _finish(result, form, CODE_TEMPLATE, **context)


@bp.get("/verify/status")
def status():
    """JSON for the waiting /verify page: has this browser's signup been verified elsewhere?"""
    try:
        state = signup_status()
    except accounts.DatabaseUnavailable:
        return jsonify({"status": "unavailable"}), 503, {"Retry-After": "30"}
    return jsonify({"status": state})


@bp.get("/verify/done")
def done():
    """Where the waiting page goes once the registration was verified on another device."""
    try:
        state = signup_status()
    except accounts.DatabaseUnavailable:
        state = "unavailable"
    if state != "verified":
        return redirect(url_for("verify.verify"))
    # Not signed in here: this browser proved nothing (the code or link was used elsewhere).
    return render_template(DONE_TEMPLATE, masked_email=masked(SignupState().signup_email))


@bp.route("/verify/<token>", methods=["GET", "POST"])
def link(token):
    """The emailed link: GET shows a confirm button and changes nothing; POST verifies."""
    form, state = LinkForm(), SignupState()
    try:
        found = accounts.registration_for_link(token, state.signup_email, state.signup_key)
    except accounts.Unavailable:
        return unavailable(LINK_TEMPLATE, form, masked_email=None, same_browser=True)
    if found is None:
        return render_form(INVALID_LINK_TEMPLATE, 404, NO_REFERRER)
    same_browser = found.same_browser
    context = {"masked_email": masked(found.email), "same_browser": same_browser, "token": token}
    if not form.validate_on_submit():
        status = 400 if form.is_submitted() else 200
        return render_form(LINK_TEMPLATE, status, NO_REFERRER, form=form, **context)
    if not same_browser and not form.password.data:
        form.password.errors = [_("Enter the password you chose at signup: this browser is not "
                                  "the one that signed up.")]
        return render_form(LINK_TEMPLATE, 400, NO_REFERRER, form=form, **context)
    try:
        result = accounts.verify_link(token, signup_email=state.signup_email,
                                      browser_key=state.signup_key,
                                      password=form.password.data or None)
    except accounts.Unavailable:
        return unavailable(LINK_TEMPLATE, form, **context)
    if result.status == "unknown":
        return render_form(INVALID_LINK_TEMPLATE, 404, NO_REFERRER)
    return _finish(result, form, LINK_TEMPLATE, headers=NO_REFERRER, **context)
