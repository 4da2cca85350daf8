"""The signup flow through the Flask test client, on the memory store, on a real redis-server and
on the real test Redis Cluster (3 masters + 3 replicas, tests/cluster.py).

Every test reads what a person would see (status, redirect, page text, the email received) and
what the operator would find afterwards (pending registrations, users rows).
"""

from __future__ import annotations

import html
import re
import sqlite3
import time
from urllib.parse import urlsplit

import pytest
from flask_sqlalchemy.session import Session as FlaskSession
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from app.extensions import db
from app.security import link_token_address_id, new_link_token

from .cluster import check_slots
from .conftest import BACKENDS, PASSWORD, SignupActions
from .helpers import code_from, csrf_token, free_port, link_from, path_of, text_of

EMAIL = "ada@example.com"
OTHER_PASSWORD = "a different long passphrase"


# -- fixtures ---------------------------------------------------------------------------------
@pytest.fixture(params=[*BACKENDS, pytest.param("cluster", id="cluster", marks=pytest.mark.redis)])
def backend(request):
    """The pending store (and limiter storage) under test: "memory", "redis" or "cluster"."""
    return request.param


@pytest.fixture
def build(backend, make_app, request, monkeypatch):
    """make_app on the parametrised backend; on the cluster, any call whose keys span slots
    fails (check_slots)."""
    if backend == "redis":
        url = request.getfixturevalue("redis_url")
        return lambda **overrides: make_app(REDIS_URL=url, **overrides)
    if backend == "cluster":
        cluster = request.getfixturevalue("redis_cluster")
        check_slots(monkeypatch)
        return lambda **overrides: make_app(REDIS_URL=cluster.url, **overrides)
    return make_app


@pytest.fixture
def flow_app(build):
    """The app with the default test settings on the parametrised backend."""
    return build()


@pytest.fixture
def browser(flow_app, smtp):
    """The browser that signs up."""
    return SignupActions(flow_app.test_client(), smtp)


@pytest.fixture
def other(flow_app, smtp):
    """A second browser (another device) on the same site."""
    return SignupActions(flow_app.test_client(), smtp)


# -- helpers ----------------------------------------------------------------------------------
def location(response) -> str:
    """The path a redirect points at."""
    return urlsplit(response.headers["Location"]).path


def assert_redirect(response, path: str) -> None:
    """A POST/redirect/GET answer to `path`."""
    assert response.status_code in (302, 303), (response.status_code, response.text[:500])
    assert location(response) == path


def pending(app, email=EMAIL):
    """The pending registration for `email`, or None."""
    with app.app_context():
        return app.extensions["pending"].get_registration(email)


def users(app) -> list[tuple[str, str]]:
    """(email, password_hash) of every users row."""
    with app.app_context():
        return [tuple(row) for row in db.session.execute(
            text("SELECT email, password_hash FROM users ORDER BY id")).all()]


def field_errors(page, field: str) -> list[str]:
    """The error messages shown next to one form field."""
    found = re.findall(rf'<p class="error" id="{field}-error">(.*?)</p>', page.text, re.S)
    return [html.unescape(message) for message in found]


def input_value(page, name: str):
    """The value attribute of the input named `name` (None when it has none)."""
    tag = re.search(rf'<input[^>]*\bname="{name}"[^>]*>', page.text)
    assert tag, f"no input named {name}"
    value = re.search(r'\bvalue="([^"]*)"', tag.group(0))
    return html.unescape(value.group(1)) if value else None


def page_text(page) -> str:
    """The page with HTML entities decoded."""
    return html.unescape(page.text)


def wrong(code: str) -> str:
    """A 6-digit code that is not `code`."""
    return f"{(int(code) + 1) % 10**6:06d}"


def signed_in_as(actions, email=EMAIL) -> bool:
    """True when the browser's /account page shows `email`."""
    page = actions.client.get("/account")
    return page.status_code == 200 and email in page.text


def complete(actions, how: str, email=EMAIL, count=1, password=None):
    """Finish with the code or the link of the `count`-th email."""
    if how == "code":
        return actions.verify(email, actions.code_for(email, count), password=password)
    return actions.confirm_link(actions.link_for(email, count), password=password)


