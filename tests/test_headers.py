"""HTTP hardening: security headers and the CSP, HSTS, cookie flags, what a trusted proxy may
set, and the request body limit.
"""

from __future__ import annotations

import re

from flask import request

from .helpers import (EMAIL, PASSWORD, SignupActions, assert_redirect, cookie_flags, csrf_token,
                      link_from, page_text, path_of, pending, session_cookie)


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
