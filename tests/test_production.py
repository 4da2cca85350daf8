"""Production start-up checks and what a production app does differently (Secure cookie,
APP_BASE_URL links, HTTPS), SECRET_KEY rotation, and mail TLS.
"""

from __future__ import annotations

import pytest

from app.config import ConfigError
from app.security import link_token_address_id

from .helpers import (EMAIL, OTHER_EMAIL, PASSWORD, SignupActions, assert_redirect, code_from,
                      cookie_flags, csrf_token, link_from, page_text, path_of, pending, post_form,
                      session_cookie, signed_up, text_of, user_emails)


PROD_SECRET = "Vq3x9Jr0bL2wN8sT5yK7mP4cH6dF1gZa-prod-secret"


BASE_URL = "https://signup.example.org"


PRODUCTION = {"APP_ENV": "production", "SECRET_KEY": PROD_SECRET, "APP_BASE_URL": BASE_URL,
              "MAIL_DEFAULT_SENDER": "noreply@signup.example.org", "SECRET_KEY_FALLBACKS": [],
              "HEALTH_TOKEN": "Hq7-operator-token-Zk2m9Xw4Lp8Rt3Vb6Nc1"}


K1 = "first-secret-key-0123456789abcdefghijklmnopqrstuvwxyz"


K2 = "second-secret-key-0123456789abcdefghijklmnopqrstuvwxyz"


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
    assert user_emails(app) == [EMAIL]
    # The token is still required.
    assert client.post("/logout", **https, data={}).status_code == 400


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
    assert user_emails(app_c) == []

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
    assert sorted(user_emails(app_b)) == sorted([EMAIL, OTHER_EMAIL, "carol@example.com"])
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


def test_session_cookies_signed_with_a_retired_key_still_open(make_app):
    old = make_app(SECRET_KEY="k" * 64)
    client = old.test_client()
    client.get("/signup")
    with client.session_transaction() as session:
        session["lang"] = "tr"
    new = make_app(SECRET_KEY="n" * 64, SECRET_KEY_FALLBACKS=["k" * 64])
    cookie = client.get_cookie("session").value
    other = new.test_client()
    other.set_cookie("session", cookie)
    assert '<html lang="tr">' in other.get("/signup").text  # the old cookie was read
    stranger = make_app(SECRET_KEY="s" * 64, SECRET_KEY_FALLBACKS=[])
    third = stranger.test_client()
    third.set_cookie("session", cookie)
    assert '<html lang="tr">' not in third.get("/signup", headers={"Accept-Language": "en"}).text


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