def signed_up(actions, email=EMAIL, **kwargs):
    """Sign up and return (code, link) from the email received."""
    count = len(actions.smtp.to(email)) + 1
    assert_redirect(actions.signup(email, **kwargs), "/verify")
    message = actions.email_to(email, count)
    return code_from(message), link_from(message)


# -- the happy paths --------------------------------------------------------------------------
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


# -- the link ---------------------------------------------------------------------------------
def redis_snapshot(request, backend) -> dict | None:
    """Every key and value on the test redis-server (None on the memory backend)."""
    if backend != "redis":
        return None
    client = request.getfixturevalue("redis_server").client()
    snapshot = {}
    for key in client.scan_iter(match="*"):
        kind = client.type(key)
        if kind == b"hash":
            snapshot[key] = client.hgetall(key)
        elif kind == b"zset":
            snapshot[key] = client.zrange(key, 0, -1, withscores=True)
        else:
            snapshot[key] = client.get(key) if kind == b"string" else kind
    return snapshot


def test_link_get_changes_nothing(flow_app, browser, backend, request):
    """GET of the link (a mail scanner) shows a confirm button and changes nothing."""
    _, link = signed_up(browser)
    before = pending(flow_app)
    stored_before = redis_snapshot(request, backend)
    for _ in range(2):
        page = browser.open_link(link)
        assert page.status_code == 200
        assert "<form" in page.text and 'type="submit"' in page.text
        assert page.headers["Referrer-Policy"] == "no-referrer"
    assert pending(flow_app) == before
    assert redis_snapshot(request, backend) == stored_before
    assert users(flow_app) == []
    assert not signed_in_as(browser)


def test_code_still_works_after_link_get(flow_app, browser):
    """Opening the link with GET leaves the code usable."""
    code, link = signed_up(browser)
    assert browser.open_link(link).status_code == 200
    assert_redirect(browser.verify(EMAIL, code), "/account")
    assert [row[0] for row in users(flow_app)] == [EMAIL]


def test_link_post_verifies(flow_app, browser):
    """POST on the link page verifies and lands on /account; link pages send no referrer."""
    _, link = signed_up(browser)
    page = browser.open_link(link)
    assert page.headers["Referrer-Policy"] == "no-referrer"
    assert "a***@example.com" in page.text
    response = browser.confirm_link(link)
    assert_redirect(response, "/account")
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert signed_in_as(browser)
    assert pending(flow_app) is None
    assert [row[0] for row in users(flow_app)] == [EMAIL]


def test_used_link_answers_404_offering_resend(flow_app, browser):
    """A link used once answers 404, on GET and POST, with a page offering resend."""
    _, link = signed_up(browser)
    assert_redirect(browser.confirm_link(link), "/account")
    page = browser.open_link(link)
    assert page.status_code == 404
    assert 'href="/resend"' in page.text
    response = browser.post(path_of(link), {}, form_path="/resend")
    assert response.status_code == 404 and 'href="/resend"' in response.text
    assert len(users(flow_app)) == 1


def test_link_dead_after_verifying_by_code(flow_app, browser):
    """Once verified by code, the emailed link answers 404."""
    code, link = signed_up(browser)
    assert_redirect(browser.verify(EMAIL, code), "/account")
    page = browser.open_link(link)
    assert page.status_code == 404 and 'href="/resend"' in page.text


def test_unknown_link_answers_404(flow_app, browser):
    """A made-up token answers 404 with the resend offer."""
    page = browser.client.get("/verify/" + "A" * 43)
    assert page.status_code == 404 and 'href="/resend"' in page.text


def test_link_names_the_pending_record(flow_app, browser):
    """The emailed token is `<address id>-<secret>`: the id of the record it verifies (so the
    link page reads one record); the same id with another secret is a 404."""
    _, link = signed_up(browser)
    token = link.rsplit("/", 1)[1]
    with flow_app.app_context():
        address_id = flow_app.extensions["pending"].address_id(EMAIL)
    assert link_token_address_id(token) == address_id
    forged = new_link_token(address_id)
    assert browser.client.get("/verify/" + forged).status_code == 404
    assert browser.post("/verify/" + forged, {}, form_path="/resend").status_code == 404
    assert browser.open_link(link).status_code == 200


