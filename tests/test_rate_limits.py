"""Rate limits per client IP (memory and a real redis-server), the client IP behind trusted
proxies, and the per-address email allowance.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest

from .helpers import (EMAIL, OTHER_PASSWORD, PASSWORD, SignupActions, UNKNOWN_EMAIL,
                      WRONG_PASSWORD, assert_redirect, csrf_token, field_errors, input_value,
                      page_text, path_of, pending, post_form, signed_up, text_of)


TOO_MANY = "Too many attempts"


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


def login_from(app, forwarded_for, remote="10.0.0.1"):
    """A POST /login from a client behind the proxy at `remote` claiming `forwarded_for`."""
    client = app.test_client()
    options = {"environ_base": {"REMOTE_ADDR": remote},
               "headers": {"X-Forwarded-For": forwarded_for}}
    return lambda: post_form(client, "/login", {"email": EMAIL, "password": PASSWORD},
                             **options).status_code


def allowance_run(browser, address):
    """Two more resends for an address that has had one email: (status, Retry-After, errors)."""
    answers = []
    for _ in range(2):
        response = browser.resend(address)
        answers.append((response.status_code, response.headers.get("Retry-After"),
                        field_errors(response, "email")))
    return answers


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


def test_code_and_link_posts_share_the_verify_limit(make_app):
    """A code POST and a link POST draw on one RATELIMIT_VERIFY allowance per client."""
    app = make_app(RATELIMIT_ENABLED=True, RATELIMIT_VERIFY="2/minute", WTF_CSRF_ENABLED=False)
    client = app.test_client()
    assert client.post("/verify", data={"email": "a@example.com", "code": "123456"}).status_code != 429
    assert client.post("/verify/some-token", data={}).status_code != 429
    third = client.post("/verify", data={"email": "a@example.com", "code": "123456"})
    assert third.status_code == 429
    assert "Please try again in 1 minute." in third.get_data(as_text=True)


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


def test_gets_skip_the_limiter_and_posts_are_still_limited(make_app):
    app = make_app(RATELIMIT_ENABLED=True, RATELIMIT_SIGNUP="2/minute")
    client = app.test_client()
    for _ in range(5):
        assert client.get("/signup").status_code == 200
    token = csrf_token(client.get("/signup").text)
    form = {"csrf_token": token, "email": "not an address", "password": "x", "confirm": "x"}
    statuses = [client.post("/signup", data=form).status_code for _ in range(3)]
    assert statuses == [400, 400, 429]


def test_a_submission_that_is_not_text_is_refused_before_the_limit_counts_it(make_app):
    """The limiter's hook runs after the app's own: a file part never reaches the limit."""
    from io import BytesIO

    app = make_app(RATELIMIT_ENABLED=True, RATELIMIT_SIGNUP="2/minute")
    client = app.test_client()
    token = csrf_token(client.get("/signup").text)
    for _ in range(3):
        response = client.post("/signup", data={"csrf_token": token,
                                                "email": (BytesIO(b"x"), "x.txt")})
        assert response.status_code == 400
    form = {"csrf_token": token, "email": "not an address", "password": "x", "confirm": "x"}
    assert [client.post("/signup", data=form).status_code for _ in range(3)] == [400, 400, 429]


def test_a_global_limit_counts_every_request(make_app):
    app = make_app(RATELIMIT_ENABLED=True, RATELIMIT_DEFAULT="2/minute")
    client = app.test_client()
    # Flask-Limiter applies default limits to the routes without limits of their own.
    statuses = [client.get("/").status_code for _ in range(3)]
    assert statuses == [200, 200, 429]
