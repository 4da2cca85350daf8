"""No account enumeration (SPEC section 8): signup, resend, verify, sign-in and the status
endpoint answer alike whether an address is new, pending, verified or unknown.
"""

from __future__ import annotations

import html
import re
from urllib.parse import urlsplit

import pytest

from app.security import mask_email

from .helpers import (EMAIL, PASSWORD, SignupActions, UNKNOWN_EMAIL, WRONG_PASSWORD,
                      assert_redirect, field_errors, pending, signed_up, user_emails, verified,
                      wrong)


def flashes(page) -> list[str]:
    """The flashed messages shown on a page."""
    return [html.unescape(m) for m in re.findall(r'<p class="flash[^"]*"[^>]*>(.*?)</p>',
                                                   page.text, re.S)]


def summary_errors(page) -> list[str]:
    """The messages in the form's error summary."""
    block = re.search(r'<div class="error-summary"[^>]*>(.*?)</div>', page.text, re.S)
    if block is None:
        return []
    return [html.unescape(m) for m in re.findall(r"<p>(.*?)</p>", block.group(1), re.S)]


@pytest.fixture
def hash_calls(monkeypatch):
    """Wrap Passwords.hash of an app with a counting spy: `hash_calls(app)` -> the call list."""

    def install(app):
        passwords = app.extensions["passwords"]
        real = passwords.hash
        calls = []

        def spy(password):
            calls.append(password)
            return real(password)

        monkeypatch.setattr(passwords, "hash", spy)
        return calls

    return install


def location_of(url: str) -> str:
    """The path of a Location header value."""
    return urlsplit(url).path


def anonymised(page: str, address: str) -> str:
    """A page with the typed address (in full and masked) and its CSRF token blanked out."""
    page = page.replace(address, "@").replace(mask_email(address), "@")
    return re.sub(r'(name="csrf_token"[^>]*value=")[^"]*', r"\1", page)


def test_signup_answers_alike_for_new_pending_and_verified(build, smtp, hash_calls):
    """Signup for a new, a pending and a verified address: same answer, one hash, one email each."""
    app = build()
    verified_address, pending_address, new_address = "vera@example.com", "pat@example.com", \
        "nina@example.com"
    verified(SignupActions(app.test_client(), smtp), verified_address)
    signed_up(SignupActions(app.test_client(), smtp), pending_address)
    calls = hash_calls(app)
    answers, subjects = {}, {}
    for address in (new_address, pending_address, verified_address):
        browser = SignupActions(app.test_client(), smtp)
        sent_before = len(smtp.to(address))
        del calls[:]
        response = browser.signup(address)
        smtp.wait_for(address, sent_before + 1)
        assert len(calls) == 1, (address, len(calls))
        assert len(smtp.to(address)) == sent_before + 1
        answers[address] = (response.status_code, response.headers["Location"],
                            response.get_data())
        subjects[address] = str(smtp.to(address)[-1]["Subject"])
        page = browser.client.get("/verify")
        answers[address] += (page.status_code, flashes(page))
    assert len(set(map(repr, answers.values()))) == 1, answers
    status, where = answers[new_address][:2]
    assert status in (302, 303) and location_of(where) == "/verify"
    assert subjects[new_address] == subjects[pending_address] != subjects[verified_address]
    assert user_emails(app) == [verified_address]
    assert pending(app, new_address) is not None and pending(app, pending_address) is not None


def test_resend_answers_alike_for_pending_verified_and_unknown(build, smtp):
    """Resend for a pending, a verified and an unknown address: same answer, one email each."""
    app = build()
    verified_address, pending_address = "vera@example.com", "pat@example.com"
    verified(SignupActions(app.test_client(), smtp), verified_address)
    signed_up(SignupActions(app.test_client(), smtp), pending_address)
    answers, kinds = {}, set()
    for address in (pending_address, verified_address, UNKNOWN_EMAIL):
        browser = SignupActions(app.test_client(), smtp)
        sent_before = len(smtp.to(address))
        response = browser.resend(address)
        smtp.wait_for(address, sent_before + 1)
        assert len(smtp.to(address)) == sent_before + 1, address
        kinds.add(str(smtp.to(address)[-1]["Subject"]))
        page = browser.client.get("/verify")
        answers[address] = (response.status_code, response.headers["Location"],
                            response.get_data(), page.status_code, flashes(page))
    assert len(set(map(repr, answers.values()))) == 1, answers
    status, where, _, _, flashed = answers[UNKNOWN_EMAIL]
    assert status in (302, 303) and location_of(where) == "/verify"
    assert any("If a registration is waiting for this address" in f for f in flashed)
    assert len(kinds) == 3  # a new code, "you already have an account", "no signup is waiting"
    assert pending(app, UNKNOWN_EMAIL) is None