# -- resend -----------------------------------------------------------------------------------
@pytest.mark.parametrize("how", ["code", "link"])
def test_resend_kills_old_code_and_link(flow_app, browser, how):
    """After a resend the old code gives 400 and the old link 404; the new code or link works."""
    old_code, old_link = signed_up(browser)
    response = browser.resend(EMAIL)
    assert_redirect(response, "/verify")
    message = browser.email_to(EMAIL, 2)
    new_code, new_link = code_from(message), link_from(message)
    assert new_link != old_link
    if new_code != old_code:  # one chance in a million that the new code repeats
        response = browser.verify(EMAIL, old_code)
        assert response.status_code == 400
        assert "not right" in page_text(response)
    assert browser.open_link(old_link).status_code == 404
    assert browser.post(path_of(old_link), {}, form_path="/resend").status_code == 404
    assert users(flow_app) == []
    assert_redirect(complete(browser, how, count=2), "/account")
    assert signed_in_as(browser)


def test_resend_page_says_the_same_for_an_unknown_address(flow_app, browser, smtp):
    """Resend for an unknown address answers like any other and sends one email with no code."""
    assert_redirect(browser.resend("nobody@example.com"), "/verify")
    page = browser.client.get("/verify")
    assert "If a registration is waiting for this address" in page_text(page)
    [message] = smtp.to("nobody@example.com")
    assert message["Subject"] == "No signup is waiting for this address"
    assert not re.search(r"\b\d{6}\b", text_of(message)) and "/verify/" not in text_of(message)
    assert "/signup" in text_of(message)


# -- wrong codes and the caps -----------------------------------------------------------------
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


def test_unknown_address_answers_like_a_wrong_code(flow_app, browser, other):
    """A code for an address with no registration gets the same 400 as a wrong code."""
    response = other.verify("nobody@example.com", "123456", password=PASSWORD)
    assert response.status_code == 400
    assert "That code is not right (or has expired)." in page_text(response)


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


def test_link_not_affected_by_wrong_codes(build, smtp):
    """Wrong codes up to the per-code cap do not stop the link."""
    app = build(CODE_MAX_ATTEMPTS=2)
    browser = SignupActions(app.test_client(), smtp)
    code, link = signed_up(browser)
    for _ in range(2):
        browser.verify(EMAIL, wrong(code))
    assert_redirect(browser.confirm_link(link), "/account")


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


# -- another browser --------------------------------------------------------------------------
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


def test_link_in_other_browser_needs_the_password(flow_app, browser, other):
    """Link in another browser: refused without or with a wrong password, works with the right."""
    _, link = signed_up(browser)
    page = other.open_link(link)
    assert page.status_code == 200 and 'name="password"' in page.text
    assert 'name="password"' not in browser.open_link(link).text

    response = other.confirm_link(link)
    assert response.status_code == 400 and field_errors(response, "password")
    response = other.confirm_link(link, password=OTHER_PASSWORD)
    assert response.status_code == 400 and field_errors(response, "password")
    assert users(flow_app) == [] and pending(flow_app) is not None

    assert_redirect(other.confirm_link(link, password=PASSWORD), "/account")
    assert signed_in_as(other)
    assert [row[0] for row in users(flow_app)] == [EMAIL]


# -- existing and pending addresses -----------------------------------------------------------
def test_signup_with_verified_address(flow_app, browser, other, smtp):
    """A verified address: same 303, the owner gets "already have an account", no second user."""
    code, _ = signed_up(browser)
    assert_redirect(browser.verify(EMAIL, code), "/account")
    before = users(flow_app)

    fresh = other.signup("someone-new@example.com")
    response = other.signup("ADA@example.com", password=OTHER_PASSWORD)
    assert response.status_code == fresh.status_code
    assert location(response) == location(fresh) == "/verify"

    message = other.email_to(EMAIL, 2)
    assert "already have an account" in message["Subject"]
    body = text_of(message)
    assert not re.search(r"(?<!\d)\d{6}(?!\d)", body)
    assert "/verify/" not in body and "/login" in body
    assert users(flow_app) == before and len(before) == 1
    assert pending(flow_app) is None

    assert other.login(EMAIL, OTHER_PASSWORD).status_code == 400
    assert_redirect(other.login(EMAIL, PASSWORD), "/account")


