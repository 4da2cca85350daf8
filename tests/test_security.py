"""Security features (SPEC sections 3 and 8) through the Flask test client.

Rate limits per client IP (memory and a real redis-server), the per-address email allowance,
CSRF, the production start-up checks, the /health token, security headers and cookie flags,
no account enumeration, no secrets in logs, and SECRET_KEY rotation. Each test asserts what a
person (or an attacker) would see, and what the operator would find stored or logged.
"""

from __future__ import annotations

import datetime
import html
import logging
import re
import runpy
import sqlite3
from types import SimpleNamespace
from urllib.parse import urlsplit

import pytest
from flask import request
from flask_sqlalchemy.session import Session as FlaskSession
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from app import accounts
from app.config import ConfigError
from app.extensions import db
from app.redaction import REDACTED, redact
from app.security import link_token_address_id, mask_email, new_link_token

from .conftest import PASSWORD, SignupActions
from .helpers import ROOT, code_from, csrf_token, free_port, link_from, path_of, text_of

EMAIL = "ada@example.com"
OTHER_EMAIL = "bob@example.com"
UNKNOWN_EMAIL = "nobody@example.com"
OTHER_PASSWORD = "a different long passphrase"
WRONG_PASSWORD = "not the password at all"
PROD_SECRET = "Vq3x9Jr0bL2wN8sT5yK7mP4cH6dF1gZa-prod-secret"
BASE_URL = "https://signup.example.org"
TOO_MANY = "Too many attempts"
CSRF_MESSAGE = "not sent from this site"


# -- fixtures ---------------------------------------------------------------------------------
# -- helpers ----------------------------------------------------------------------------------
def location(response) -> str:
    """The path a redirect points at."""
    return urlsplit(response.headers["Location"]).path


def assert_redirect(response, path: str) -> None:
    """A POST/redirect/GET answer to `path`."""
    assert response.status_code in (302, 303), (response.status_code, response.text[:500])
    assert location(response) == path


def page_text(page) -> str:
    """The page with HTML entities decoded."""
    return html.unescape(page.text)


def input_value(page, name: str):
    """The value attribute of the input named `name` (None when it has none)."""
    tag = re.search(rf'<input[^>]*\bname="{name}"[^>]*>', page.text)
    assert tag, f"no input named {name}"
    value = re.search(r'\bvalue="([^"]*)"', tag.group(0))
    return html.unescape(value.group(1)) if value else None


def flashes(page) -> list[str]:
    """The flashed messages shown on a page."""
    return [html.unescape(m) for m in re.findall(r'<p class="flash[^"]*"[^>]*>(.*?)</p>',
                                                   page.text, re.S)]


def field_errors(page, field: str) -> list[str]:
    """The error messages shown next to one form field."""
    found = re.findall(rf'<p class="error" id="{field}-error">(.*?)</p>', page.text, re.S)
    return [html.unescape(message) for message in found]


def summary_errors(page) -> list[str]:
    """The messages in the form's error summary."""
    block = re.search(r'<div class="error-summary"[^>]*>(.*?)</div>', page.text, re.S)
    if block is None:
        return []
    return [html.unescape(m) for m in re.findall(r"<p>(.*?)</p>", block.group(1), re.S)]


def pending(app, email=EMAIL):
    """The pending registration for `email`, or None."""
    with app.app_context():
        return app.extensions["pending"].get_registration(email)


def users(app) -> list[str]:
    """The address of every users row."""
    with app.app_context():
        return [row[0] for row in db.session.execute(text("SELECT email FROM users ORDER BY id"))]


def wrong(code: str) -> str:
    """A 6-digit code that is not `code`."""
    return f"{(int(code) + 1) % 10**6:06d}"


def signed_up(actions, email=EMAIL, password=PASSWORD):
    """Sign up and return (code, link) from the email received."""
    count = len(actions.smtp.to(email)) + 1
    assert_redirect(actions.signup(email, password=password), "/verify")
    message = actions.email_to(email, count)
    return code_from(message), link_from(message)


def verified(actions, email=EMAIL, password=PASSWORD):
    """Sign up and verify by code in this browser; the user exists afterwards."""
    code, _ = signed_up(actions, email, password)
    assert_redirect(actions.verify(email, code), "/account")


def session_cookie(response):
    """The Set-Cookie header of the session cookie (None when the response sets none)."""
    for header in response.headers.getlist("Set-Cookie"):
        if header.startswith("session="):
            return header
    return None


def cookie_flags(header: str) -> set[str]:
    """The attributes of a Set-Cookie header, lower-cased (`samesite=lax`, `httponly`, ...)."""
    return {part.strip().lower() for part in header.split(";")[1:]}


def post_form(client, path, data, form_path=None, **request_kwargs):
    """GET the form page for its CSRF token, then POST, both with the same request options."""
    page = client.get(form_path or path, **request_kwargs)
    return client.post(path, data={**data, "csrf_token": csrf_token(page.text)}, **request_kwargs)


# -- 1. rate limits ---------------------------------------------------------------------------
LIMIT = 2
RATE_LIMITED = {
    "RATELIMIT_ENABLED": True,
    "RATELIMIT_SIGNUP": f"{LIMIT}/minute",
    "RATELIMIT_VERIFY": f"{LIMIT}/minute",
    "RATELIMIT_RESEND": f"{LIMIT}/minute",
    "RATELIMIT_LOGIN": f"{LIMIT}/minute",
}
LIMITED_FORMS = ["signup", "verify", "link", "resend", "login", "forgot", "reset",
                 "reset_link"]