def test_verify_with_unknown_address_answers_like_a_wrong_code(build, smtp):
    """A code for an address nobody signed up with gets the wrong-code status and message."""
    app = build()
    code, _ = signed_up(SignupActions(app.test_client(), smtp))
    other = SignupActions(app.test_client(), smtp)
    wrong_code = other.verify(EMAIL, wrong(code), password=PASSWORD)
    unknown = other.verify(UNKNOWN_EMAIL, wrong(code), password=PASSWORD)
    assert wrong_code.status_code == unknown.status_code == 400
    assert field_errors(wrong_code, "code") == field_errors(unknown, "code")
    assert summary_errors(wrong_code) == summary_errors(unknown)
    assert "not right" in " ".join(field_errors(unknown, "code"))
    assert anonymised(wrong_code.text, EMAIL) == anonymised(unknown.text, UNKNOWN_EMAIL)


def test_login_answers_alike_for_unknown_address_and_wrong_password(make_app, smtp, monkeypatch):
    """Sign-in with an unknown address or a wrong password: same page, one password check each."""
    app = make_app()
    verified(SignupActions(app.test_client(), smtp))
    passwords = app.extensions["passwords"]
    real_verify, checks = passwords.verify, []
    monkeypatch.setattr(passwords, "verify",
                        lambda stored, given: checks.append(stored) or real_verify(stored, given))
    browser = SignupActions(app.test_client(), smtp)
    wrong_password = browser.login(EMAIL, WRONG_PASSWORD)
    assert len(checks) == 1 and checks[0]
    unknown = browser.login(UNKNOWN_EMAIL, WRONG_PASSWORD)
    assert len(checks) == 2 and checks[1] is None  # checked against the dummy hash
    assert wrong_password.status_code == unknown.status_code == 400
    assert anonymised(wrong_password.text, EMAIL) == anonymised(unknown.text, UNKNOWN_EMAIL)
    assert_redirect(browser.client.get("/account"), "/login")


@pytest.mark.parametrize("backend_kind", ["memory", "redis"])
def test_wrong_codes_read_the_same_for_new_and_existing_accounts(make_app, smtp, request,
                                                                 backend_kind):
    """The signing-up browser's wrong-code answers (attempts left, the dead code, the lock)
    are the same for a new address and for one that already has an account."""
    from .conftest import SignupActions

    extra = {} if backend_kind == "memory" else {
        "REDIS_URL": request.getfixturevalue("redis_url")}
    app = make_app(CODE_MAX_ATTEMPTS=3, REGISTRATION_MAX_ATTEMPTS=5, **extra)
    owner = SignupActions(app.test_client(), smtp)
    owner.signup("owner@example.com")
    assert owner.verify("owner@example.com",
                        owner.code_for("owner@example.com")).status_code == 303

    def answers(address):
        probe = SignupActions(app.test_client(), smtp)
        assert probe.signup(address).status_code == 303
        seen = []
        for _ in range(7):
            response = probe.verify(address, "000000")
            text = response.get_data(as_text=True)
            words = re.findall(r'<li><a href="#code">([^<]*)</a></li>', text) or [""]
            seen.append((response.status_code, html.unescape(words[0]).strip()))
        return seen

    fresh, existing = answers("fresh@example.com"), answers("owner@example.com")
    assert fresh == existing
    assert "Attempts left: 2." in fresh[0][1]
    assert [status for status, _ in fresh] == [400, 400, 400, 400, 400, 429, 429]


def test_status_does_not_reveal_an_existing_account(app, smtp):
    """A taken address stays "pending" exactly like a new one, and /verify/done stays closed."""
    verified(SignupActions(app.test_client(), smtp))
    for address in (EMAIL, "new@example.com"):
        prober = SignupActions(app.test_client(), smtp)
        assert prober.signup(address, password="another long passphrase").status_code == 303
        status = prober.client.get("/verify/status")
        assert (status.status_code, status.get_json()) == (200, {"status": "pending"})
        assert prober.client.get("/verify/done").status_code == 302