@pytest.mark.parametrize("how", ["code", "link"])
def test_resignup_while_pending_replaces_registration(flow_app, browser, how):
    """Re-signup while pending: old code and link dead; the new ones and the new password work."""
    old_code, old_link = signed_up(browser)
    new_code, new_link = signed_up(browser, password=OTHER_PASSWORD)
    if new_code != old_code:
        assert browser.verify(EMAIL, old_code).status_code == 400
    assert browser.open_link(old_link).status_code == 404
    assert users(flow_app) == []
    assert_redirect(complete(browser, how, count=2), "/account")
    assert len(users(flow_app)) == 1
    client2 = SignupActions(flow_app.test_client(), browser.smtp)
    assert client2.login(EMAIL, PASSWORD).status_code == 400
    assert_redirect(client2.login(EMAIL, OTHER_PASSWORD), "/account")


# -- signup validation ------------------------------------------------------------------------
INVALID_SIGNUPS = {
    "bad-email": ({"email": "not-an-email"}, "email", "valid email address"),
    "short-password": ({"password": "short1"}, "password", "at least 8 characters"),
    "common-password": ({"password": "password123"}, "password", "too common"),
    "password-is-email": ({"email": "ada.lovelace@example.com",
                           "password": "ada.lovelace@example.com"}, "password",
                          "email address as your password"),
    "password-is-local-part": ({"email": "ada.lovelace@example.com",
                                "password": "Ada.Lovelace"}, "password",
                               "email address as your password"),
    "long-password": ({"password": "x" * 60 + " " + "y" * 68}, "password", "at most 128"),
    "non-ascii-local-part": ({"email": "adä@example.com"}, "email", "valid email address"),
    "confirm-mismatch": ({"confirm": PASSWORD + "!"}, "confirm", "not the same"),
    "long-name": ({"name": "A" * 101}, "name", "at most 100"),
    "name-bell": ({"name": "Ada\x07"}, "name", "characters we can't store"),
    "name-rtl-override": ({"name": "Ada\u202eevil"}, "name", "characters we can't store"),
    "name-line-separator": ({"name": "Ada\u2028Lovelace"}, "name", "characters we can't store"),
}


@pytest.mark.parametrize("case", list(INVALID_SIGNUPS))
def test_invalid_signup_is_refused_and_stores_nothing(flow_app, browser, smtp, case):
    """Bad signup fields: 400, error next to the field, email kept, nothing stored or sent."""
    changes, field, message = INVALID_SIGNUPS[case]
    data = {"email": EMAIL, "password": PASSWORD, "confirm": None, "name": "", **changes}
    if data["confirm"] is None:
        data["confirm"] = data["password"]
    response = browser.post("/signup", data)
    assert response.status_code == 400
    errors = field_errors(response, field)
    assert any(message in e for e in errors), errors
    assert input_value(response, "email") == data["email"]
    assert not input_value(response, "password")
    assert not input_value(response, "confirm")
    with flow_app.app_context():
        assert flow_app.extensions["pending"].get_stats()["total"] == 0
    if "@" in data["email"]:
        assert pending(flow_app, data["email"].lower()) is None
    assert smtp.messages == []


def test_internationalised_domain_is_idna_encoded(flow_app, browser, smtp):
    """An address with a Unicode domain is stored and emailed IDNA-encoded, lower-cased."""
    idna = "ada@xn--bcher-kva.example"
    assert_redirect(browser.signup("Ada@Bücher.example"), "/verify")
    code = code_from(smtp.wait_for(idna))
    assert pending(flow_app, idna) is not None
    assert_redirect(browser.verify(idna, code), "/account")
    assert [row[0] for row in users(flow_app)] == [idna]


def test_verify_accepts_address_in_other_case(flow_app, browser):
    """The address typed in another case on /verify is the same address (and the same browser)."""
    code, _ = signed_up(browser)
    assert_redirect(browser.verify("ADA@Example.COM", code), "/account")