def limited_form(form, app, smtp):
    """(path, data, form_path) of a POST to `form`, with any registration it needs made first.

    For the link a registration is made by another browser, so the POSTs (with a wrong
    password) leave it valid and each one reaches the limiter.
    """
    if form == "signup":
        return "/signup", {"email": EMAIL, "password": PASSWORD, "confirm": PASSWORD}, None
    if form == "verify":
        return "/verify", {"email": EMAIL, "code": "000000", "password": WRONG_PASSWORD}, None
    if form == "link":
        signer = SignupActions(app.test_client(), smtp)
        _, link = signed_up(signer)
        return path_of(link), {"password": WRONG_PASSWORD}, None
    if form == "resend":
        return "/resend", {"email": EMAIL}, None
    if form == "forgot":
        return "/password/forgot", {"email": EMAIL}, None
    if form == "reset":
        return "/password/reset", {"email": EMAIL, "code": "000000", "password": PASSWORD,
                                   "confirm": PASSWORD}, None
    if form == "reset_link":
        # A reset of a verified account; the POSTs (a too short password) leave it valid. The
        # owner verifies from another IP: the verify allowance is the test client's to spend.
        owner = SignupActions(app.test_client(), smtp)
        owner.client.environ_base["REMOTE_ADDR"] = "192.0.2.7"
        code, _ = signed_up(owner)
        owner.verify(EMAIL, code)
        owner.post("/password/forgot", {"email": EMAIL})
        link = re.search(r"https?://\S+(/password/reset/\S+)", text_of(smtp.wait_for(EMAIL, 2)))
        return link.group(1), {"password": "short", "confirm": "short"}, None
    return "/login", {"email": EMAIL, "password": WRONG_PASSWORD}, None


@pytest.mark.parametrize("form", LIMITED_FORMS)
def test_rate_limit_on_form_posts(build, backend, smtp, form, request):
    """The first N POSTs pass; the next is 429 with Retry-After, the form re-rendered in words."""
    app = build(**RATE_LIMITED)
    path, data, form_path = limited_form(form, app, smtp)
    client = app.test_client()
    for _ in range(LIMIT * 5):  # GETs never count
        assert client.get(form_path or path).status_code == 200
    for attempt in range(LIMIT):
        response = post_form(client, path, data, form_path)
        assert response.status_code != 429, f"POST #{attempt + 1} was limited"
    limited = post_form(client, path, data, form_path)
    assert limited.status_code == 429
    retry_after = limited.headers.get("Retry-After", "")
    assert retry_after.isdigit() and int(retry_after) > 0
    assert re.search(r"<h1>[^<]+</h1>", limited.text)
    assert TOO_MANY in page_text(limited)
    assert "<form" in limited.text and 'name="csrf_token"' in limited.text
    assert PASSWORD not in page_text(limited) and WRONG_PASSWORD not in page_text(limited)
    if "email" in data:
        assert input_value(limited, "email") == EMAIL
    if form in ("link", "reset_link"):
        assert limited.headers["Referrer-Policy"] == "no-referrer"
    # Still limited on the next POST; GETs are still served.
    assert post_form(client, path, data, form_path).status_code == 429
    for _ in range(LIMIT * 5):
        assert client.get(form_path or path).status_code == 200
    if backend == "redis":
        keys = list(request.getfixturevalue("redis_server").client().scan_iter(match="*"))
        limiter_keys = [k for k in keys if k.startswith(b"signup:ratelimit")]
        assert limiter_keys, keys
        assert all(k.startswith(b"signup:") for k in keys), keys


def test_rate_limits_are_per_endpoint(make_app, smtp):
    """Exhausting the signup limit does not limit sign-in from the same IP."""
    app = make_app(**RATE_LIMITED)
    client = app.test_client()
    data = {"email": EMAIL, "password": PASSWORD, "confirm": PASSWORD}
    for _ in range(LIMIT):
        assert post_form(client, "/signup", data).status_code != 429
    assert post_form(client, "/signup", data).status_code == 429
    # Not limited: the pending signup's own password takes sign-in on to /verify.
    login = post_form(client, "/login", {"email": EMAIL, "password": PASSWORD})
    assert login.status_code == 303 and urlsplit(login.headers["Location"]).path == "/verify"


def login_from(app, forwarded_for, remote="10.0.0.1"):
    """A POST /login from a client behind the proxy at `remote` claiming `forwarded_for`."""
    client = app.test_client()
    options = {"environ_base": {"REMOTE_ADDR": remote},
               "headers": {"X-Forwarded-For": forwarded_for}}
    return lambda: post_form(client, "/login", {"email": EMAIL, "password": PASSWORD},
                             **options).status_code


def test_forwarded_for_ignored_without_trusted_proxies(make_app):
    """TRUSTED_PROXIES=0: two X-Forwarded-For values from one address share one limit."""
    app = make_app(TRUSTED_PROXIES=0, **RATE_LIMITED)
    first, second = login_from(app, "203.0.113.7"), login_from(app, "198.51.100.9")
    assert [first() for _ in range(LIMIT)] == [400] * LIMIT
    assert second() == 429


