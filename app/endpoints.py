"""The form pages, by endpoint: each one's template, rate limit and form, declared once.

The views take their templates from here, `limits` its table of limited endpoints, and the 429
handler in `errors` the form it re-renders with what was typed.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import forms


@dataclass(frozen=True)
class FormPage:
    """One page with a form.

    limit: the config variable holding the per-IP limit on its POSTs (SPEC section 3), or None.
    form: the form the generic 429 answer re-renders; None when the view answers its own 429
    (the account page needs its user).
    """

    template: str
    limit: str | None = None
    form: type | None = None


FORM_PAGES = {
    "signup.signup": FormPage("signup/signup.html", "RATELIMIT_SIGNUP", forms.SignupForm),
    "verify.verify": FormPage("verify/verify.html", "RATELIMIT_VERIFY", forms.VerifyForm),
    "verify.link": FormPage("verify/link.html", "RATELIMIT_VERIFY", forms.LinkForm),
    "resend.resend": FormPage("resend/resend.html", "RATELIMIT_RESEND", forms.ResendForm),
    "account.login": FormPage("account/login.html", "RATELIMIT_LOGIN", forms.LoginForm),
    # A forgotten-password request sends an email, as a resend does; a reset checks a code or
    # link, as a verification does: each shares that allowance.
    "password.forgot": FormPage("password/forgot.html", "RATELIMIT_RESEND", forms.ForgotForm),
    "password.reset": FormPage("password/reset.html", "RATELIMIT_VERIFY", forms.ResetForm),
    "password.reset_link": FormPage("password/reset_link.html", "RATELIMIT_VERIFY",
                                    forms.ResetLinkForm),
    # The account page's forms check a password too: they draw on the sign-in allowance, so
    # guesses spread over the three pages get no more tries than /login alone.
    "account.change_password": FormPage("account/account.html", "RATELIMIT_LOGIN"),
    "account.delete": FormPage("account/account.html", "RATELIMIT_LOGIN"),
}

# endpoint -> the config variable holding its limit. Only POSTs count (SPEC section 3).
LIMITED_ENDPOINTS = {endpoint: page.limit for endpoint, page in FORM_PAGES.items() if page.limit}


def template(endpoint: str) -> str:
    """The template of the form page at `endpoint`."""
    return FORM_PAGES[endpoint].template