@pytest.mark.parametrize("token", [None, "not-a-real-token", "other-session"])
def test_signup_without_valid_csrf_token_stores_nothing(flow_app, browser, other, smtp, token):
    """A missing, forged or foreign CSRF token: 400 and nothing stored or sent."""
    data = {"email": EMAIL, "password": PASSWORD, "confirm": PASSWORD}
    browser.client.get("/signup")
    if token == "other-session":
        data["csrf_token"] = csrf_token(other.client.get("/signup").text)
    elif token:
        data["csrf_token"] = token
    response = browser.client.post("/signup", data=data)
    assert response.status_code == 400
    assert pending(flow_app) is None
    assert smtp.messages == []


def test_verify_without_csrf_token_verifies_nothing(flow_app, browser):
    """A code POST without a CSRF token: 400 and the registration stays pending."""
    code, _ = signed_up(browser)
    response = browser.client.post("/verify", data={"email": EMAIL, "code": code})
    assert response.status_code == 400
    assert users(flow_app) == [] and pending(flow_app) is not None


# -- sign in and out --------------------------------------------------------------------------
def test_login_with_wrong_password(flow_app, browser, other):
    """Wrong password (or unknown address) at /login: 400, not signed in."""
    code, _ = signed_up(browser)
    assert_redirect(browser.verify(EMAIL, code), "/account")
    response = other.login(EMAIL, OTHER_PASSWORD)
    assert response.status_code == 400
    assert "do not match an account" in page_text(response)
    assert other.login("nobody@example.com", PASSWORD).status_code == 400
    assert_redirect(other.client.get("/account"), "/login")


def test_logout_get_shows_button_post_signs_out(flow_app, browser):
    """GET /logout shows a button and keeps the session; POST signs out; /account then redirects."""
    code, _ = signed_up(browser)
    assert_redirect(browser.verify(EMAIL, code), "/account")
    page = browser.client.get("/logout")
    assert page.status_code == 200
    assert re.search(r'<form method="post" action="/logout">', page.text)
    assert "<button" in page.text
    assert signed_in_as(browser)
    response = browser.post("/logout", {})
    assert response.status_code in (302, 303)
    assert_redirect(browser.client.get("/account"), "/login")


def test_logout_post_without_csrf_keeps_session(flow_app, browser):
    """POST /logout without a CSRF token: 400 and still signed in."""
    code, _ = signed_up(browser)
    assert_redirect(browser.verify(EMAIL, code), "/account")
    assert browser.client.post("/logout", data={}).status_code == 400
    assert signed_in_as(browser)


def test_login_normalises_the_address(flow_app, browser, other):
    """Sign-in with the address in another case works."""
    code, _ = signed_up(browser)
    assert_redirect(browser.verify(EMAIL, code), "/account")
    assert_redirect(other.login("ADA@EXAMPLE.com"), "/account")
    assert signed_in_as(other)


# -- the email allowance ----------------------------------------------------------------------
def test_resend_inside_cooldown_answers_429(build, smtp):
    """A resend inside RESEND_COOLDOWN_SECONDS: 429 with when, the form kept, nothing sent;
    other addresses pass."""
    app = build(RESEND_COOLDOWN_SECONDS=60)
    browser = SignupActions(app.test_client(), smtp)
    signed_up(browser)
    response = browser.resend(EMAIL)
    assert response.status_code == 429
    retry_after = int(response.headers["Retry-After"])
    assert 0 < retry_after <= 60
    assert f"new code in {retry_after} seconds" in page_text(response)
    assert input_value(response, "email") == EMAIL
    assert field_errors(response, "email")
    assert len(smtp.to(EMAIL)) == 1
    # Another address has its own allowance.
    assert_redirect(browser.resend("grace@example.com"), "/verify")
    assert len(smtp.to("grace@example.com")) == 1
    # Counted per requested address, registration or not: the answer does not tell.
    assert_redirect(browser.resend("nobody@example.com"), "/verify")
    assert browser.resend("nobody@example.com").status_code == 429