def test_forwarded_for_used_with_one_trusted_proxy(make_app):
    """TRUSTED_PROXIES=1: two X-Forwarded-For values behind one proxy get separate limits."""
    app = make_app(TRUSTED_PROXIES=1, **RATE_LIMITED)
    first, second = login_from(app, "203.0.113.7"), login_from(app, "198.51.100.9")
    assert [first() for _ in range(LIMIT)] == [400] * LIMIT
    assert first() == 429
    assert [second() for _ in range(LIMIT)] == [400] * LIMIT
    assert second() == 429


# -- 2. the email allowance -------------------------------------------------------------------
def allowance_run(browser, address):
    """Two more resends for an address that has had one email: (status, Retry-After, errors)."""
    answers = []
    for _ in range(2):
        response = browser.resend(address)
        answers.append((response.status_code, response.headers.get("Retry-After"),
                        field_errors(response, "email")))
    return answers


def test_hourly_cap_counts_unknown_and_pending_alike(build, smtp):
    """RESEND_MAX_PER_HOUR=2: the third email is refused with 429, alike for unknown and pending."""
    app = build(RESEND_COOLDOWN_SECONDS=0, RESEND_MAX_PER_HOUR=2)
    browser = SignupActions(app.test_client(), smtp)
    signed_up(browser, EMAIL)  # email 1 to the pending address
    assert_redirect(browser.resend(UNKNOWN_EMAIL), "/verify")  # email 1 to the unknown one
    assert pending(app, UNKNOWN_EMAIL) is None
    for_pending = allowance_run(browser, EMAIL)
    for_unknown = allowance_run(browser, UNKNOWN_EMAIL)
    assert [a[0] for a in for_pending] == [a[0] for a in for_unknown] == [303, 429]
    assert for_pending[0][1:] == for_unknown[0][1:]  # the allowed answer carries no hint either
    (retry_p, errors_p), (retry_u, errors_u) = for_pending[1][1:], for_unknown[1][1:]
    assert retry_p and retry_u and 60 < int(retry_p) <= 3600 and 60 < int(retry_u) <= 3600
    assert abs(int(retry_p) - int(retry_u)) <= 2
    assert [re.sub(r"\d+", "N", e) for e in errors_p] == [re.sub(r"\d+", "N", e) for e in errors_u]
    assert errors_p
    assert len(smtp.to(EMAIL)) == len(smtp.to(UNKNOWN_EMAIL)) == 2


def test_signup_beyond_allowance_changes_nothing_and_sends_nothing(build, smtp):
    """A re-signup inside the cooldown (another browser's, here) sends nothing and changes
    nothing: the registration keeps its password, code and link; /verify says when to ask
    again, and asks this browser for the password, since it did not sign up."""
    app = build(RESEND_COOLDOWN_SECONDS=60)
    browser = SignupActions(app.test_client(), smtp)
    old_code, old_link = signed_up(browser)
    before = pending(app)
    stranger = SignupActions(app.test_client(), smtp)
    assert_redirect(stranger.signup(EMAIL, password=OTHER_PASSWORD), "/verify")
    assert len(smtp.to(EMAIL)) == 1
    assert pending(app) == before
    page = stranger.client.get("/verify")
    assert re.search(r"ask for a new code in \d+ seconds", page_text(page))
    assert 'name="password"' in page.text
    assert browser.open_link(old_link).status_code == 200
    assert_redirect(browser.verify(EMAIL, old_code), "/account")


# -- 3. CSRF ----------------------------------------------------------------------------------
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
    users_before = users(app)
    response = browser.client.post(path, data=data)
    assert response.status_code == 400
    assert re.search(r"<h1>[^<]+</h1>", response.text)
    assert CSRF_MESSAGE in page_text(response)
    assert smtp.messages == []
    assert users(app) == users_before
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


# -- 4. production start-up -------------------------------------------------------------------
PRODUCTION = {"APP_ENV": "production", "SECRET_KEY": PROD_SECRET, "APP_BASE_URL": BASE_URL,
              "MAIL_DEFAULT_SENDER": "noreply@signup.example.org", "SECRET_KEY_FALLBACKS": [],
              "HEALTH_TOKEN": "Hq7-operator-token-Zk2m9Xw4Lp8Rt3Vb6Nc1"}


@pytest.mark.parametrize("changes, variable", [
    ({"SECRET_KEY": None}, "SECRET_KEY"),
    ({"SECRET_KEY": ""}, "SECRET_KEY"),
    ({"SECRET_KEY": "short-secret"}, "SECRET_KEY"),
    ({"SECRET_KEY": "dev" + PROD_SECRET}, "SECRET_KEY"),
    ({"APP_BASE_URL": None}, "APP_BASE_URL"),
    ({"HEALTH_TOKEN": None}, "HEALTH_TOKEN"),
    ({"MAIL_SERVER": None}, "MAIL_SERVER"),
], ids=["no-key", "empty-key", "short-key", "dev-key", "no-base-url", "no-health-token",
        "no-mail-server"])
def test_production_refuses_to_start(make_app, changes, variable):
    """APP_ENV=production without a proper SECRET_KEY, APP_BASE_URL, HEALTH_TOKEN or MAIL_SERVER:
    ConfigError naming it."""
    with pytest.raises(ConfigError) as raised:
        make_app(**{**PRODUCTION, **changes})
    assert raised.value.variable == variable
    assert variable in str(raised.value)


