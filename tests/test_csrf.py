"""CSRF (SPEC section 8): every form POST without a valid token of its own session is refused
with a page in words and changes nothing.
"""

from __future__ import annotations

import re

import pytest

from .helpers import (EMAIL, OTHER_EMAIL, PASSWORD, SignupActions, assert_redirect, csrf_token,
                      page_text, path_of, pending, signed_up, user_emails, verified)


CSRF_MESSAGE = "not sent from this site"


CSRF_FORMS = ["signup", "verify", "link", "resend", "login", "logout"]


@pytest.mark.parametrize("token", ["missing", "garbage", "other-session"])
@pytest.mark.parametrize("form", CSRF_FORMS)
def test_form_post_without_valid_csrf_token_changes_nothing(make_app, smtp, form, token):
    """A missing or wrong csrf_token: 400 page in words; nothing stored, sent or signed in."""
    app = make_app()
    browser = SignupActions(app.test_client(), smtp)
    other = SignupActions(app.test_client(), smtp)
    if form in ("login", "logout"):
        verified(browser, OTHER_EMAIL)  # an account to sign in to / be signed in with
        if form == "login":
            browser.client.post("/logout", data={"csrf_token": csrf_token(
                browser.client.get("/logout").text)})
    code, link = signed_up(other, EMAIL)
    before = pending(app)
    smtp.clear()
    data, path = {
        "signup": ({"email": "carol@example.com", "password": PASSWORD, "confirm": PASSWORD},
                   "/signup"),
        "verify": ({"email": EMAIL, "code": code, "password": PASSWORD}, "/verify"),
        "link": ({"password": PASSWORD}, path_of(link)),
        "resend": ({"email": EMAIL}, "/resend"),
        "login": ({"email": OTHER_EMAIL, "password": PASSWORD}, "/login"),
        "logout": ({}, "/logout"),
    }[form]
    browser.client.get(path)  # the browser has a session with its own token
    if token == "garbage":
        data["csrf_token"] = "not-a-real-token"
    elif token == "other-session":
        data["csrf_token"] = csrf_token(SignupActions(app.test_client(), smtp).client
                                        .get(path).text)
    users_before = user_emails(app)
    response = browser.client.post(path, data=data)
    assert response.status_code == 400
    assert re.search(r"<h1>[^<]+</h1>", response.text)
    assert CSRF_MESSAGE in page_text(response)
    assert smtp.messages == []
    assert user_emails(app) == users_before
    assert pending(app, "carol@example.com") is None
    after = pending(app)
    assert after is not None
    assert (after.code_digest, after.token_digest, after.password_hash) == (
        before.code_digest, before.token_digest, before.password_hash)
    account = browser.client.get("/account")
    if form == "logout":
        assert account.status_code == 200 and OTHER_EMAIL in account.text
    else:
        assert_redirect(account, "/login")
