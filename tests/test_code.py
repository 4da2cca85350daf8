"""Verifying with the emailed 6-digit code on /verify: typing, wrong codes and their caps,
expiry, another browser, and a later signup of the same address by someone else.
"""

from __future__ import annotations

import html
import time

import pytest

from .helpers import (EMAIL, OTHER_PASSWORD, PASSWORD, SignupActions, assert_redirect, code_from,
                      field_errors, input_value, page_text, pending, signed_in_as, signed_up,
                      users, wrong)
from .helpers import backend_with_cluster  # noqa: F401 (a fixture: memory, redis and cluster)


def test_code_from_email_verifies_and_shows_account(flow_app, browser):
    """Signup, email received, its code on /verify: 303 to /account, which shows the address."""
    response = browser.signup("Ada@Example.com", name="Ada")
    assert_redirect(response, "/verify")
    message = browser.email_to(EMAIL)
    code = code_from(message)
    assert_redirect(browser.verify(EMAIL, code), "/account")
    page = browser.client.get("/account")
    assert page.status_code == 200
    assert EMAIL in page.text and "Ada" in page.text


def test_verify_page_says_where_the_code_went(flow_app, browser):
    """After signup /verify shows the masked address and pre-fills the email field."""
    signed_up(browser)
    page = browser.client.get("/verify")
    assert page.status_code == 200
    assert "a***@example.com" in page.text
    assert input_value(page, "email") == EMAIL


@pytest.mark.parametrize("shape", ["{a} {b}", "{a}-{b}", "  {a}{b}  ", "{a} - {b}"])
def test_code_with_spaces_and_dashes_is_accepted(flow_app, browser, shape):
    """A code typed as "123 456" or "123-456" verifies."""
    code, _ = signed_up(browser)
    typed = shape.format(a=code[:3], b=code[3:])
    assert_redirect(browser.verify(EMAIL, typed), "/account")
    assert len(users(flow_app)) == 1


@pytest.mark.parametrize("offset", [0xFEE0, 0x0660 - 0x30], ids=["fullwidth", "arabic-indic"])
def test_unicode_digits_are_rejected(flow_app, browser, offset):
    """Full-width or other non-ASCII digits: 400, nothing verified; the ASCII code still works."""
    code, _ = signed_up(browser)
    typed = "".join(chr(ord(d) + offset) for d in code)
    response = browser.verify(EMAIL, typed)
    assert response.status_code == 400
    assert field_errors(response, "code")
    assert users(flow_app) == []
    assert pending(flow_app) is not None
    assert not signed_in_as(browser)
    assert_redirect(browser.verify(EMAIL, code), "/account")


def test_verify_accepts_address_in_other_case(flow_app, browser):
    """The address typed in another case on /verify is the same address (and the same browser)."""
    code, _ = signed_up(browser)
    assert_redirect(browser.verify("ADA@Example.COM", code), "/account")


def test_wrong_code_shows_attempts_left_to_signing_browser(flow_app, browser):
    """A wrong code: 400, "not right", and the signing-up browser is told the attempts left."""
    code, _ = signed_up(browser)
    response = browser.verify(EMAIL, wrong(code))
    assert response.status_code == 400
    text_ = page_text(response)
    assert "That code is not right (or has expired)." in text_
    assert "Attempts left: 4" in text_
    assert users(flow_app) == []


def test_wrong_code_hides_attempts_left_from_other_browser(flow_app, browser, other):
    """Another browser (even with the password) gets "not right" without the attempts left."""
    code, _ = signed_up(browser)
    response = other.verify(EMAIL, wrong(code), password=PASSWORD)
    assert response.status_code == 400
    text_ = page_text(response)
    assert "That code is not right (or has expired)." in text_
    assert "Attempts left" not in text_
    assert users(flow_app) == []


def test_per_code_cap_kills_the_code(build, smtp):
    """CODE_MAX_ATTEMPTS wrong codes kill the right code; a resend gives a new one that works."""
    app = build(CODE_MAX_ATTEMPTS=2)
    browser = SignupActions(app.test_client(), smtp)
    code, link = signed_up(browser)
    for _ in range(2):
        assert browser.verify(EMAIL, wrong(code)).status_code == 400
    response = browser.verify(EMAIL, code)
    assert response.status_code == 400
    assert "tried too many times" in page_text(response)
    assert users(app) == [] and pending(app) is not None
    assert not signed_in_as(browser)
    assert_redirect(browser.resend(EMAIL), "/verify")
    assert_redirect(browser.verify(EMAIL, browser.code_for(EMAIL, 2)), "/account")