def test_production_starts_with_secure_cookie_and_base_url_links(make_app, smtp):
    """A proper production config starts; Secure session cookie; email links use APP_BASE_URL."""
    app = make_app(**PRODUCTION)
    client = app.test_client()
    spoofed = {"base_url": "https://evil.example", "headers": {"Host": "evil.example"}}
    page = client.get("/signup", **spoofed)
    assert page.status_code == 200
    cookie = session_cookie(page)
    assert cookie and {"secure", "httponly", "samesite=lax"} <= cookie_flags(cookie)
    response = post_form(client, "/signup", {"email": EMAIL, "password": PASSWORD,
                                             "confirm": PASSWORD}, **spoofed)
    assert_redirect(response, "/verify")
    message = smtp.wait_for(EMAIL)
    link = link_from(message)
    assert link.startswith(BASE_URL + "/verify/")
    assert "evil.example" not in text_of(message)
    assert "evil.example" not in message.get_body(preferencelist=("html",)).get_content()


def test_production_link_confirm_over_https_without_referer(make_app, smtp):
    """Over HTTPS the link page's confirm works though its no-referrer policy drops the Referer."""
    app = make_app(**PRODUCTION)
    client = app.test_client()
    https = {"base_url": "https://signup.example.org"}
    signup_page = client.get("/signup", **https)
    response = client.post("/signup", **https, headers={"Referer": BASE_URL + "/signup"}, data={
        "email": EMAIL, "password": PASSWORD, "confirm": PASSWORD,
        "csrf_token": csrf_token(signup_page.text)})
    assert_redirect(response, "/verify")
    link = path_of(link_from(smtp.wait_for(EMAIL)))
    page = client.get(link, **https)
    assert page.status_code == 200
    assert page.headers["Referrer-Policy"] == "no-referrer"
    # What a browser sends from a no-referrer page: no Referer, Origin "null".
    confirmed = client.post(link, **https, headers={"Origin": "null"},
                            data={"csrf_token": csrf_token(page.text)})
    assert_redirect(confirmed, "/account")
    assert users(app) == [EMAIL]
    # The token is still required.
    assert client.post("/logout", **https, data={}).status_code == 400


# -- 5. /health -------------------------------------------------------------------------------
def test_health_detail_only_with_token(make_app):
    """HEALTH_TOKEN set: no or a wrong token gets only the status; the bearer gets the detail."""
    app = make_app(HEALTH_TOKEN="operator-token-1234")
    client = app.test_client()
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "operator-token-1234"},
                    {"Authorization": "Bearer operator-token-12345"},
                    {"Authorization": "Basic operator-token-1234"}):
        response = client.get("/health", headers=headers)
        assert response.status_code == 200
        assert response.get_json() == {"status": "healthy"}, headers
    detail = client.get("/health", headers={"Authorization": "Bearer operator-token-1234"})
    body = detail.get_json()
    assert {"status", "version", "redis", "pending_registrations", "database", "mail"} <= set(body)
    assert body["status"] == "healthy"


def test_health_detail_for_everyone_without_token(make_app):
    """HEALTH_TOKEN unset: the detailed body for every caller."""
    body = make_app().test_client().get("/health").get_json()
    assert {"version", "redis", "database", "mail"} <= set(body)


# -- 6. headers and cookies -------------------------------------------------------------------
CSP_DIRECTIVES = ["default-src 'self'", "object-src 'none'", "base-uri 'none'",
                  "frame-ancestors 'none'"]


def every_page(app, smtp, base_url="http://localhost"):
    """(name, response) for every kind of page, signed out and signed in."""
    browser = SignupActions(app.test_client(), smtp)
    client = browser.client
    get = lambda path: client.get(path, base_url=base_url)  # noqa: E731
    pages = [(path, get(path)) for path in
             ("/", "/signup", "/verify", "/resend", "/login", "/logout", "/account", "/health",
              "/static/css/site.css", "/no-such-page")]
    pages.append(("405", client.post("/account", base_url=base_url)))
    pages.append(("405-put", client.put("/signup", base_url=base_url)))
    page = get("/signup")
    response = client.post("/signup", base_url=base_url, data={
        "email": EMAIL, "password": PASSWORD, "confirm": PASSWORD,
        "csrf_token": csrf_token(page.text)})
    assert_redirect(response, "/verify")
    message = smtp.wait_for(EMAIL, len(smtp.to(EMAIL)) or 1)
    link = path_of(link_from(message))
    pages.append(("signup-redirect", response))
    pages.append(("link", get(link)))
    pages.append(("invalid-link", get("/verify/" + "x" * 43)))
    pages.append(("verify-after-signup", get("/verify")))
    page = get(link)
    confirmed = client.post(link, base_url=base_url, data={"csrf_token": csrf_token(page.text)})
    assert_redirect(confirmed, "/account")
    pages.append(("link-post", confirmed))
    pages.append(("used-link", get(link)))
    pages += [(path + " signed-in", get(path)) for path in ("/account", "/logout", "/")]
    return pages