# -- failures of the dependencies -------------------------------------------------------------
def test_smtp_down_at_signup_keeps_registration(build, smtp):
    """SMTP unreachable: still 303, the registration is kept and /verify says the email failed."""
    app = build(MAIL_PORT=free_port())
    browser = SignupActions(app.test_client(), smtp)
    assert_redirect(browser.signup(EMAIL), "/verify")
    assert pending(app) is not None
    page = browser.client.get("/verify")
    assert page.status_code == 200
    assert "could not send the email" in page_text(page)
    # The offer to resend is a one-press button posting to /resend for the same address.
    assert re.search(r'<form method="post" action="/resend"', page.text)


def test_verification_leaves_one_argon2_user_and_no_pending(flow_app, browser, backend, request):
    """After verification: one users row with an argon2id hash, and the pending record is gone."""
    code, link = signed_up(browser, name="Ada")
    assert_redirect(browser.verify(EMAIL, code), "/account")
    rows = users(flow_app)
    assert len(rows) == 1 and rows[0][0] == EMAIL
    assert rows[0][1].startswith("$argon2id$")
    assert PASSWORD not in rows[0][1]
    assert pending(flow_app) is None
    with flow_app.app_context():
        assert flow_app.extensions["pending"].get_stats()["total"] == 0
    if backend == "redis":
        client = request.getfixturevalue("redis_server").client()
        assert list(client.scan_iter(match="signup:pending:*")) == []


@pytest.mark.redis
def test_redis_holds_no_secret_in_clear_and_ttl_is_a_day(make_app, redis_url, redis_server, smtp):
    """Redis keeps no plaintext code, link token or password, no address in key names; TTL 24 h."""
    app = make_app(REDIS_URL=redis_url)
    browser = SignupActions(app.test_client(), smtp)
    code, link = signed_up(browser)
    token = link.rsplit("/", 1)[1]
    client = redis_server.client()
    keys = list(client.scan_iter(match="*"))
    pending_keys = [k for k in keys if k.startswith(b"signup:pending:")]
    assert len(pending_keys) == 1
    assert 86400 - 5 <= client.ttl(pending_keys[0]) <= 86400
    assert all(k.startswith(b"signup:") for k in keys)
    assert not any(b"example.com" in k for k in keys)

    stored = []
    for key in keys:
        kind = client.type(key)
        if kind == b"string":
            stored.append(client.get(key))
        elif kind == b"hash":
            stored += [b for pair in client.hgetall(key).items() for b in pair]
        elif kind == b"zset":
            stored += client.zrange(key, 0, -1)
        stored.append(key)
    blob = b"\n".join(stored).decode("utf-8", "replace")
    assert token not in blob
    assert PASSWORD not in blob
    assert not re.search(rf"(?<![0-9A-Za-z.]){code}(?![0-9A-Za-z.])", blob)


def test_address_verified_concurrently_gives_one_row(flow_app, browser):
    """A users row appearing before promotion (a concurrent verify): "already verified", one row."""
    code, _ = signed_up(browser)
    with flow_app.app_context():
        db.session.execute(text(
            "INSERT INTO users (email, password_hash, name, created_at, verified_at) "
            "VALUES (:e, 'x', '', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"), {"e": EMAIL})
        db.session.commit()
    response = browser.verify(EMAIL, code)
    assert response.status_code in (400, 409)
    assert "already verified" in page_text(response)
    assert users(flow_app) == [(EMAIL, "x")]
    assert pending(flow_app) is None


def test_database_failure_at_promotion_keeps_registration(flow_app, browser, monkeypatch):
    """The commit fails once: 503 with a clear message, registration kept, the same code works."""
    code, _ = signed_up(browser)
    original = FlaskSession.commit
    failures = []

    def commit_failing_once(session):
        if not failures:
            failures.append(1)
            raise OperationalError("COMMIT", {}, sqlite3.OperationalError("database is locked"))
        return original(session)

    monkeypatch.setattr(FlaskSession, "commit", commit_failing_once)
    response = browser.verify(EMAIL, code)
    assert failures == [1]
    assert response.status_code == 503
    assert "temporarily unavailable" in page_text(response)
    assert response.headers.get("Retry-After")
    assert pending(flow_app) is not None
    assert users(flow_app) == []
    assert not signed_in_as(browser)

    assert_redirect(browser.verify(EMAIL, code), "/account")
    assert len(users(flow_app)) == 1
    assert pending(flow_app) is None