def test_per_address_cap_survives_resend_and_new_signup(build, smtp):
    """Past REGISTRATION_MAX_ATTEMPTS: 429 with Retry-After, even after a resend or re-signup."""
    app = build(CODE_MAX_ATTEMPTS=2, REGISTRATION_MAX_ATTEMPTS=3)
    browser = SignupActions(app.test_client(), smtp)
    code, _ = signed_up(browser)
    assert browser.verify(EMAIL, wrong(code)).status_code == 400
    assert browser.verify(EMAIL, wrong(code)).status_code == 400
    assert_redirect(browser.resend(EMAIL), "/verify")
    code = browser.code_for(EMAIL, 2)
    assert browser.verify(EMAIL, wrong(code)).status_code == 400  # the third wrong one

    response = browser.verify(EMAIL, code)
    assert response.status_code == 429
    retry = int(response.headers["Retry-After"])
    assert 0 < retry <= 86400
    assert "Too many wrong codes" in page_text(response)

    assert_redirect(browser.resend(EMAIL), "/verify")
    response = browser.verify(EMAIL, browser.code_for(EMAIL, 3))
    assert response.status_code == 429 and int(response.headers["Retry-After"]) > 0

    signed_up(browser)
    response = browser.verify(EMAIL, browser.code_for(EMAIL, 4))
    assert response.status_code == 429 and int(response.headers["Retry-After"]) > 0
    assert users(app) == []
    assert pending(app) is not None


def test_expired_code_refused_but_link_and_resend_work(build, smtp):
    """Past CODE_TTL_SECONDS the code gets the wrong-code answer; the link still verifies."""
    app = build(CODE_TTL_SECONDS=1)
    browser = SignupActions(app.test_client(), smtp)
    code, link = signed_up(browser)
    time.sleep(1.2)
    response = browser.verify(EMAIL, code)
    assert response.status_code == 400
    assert "That code is not right (or has expired)." in page_text(response)
    assert 'href="/resend"' in response.text
    assert users(app) == []
    assert_redirect(browser.confirm_link(link), "/account")


def test_code_in_other_browser_needs_the_password(flow_app, browser, other):
    """Code in another browser: refused without or with a wrong password, works with the right.

    With a wrong password the right code reads as a wrong one: nothing confirms the code.
    """
    code, _ = signed_up(browser)
    page = other.client.get("/verify")
    assert 'name="password"' in page.text

    response = other.verify(EMAIL, code)
    assert response.status_code == 400
    assert field_errors(response, "password")
    response = other.verify(EMAIL, code, password=OTHER_PASSWORD)
    assert response.status_code == 400
    assert [m.endswith("That code is not right (or has expired).")
            for m in field_errors(response, "code")] == [True]
    assert not field_errors(response, "password")
    assert users(flow_app) == [] and pending(flow_app) is not None

    assert_redirect(other.verify(EMAIL, code, password=PASSWORD), "/account")
    assert signed_in_as(other)
    assert [row[0] for row in users(flow_app)] == [EMAIL]


def test_a_later_signup_by_someone_else_takes_away_the_first_browsers_shortcut(make_app, smtp):
    """Victim signs up; an attacker signs up the same address with their own password: the
    victim's browser can no longer complete with the code alone (no account with the
    attacker's password), and finishing needs the password of the signup now pending."""
    from .conftest import SignupActions

    app = make_app()
    victim = SignupActions(app.test_client(), smtp)
    attacker = SignupActions(app.test_client(), smtp)
    assert victim.signup("target@example.com", password="victim passphrase one").status_code == 303
    assert attacker.signup("target@example.com",
                           password="attacker passphrase two").status_code == 303
    code = victim.code_for("target@example.com", count=2)
    refused = victim.verify("target@example.com", code)
    assert refused.status_code == 400
    # Read as a wrong code is (nothing confirms the code), counted like one.
    assert "That code is not right (or has expired). Attempts left: 4." in html.unescape(
        refused.get_data(as_text=True))
    assert victim.client.get("/account").status_code == 302  # not signed in
    link = victim.link_for("target@example.com", count=2)
    page = victim.open_link(link)
    assert 'name="password"' in page.get_data(as_text=True)
    # With the password of the pending signup (which the victim does not know) it completes.
    assert victim.verify("target@example.com", code,
                         password="victim passphrase one").status_code == 400
    # No account exists: the attacker's sign-in with that password is sent on to /verify.
    login = attacker.login("target@example.com", "attacker passphrase two")
    assert login.status_code == 303 and login.headers["Location"].endswith("/verify")
    assert attacker.client.get("/account").status_code == 302