def test_security_headers_on_every_page(make_app, smtp):
    """CSP, nosniff, a Referrer-Policy on every response; no-referrer on link pages; no HSTS."""
    app = make_app()
    pages = every_page(app, smtp)
    statuses = {name: response.status_code for name, response in pages}
    assert statuses["/no-such-page"] == 404 and statuses["405"] == 405
    assert statuses["link"] == 200 and statuses["invalid-link"] == 404
    assert statuses["used-link"] == 404
    for name, response in pages:
        csp = response.headers.get("Content-Security-Policy", "")
        directives = {d.strip() for d in csp.split(";")}
        assert set(CSP_DIRECTIVES) <= directives, (name, csp)
        assert response.headers.get("X-Content-Type-Options") == "nosniff", name
        assert response.headers.get("Referrer-Policy"), name
        assert "Strict-Transport-Security" not in response.headers, name
        if name.startswith(("link", "invalid-link", "used-link")):
            assert response.headers["Referrer-Policy"] == "no-referrer", name


def test_hsts_only_over_https(make_app, smtp):
    """Strict-Transport-Security on every page served over HTTPS, with a real max-age."""
    app = make_app()
    for name, response in every_page(app, smtp, base_url="https://localhost"):
        hsts = response.headers.get("Strict-Transport-Security", "")
        match = re.search(r"max-age=(\d+)", hsts)
        assert match and int(match.group(1)) >= 86400, (name, hsts)


def test_trusted_proxy_never_sets_the_host(make_app):
    """TRUSTED_PROXIES takes the client's IP and scheme from the proxy, never X-Forwarded-Host:
    the host the app sees is the one the connection asked for."""
    app = make_app(TRUSTED_PROXIES=1)
    app.add_url_rule("/test-seen", "test_seen",
                     lambda: f"{request.remote_addr} {request.scheme} {request.host}")
    seen = app.test_client().get("/test-seen", headers={
        "X-Forwarded-For": "203.0.113.7", "X-Forwarded-Proto": "https",
        "X-Forwarded-Host": "evil.example"})
    assert seen.text == "203.0.113.7 https localhost"


def test_hsts_from_forwarded_proto_only_with_trusted_proxy(make_app):
    """X-Forwarded-Proto: https means HTTPS only when TRUSTED_PROXIES trusts the proxy."""
    forwarded = {"X-Forwarded-Proto": "https"}
    untrusted = make_app(TRUSTED_PROXIES=0).test_client().get("/", headers=forwarded)
    assert "Strict-Transport-Security" not in untrusted.headers
    trusted = make_app(TRUSTED_PROXIES=1).test_client().get("/", headers=forwarded)
    assert "Strict-Transport-Security" in trusted.headers


def test_pages_load_nothing_from_elsewhere(make_app, smtp):
    """No external scripts, styles or fonts, and nothing inline that the CSP would block."""
    app = make_app()
    checked = 0
    for name, response in every_page(app, smtp):
        if response.mimetype != "text/html":
            continue
        checked += 1
        for tag in re.findall(r"<(?:script|link|img|iframe|object|embed)\b[^>]*>", response.text,
                              re.I):
            for value in re.findall(r'\b(?:src|href)\s*=\s*["\']?([^"\'\s>]+)', tag, re.I):
                assert "http" not in value.lower() and not value.startswith("//"), (name, tag)
        assert not re.search(r"<script\b(?![^>]*\bsrc=)[^>]*>", response.text, re.I), name
        assert not re.search(r"<style\b|\sstyle\s*=|@import|url\(\s*['\"]?(?:https?:)?//",
                             response.text, re.I), name
    assert checked >= 10
    css = app.test_client().get("/static/css/site.css")
    assert css.status_code == 200
    assert not re.search(r"@import|url\(\s*['\"]?(?:https?:)?//", css.text, re.I)


def test_session_cookie_flags(make_app):
    """The session cookie is HttpOnly and SameSite=Lax (and not Secure outside production)."""
    app = make_app()
    cookie = session_cookie(app.test_client().get("/signup"))
    assert cookie, "GET /signup sets a session cookie (it holds the CSRF token)"
    flags = cookie_flags(cookie)
    assert "httponly" in flags and "samesite=lax" in flags
    assert "secure" not in flags


def session_of(client) -> dict:
    """The client's current session contents."""
    with client.session_transaction() as session:
        return dict(session)


def test_verification_starts_a_new_session(make_app, smtp):
    """Signing in by code replaces the session: new cookie, no signup_email, new CSRF token."""
    app = make_app()
    browser = SignupActions(app.test_client(), smtp)
    code, _ = signed_up(browser)
    before = session_of(browser.client)
    assert before.get("signup_email") == EMAIL and before.get("csrf_token")
    cookie_before = browser.client.get_cookie("session").value
    response = browser.verify(EMAIL, code)
    assert_redirect(response, "/account")
    cookie_after = browser.client.get_cookie("session").value
    assert cookie_after != cookie_before
    after = session_of(browser.client)
    assert "signup_email" not in after and "last_email" not in after
    assert after.get("csrf_token") != before["csrf_token"]
    assert isinstance(after.get("user_id"), int)


def test_login_starts_a_new_session(make_app, smtp):
    """Signing in with a password replaces the session: nothing from before sign-in is kept."""
    app = make_app()
    verified(SignupActions(app.test_client(), smtp))
    browser = SignupActions(app.test_client(), smtp)
    assert_redirect(browser.resend(OTHER_EMAIL), "/verify")  # leaves last_email in the session
    before = session_of(browser.client)
    assert before.get("last_email") == OTHER_EMAIL
    assert_redirect(browser.login(EMAIL), "/account")
    after = session_of(browser.client)
    assert "last_email" not in after
    assert after.get("csrf_token") != before.get("csrf_token")
    assert isinstance(after.get("user_id"), int)


def test_link_verification_starts_a_new_session(make_app, smtp):
    """Signing in by link also replaces the session."""
    app = make_app()
    browser = SignupActions(app.test_client(), smtp)
    _, link = signed_up(browser)
    before = session_of(browser.client)
    assert_redirect(browser.confirm_link(link), "/account")
    after = session_of(browser.client)
    assert "signup_email" not in after and after.get("csrf_token") != before["csrf_token"]


def test_oversized_body_is_refused_with_413(make_app, smtp):
    """A request body over MAX_CONTENT_LENGTH: 413 in words, nothing stored or sent."""
    app = make_app()
    client = app.test_client()
    token = csrf_token(client.get("/signup").text)
    limit = app.config["MAX_CONTENT_LENGTH"]
    assert limit == 64 * 1024
    response = client.post("/signup", data={"email": EMAIL, "password": PASSWORD,
                                            "confirm": PASSWORD, "name": "x" * (limit + 1),
                                            "csrf_token": token})
    assert response.status_code == 413
    assert "too large" in page_text(response)
    raw = client.post("/verify", data=b"a" * (limit + 1),
                      content_type="application/x-www-form-urlencoded")
    assert raw.status_code == 413
    assert pending(app) is None and smtp.messages == []


# -- 7. no enumeration ------------------------------------------------------------------------
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
    assert users(app) == [verified_address]
    assert pending(app, new_address) is not None and pending(app, pending_address) is not None


def location_of(url: str) -> str:
    """The path of a Location header value."""
    return urlsplit(url).path


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


def anonymised(page: str, address: str) -> str:
    """A page with the typed address (in full and masked) and its CSRF token blanked out."""
    page = page.replace(address, "@").replace(mask_email(address), "@")
    return re.sub(r'(name="csrf_token"[^>]*value=")[^"]*', r"\1", page)


# -- 8. logs ----------------------------------------------------------------------------------
class Capture(logging.Handler):
    """Keep every record that reaches it (once, though attached to several loggers)."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))

    def emit(self, record):
        if all(record is not seen for seen in self.records):
            self.records.append(record)

    def lines(self) -> list[str]:
        """Every record as formatted for a log file (tracebacks included)."""
        return [self.format(record) for record in self.records]


@pytest.fixture
def captured_logs():
    """A Capture on the "app" logger tree (at DEBUG) and on the root logger."""
    handler = Capture()
    app_logger, root = logging.getLogger("app"), logging.getLogger()
    app_level = app_logger.level
    app_logger.addHandler(handler)
    root.addHandler(handler)
    yield handler, app_logger
    app_logger.removeHandler(handler)
    root.removeHandler(handler)
    app_logger.setLevel(app_level)


def test_logs_hold_no_codes_tokens_links_or_passwords(make_app, smtp, captured_logs,
                                                      monkeypatch):
    """A whole run with failures logs no code, link token, link URL or password."""
    handler, app_logger = captured_logs
    app = make_app()
    app_logger.setLevel(logging.DEBUG)  # after create_app, which sets INFO
    generated_codes, generated_tokens = [], []
    real_code, real_token = accounts.new_code, accounts.new_link_token
    monkeypatch.setattr(accounts, "new_code",
                        lambda: generated_codes.append(real_code()) or generated_codes[-1])
    monkeypatch.setattr(accounts, "new_link_token", lambda address_id: generated_tokens.append(
        real_token(address_id)) or generated_tokens[-1])
    browser = SignupActions(app.test_client(), smtp)
    other = SignupActions(app.test_client(), smtp)
    received = []

    def newest(address, count):
        message = smtp.wait_for(address, count)
        received.append((code_from(message), link_from(message)))
        return received[-1]

    # Signup, a wrong code, resend, verify by code.
    assert_redirect(browser.signup(EMAIL), "/verify")
    code, _ = newest(EMAIL, 1)
    assert browser.verify(EMAIL, wrong(code)).status_code == 400
    assert_redirect(browser.resend(EMAIL), "/verify")
    code, _ = newest(EMAIL, 2)
    assert_redirect(browser.verify(EMAIL, code), "/account")
    # A second signup (twice: the second replaces), the old link, the new link GET + POST.
    assert_redirect(other.signup(OTHER_EMAIL), "/verify")
    _, old_link = newest(OTHER_EMAIL, 1)
    assert_redirect(other.signup(OTHER_EMAIL, password=OTHER_PASSWORD), "/verify")
    _, link = newest(OTHER_EMAIL, 2)
    assert other.open_link(old_link).status_code == 404
    third = SignupActions(app.test_client(), smtp)
    assert third.open_link(link).status_code == 200
    assert third.confirm_link(link, password=WRONG_PASSWORD).status_code == 400
    assert_redirect(third.confirm_link(link, password=OTHER_PASSWORD), "/account")
    # Sign-in, right and wrong.
    assert SignupActions(app.test_client(), smtp).login(EMAIL, WRONG_PASSWORD).status_code == 400
    assert_redirect(SignupActions(app.test_client(), smtp).login(EMAIL), "/account")
    # A failed SMTP send, then a database error at promotion.
    mail_state = app.extensions["mail"]
    smtp_port = mail_state.port
    mail_state.port = free_port()
    carol = SignupActions(app.test_client(), smtp)
    try:
        assert_redirect(carol.signup("carol@example.com"), "/verify")
    finally:
        mail_state.port = smtp_port
    assert_redirect(carol.resend("carol@example.com"), "/verify")
    code, _ = newest("carol@example.com", 1)
    original_commit = FlaskSession.commit

    def commit_failing(session):
        raise OperationalError("INSERT INTO users (email, password_hash) VALUES (?, ?)",
                               ("carol@example.com", "$argon2id$..."),
                               sqlite3.OperationalError("database is locked"))

    monkeypatch.setattr(FlaskSession, "commit", commit_failing)
    assert carol.verify("carol@example.com", code).status_code == 503
    monkeypatch.setattr(FlaskSession, "commit", original_commit)
    assert_redirect(carol.verify("carol@example.com", code), "/account")

    lines = handler.lines()
    names = {record.name for record in handler.records}
    assert any("sending a verification email failed" in line for line in lines), lines
    assert any("promotion failed" in line for line in lines), lines
    assert "app.mail.devlog" not in names
    codes = set(generated_codes) | {c for c, _ in received}
    tokens = set(generated_tokens) | {link.rsplit("/", 1)[1] for _, link in received}
    links = {link for _, link in received} | {path_of(link) for _, link in received}
    assert len(codes) >= 6 and len(tokens) >= 6
    assert {link.rsplit("/", 1)[1] for _, link in received} <= set(generated_tokens)
    blob = "\n".join(lines)
    for secret in tokens | links | {PASSWORD, OTHER_PASSWORD, WRONG_PASSWORD}:
        assert secret not in blob, secret
    for secret in codes:
        assert not re.search(rf"(?<!\d){secret}(?!\d)", blob), secret


def test_redact_rewrites_verify_paths():
    """redact() turns /verify/<token> into /verify/… in URLs, paths and request lines."""
    token = "p2fQE1CfdB30WWmYIUAFI3dwJ-1A5PjEXrB5B1b81oY"
    line = (f'127.0.0.1 - - [25/Nov/2026:20:16:10 +0000] "POST /verify/{token} HTTP/1.1" 303 0 '
            f'"https://signup.example.org/verify/{token}?x=1" "Mozilla/5.0"')
    cleaned = redact(line)
    assert token not in cleaned
    assert cleaned.count(REDACTED) == 2
    assert '"POST /verify/… HTTP/1.1"' in cleaned
    assert redact("GET /verify HTTP/1.1") == "GET /verify HTTP/1.1"


def test_redact_rewrites_links_that_carry_the_address_id():
    """Today's tokens (`<address id>-<secret>`) are redacted whole, id included."""
    token = new_link_token("0123456789abcdef0123456789abcdef")
    line = (f'127.0.0.1 - - [25/Nov/2026:20:16:10 +0000] "GET /verify/{token} HTTP/1.1" 200 0 '
            f'"https://signup.example.org/verify/{token}" "Mozilla/5.0"')
    cleaned = redact(line)
    assert token not in cleaned and token[:32] not in cleaned and token[33:] not in cleaned
    assert cleaned.count(REDACTED) == 2
    assert '"GET /verify/… HTTP/1.1"' in cleaned


def test_gunicorn_access_log_redacts_link_tokens():
    """gunicorn.conf.py's RedactingLogger writes /verify/<token> as /verify/… in the access log."""
    from gunicorn.config import Config

    settings = runpy.run_path(str(ROOT / "gunicorn.conf.py"))
    assert settings["logger_class"] is settings["RedactingLogger"]
    config = Config()
    config.set("accesslog", "-")
    config.set("access_log_format", '%(h)s "%(r)s" %(s)s "%(f)s" %(U)s %(q)s {referer}i')
    logger = settings["RedactingLogger"](config)
    lines = Capture()
    logger.access_log.addHandler(lines)
    token = "qXRwxlUDflG4FU_PZRJYuv35s1yFQVRI27byTz2gpPk"
    referer = f"https://signup.example.org/verify/{token}"
    environ = {"REQUEST_METHOD": "GET", "RAW_URI": f"/verify/{token}?lang=en",
               "SERVER_PROTOCOL": "HTTP/1.1", "PATH_INFO": f"/verify/{token}",
               "QUERY_STRING": "lang=en", "REMOTE_ADDR": "203.0.113.7", "HTTP_REFERER": referer}
    response = SimpleNamespace(status="200 OK", headers=[("Content-Type", "text/html")], sent=10)
    request = SimpleNamespace(headers=[("HOST", "signup.example.org"), ("REFERER", referer)])
    try:
        logger.access(response, request, environ, datetime.timedelta(milliseconds=3))
    finally:
        logger.access_log.removeHandler(lines)
    assert len(lines.records) == 1
    line = lines.records[0].getMessage()
    assert token not in line
    assert '"GET /verify/…?lang=en HTTP/1.1" 200' in line
    assert line.count(REDACTED) >= 3


# -- 9. SECRET_KEY rotation -------------------------------------------------------------------
K1 = "first-secret-key-0123456789abcdefghijklmnopqrstuvwxyz"
K2 = "second-secret-key-0123456789abcdefghijklmnopqrstuvwxyz"


@pytest.mark.redis
def test_secret_key_rotation_keeps_codes_and_links_valid(make_app, redis_url, smtp):
    """Codes and links issued under K1 work in an app on K2 with K1 as fallback, not without."""
    app_a = make_app(REDIS_URL=redis_url, SECRET_KEY=K1)
    code_ada, _ = signed_up(SignupActions(app_a.test_client(), smtp), EMAIL)
    _, link_bob = signed_up(SignupActions(app_a.test_client(), smtp), OTHER_EMAIL)
    carol_browser = SignupActions(app_a.test_client(), smtp)
    code_carol, _ = signed_up(carol_browser, "carol@example.com")

    app_c = make_app(REDIS_URL=redis_url, SECRET_KEY=K2, SECRET_KEY_FALLBACKS=[])
    in_c = SignupActions(app_c.test_client(), smtp)
    refused = in_c.verify(EMAIL, code_ada, password=PASSWORD)
    assert refused.status_code == 400
    assert "not right" in page_text(refused)
    assert in_c.open_link(link_bob).status_code == 404
    assert users(app_c) == []

    app_b = make_app(REDIS_URL=redis_url, SECRET_KEY=K2, SECRET_KEY_FALLBACKS=[K1])
    in_b = SignupActions(app_b.test_client(), smtp)
    assert_redirect(in_b.verify(EMAIL, code_ada, password=PASSWORD), "/account")
    other_b = SignupActions(app_b.test_client(), smtp)
    assert other_b.open_link(link_bob).status_code == 200
    assert_redirect(other_b.confirm_link(link_bob, password=PASSWORD), "/account")
    # The signing-up browser's session (signed with K1) is still recognised after the rotation.
    same_browser = SignupActions(app_b.test_client(), smtp)
    same_browser.client.set_cookie("session", carol_browser.client.get_cookie("session").value)
    assert_redirect(same_browser.verify("carol@example.com", code_carol), "/account")
    assert sorted(users(app_b)) == sorted([EMAIL, OTHER_EMAIL, "carol@example.com"])
    assert pending(app_b, EMAIL) is None and pending(app_b, OTHER_EMAIL) is None


@pytest.mark.redis
def test_resend_after_rotation_keeps_the_record_under_its_id(make_app, redis_url, smtp):
    """After a key rotation a resend keeps the record under the id it was stored with (the
    old key's): the new link carries that id, and it and the new code work."""
    app_a = make_app(REDIS_URL=redis_url, SECRET_KEY=K1)
    browser = SignupActions(app_a.test_client(), smtp)
    _, old_link = signed_up(browser, EMAIL)
    old_id = link_token_address_id(old_link.rsplit("/", 1)[1])
    app_b = make_app(REDIS_URL=redis_url, SECRET_KEY=K2, SECRET_KEY_FALLBACKS=[K1])
    with app_b.app_context():
        manager = app_b.extensions["pending"]
        assert manager.address_id(EMAIL) == old_id != manager.digester.address_id(EMAIL)
    in_b = SignupActions(app_b.test_client(), smtp)
    assert_redirect(in_b.resend(EMAIL), "/verify")
    message = in_b.email_to(EMAIL, 2)
    code, link = code_from(message), link_from(message)
    assert link_token_address_id(link.rsplit("/", 1)[1]) == old_id
    assert in_b.open_link(old_link).status_code == 404
    assert in_b.open_link(link).status_code == 200
    assert_redirect(in_b.verify(EMAIL, code, password=PASSWORD), "/account")
    assert pending(app_b, EMAIL) is None


def test_code_and_link_posts_share_the_verify_limit(make_app):
    """A code POST and a link POST draw on one RATELIMIT_VERIFY allowance per client."""
    app = make_app(RATELIMIT_ENABLED=True, RATELIMIT_VERIFY="2/minute", WTF_CSRF_ENABLED=False)
    client = app.test_client()
    assert client.post("/verify", data={"email": "a@example.com", "code": "123456"}).status_code != 429
    assert client.post("/verify/some-token", data={}).status_code != 429
    third = client.post("/verify", data={"email": "a@example.com", "code": "123456"})
    assert third.status_code == 429
    assert "Please try again in 1 minute." in third.get_data(as_text=True)


def test_language_switch_with_control_characters_in_next_goes_home(make_app):
    """A `next` with CR/LF or a tab is refused (no 500, no header injection): back to /."""
    app = make_app(WTF_CSRF_ENABLED=False)
    client = app.test_client()
    for target in ("/\r\nSet-Cookie: a=b", "/\tfoo", "/x\x7f"):
        response = client.post("/lang", data={"lang": "tr", "next": target})
        assert response.status_code == 303
        assert response.headers["Location"] == "/"


def test_smtp_tls_verifies_the_server_certificate(make_app, monkeypatch):
    """STARTTLS and SMTPS are given a verifying SSL context (smtplib verifies nothing alone)."""
    import smtplib
    import ssl

    from app.mail import TimedConnection

    seen = {}

    class FakeSMTP:
        def __init__(self, *args, **kwargs):
            seen["smtps_context"] = kwargs.get("context")

        def starttls(self, context=None):
            seen["starttls_context"] = context

    monkeypatch.setattr(smtplib, "SMTP", FakeSMTP)
    monkeypatch.setattr(smtplib, "SMTP_SSL", FakeSMTP)
    for use_tls, use_ssl, key in ((True, False, "starttls_context"), (False, True, "smtps_context")):
        app = make_app(MAIL_USE_TLS=use_tls, MAIL_USE_SSL=use_ssl)
        with app.app_context():
            TimedConnection(app.extensions["mail"]).configure_host()
        context = seen[key]
        assert isinstance(context, ssl.SSLContext)
        assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname


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
