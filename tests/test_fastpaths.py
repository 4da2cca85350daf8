"""The fast paths (app/fastpaths/) give the bytes the plain path gives, and catch an upgrade.

Each test builds the same app twice, FAST_PATHS on and off, and compares what a browser gets:
the page (CSRF tokens aside, as every session has its own) and what the session cookie holds.
A library upgrade that changes what a render gives (Flask-WTF's token or session key, a
template global, escaping) makes these fail rather than the cached pages drift.
"""

from __future__ import annotations

import re

import pytest
from flask_wtf.csrf import validate_csrf
from itsdangerous import BadSignature

from tests.conftest import PASSWORD
from tests.helpers import csrf_token


def without_tokens(html: str) -> str:
    """The page with its CSRF tokens blanked."""
    return re.sub(r'name="csrf_token"([^>]*)value="[^"]+"', r'name="csrf_token"\1value=""', html)


def tokens(html: str) -> list[str]:
    """Every CSRF token on a page (the language switcher's and each form's)."""
    return re.findall(r'name="csrf_token"[^>]*value="([^"]+)"', html)


def session_of(app, client) -> dict:
    """What the client's session cookie holds, as the app reads it."""
    with client.session_transaction() as session:
        return dict(session)


def check_token(app, client, token: str) -> None:
    """Raise unless Flask-WTF's own validate_csrf accepts the token for this client's session."""
    with app.test_request_context():
        from flask import session

        session.update(session_of(app, client))
        validate_csrf(token)


@pytest.mark.parametrize("lang", ["en", "tr"])
@pytest.mark.parametrize("mount", ["", "/accounts"])
def test_blank_signup_page_is_the_plain_render(make_app, lang, mount):
    pages, sessions = [], []
    for fast in (True, False):
        app = make_app(FAST_PATHS=fast, WTF_CSRF_ENABLED=True)
        first = app.test_client()
        first.get("/signup", headers={"Accept-Language": lang})  # fills the cache
        client = app.test_client()
        response = client.get("/signup", base_url=f"http://localhost{mount}",
                              headers={"Accept-Language": lang})
        assert response.status_code == 200
        found = tokens(response.text)
        assert len(found) == 2 and len(set(found)) == 1  # this session's token, in every form
        assert app.extensions["fastpaths"].placeholder not in response.text
        check_token(app, client, found[0])
        pages.append(without_tokens(response.text))
        sessions.append(session_of(app, client))
        # The cache holds a page only on the fast path, and never a visitor's token.
        cached = app.extensions["fastpaths"].pages.values()
        assert bool(cached) is fast
        assert not any(found[0] in page for page in cached)
    assert pages[0] == pages[1]
    assert sessions[0].keys() == sessions[1].keys() == {"csrf_token"}


def test_a_token_from_the_fast_path_is_accepted_by_the_signup(make_app, smtp):
    app = make_app(FAST_PATHS=True, WTF_CSRF_ENABLED=True)
    app.test_client().get("/signup")
    client = app.test_client()
    token = csrf_token(client.get("/signup").text)
    response = client.post("/signup", data={"csrf_token": token, "email": "ada@example.com",
                                            "password": PASSWORD, "confirm": PASSWORD})
    assert response.status_code == 303


@pytest.mark.parametrize("fast", [True, False], ids=["fast", "plain"])
def test_personal_pages_are_rendered_not_served_from_the_cache(make_app, fast):
    """Flashed messages and the query string are this browser's own, either way."""
    app = make_app(FAST_PATHS=fast)
    client = app.test_client()
    client.get("/signup")
    with client.session_transaction() as session:
        session["_flashes"] = [("warning", "A message for this browser only")]
    assert "A message for this browser only" in client.get("/signup").text
    assert "A message for this browser only" not in app.test_client().get("/signup").text
    assert 'value="/signup?from=mail"' in app.test_client().get("/signup?from=mail").text
    assert "from=mail" not in app.test_client().get("/signup").text
    if fast:
        assert all("from=mail" not in page
                   for page in app.extensions["fastpaths"].pages.values())


@pytest.mark.parametrize("lang", ["en", "tr"])
@pytest.mark.parametrize("same_browser", [True, False], ids=["signup-browser", "other-browser"])
def test_a_refused_code_page_is_the_plain_render(make_app, smtp, lang, same_browser):
    """Byte for byte (but the CSRF tokens), for an address that needs escaping."""
    typed = " O'Neil&Co@Example.com"
    pages, sessions = [], []
    for fast in (True, False):
        app = make_app(RESEND_COOLDOWN_SECONDS=0, FAST_PATHS=fast)
        headers = {"Accept-Language": lang}
        signer = app.test_client()
        token = csrf_token(signer.get("/signup", headers=headers).text)
        signer.post("/signup", headers=headers, data={
            "csrf_token": token, "email": typed, "password": PASSWORD, "confirm": PASSWORD})
        browser = signer if same_browser else app.test_client()
        token = csrf_token(browser.get("/verify", headers=headers).text)
        form = {"csrf_token": token, "email": typed, "code": "12345 6"}
        if not same_browser:
            form["password"] = PASSWORD
        browser.post("/verify", headers=headers, data=form)  # the first fills the cache
        response = browser.post("/verify", headers=headers, data=form)
        assert response.status_code == 400
        assert len(set(tokens(response.text))) == 1  # every form: this session's token
        refused = [key for key in app.extensions["fastpaths"].pages if key[4][:1] == ("refused",)]
        assert bool(refused) is fast
        pages.append(without_tokens(response.text))
        sessions.append(session_of(app, browser))
    fast_page, plain_page = pages
    assert fast_page == plain_page
    assert sessions[0].keys() == sessions[1].keys()
    assert "o&#39;neil&amp;co@example.com" in fast_page or "O&#39;Neil&amp;Co@Example.com" in fast_page
    if same_browser:
        assert ("Attempts left: 3." if lang == "en" else "3") in fast_page


def test_fast_paths_off_renders_every_page(make_app):
    app = make_app(FAST_PATHS=False)
    for _ in range(2):
        assert app.test_client().get("/signup").status_code == 200
    assert app.extensions["fastpaths"].pages == {}


def test_the_session_cookie_is_flasks_own(make_app, monkeypatch):
    """The kept serializer writes the cookie Flask's own interface writes, and each reads the
    other's (key rotation included), so turning FAST_PATHS on or off keeps every browser in."""
    from flask.sessions import SecureCookieSessionInterface

    from app.fastpaths.sessions import CachedSessionInterface

    monkeypatch.setattr("itsdangerous.timed.time.time", lambda: 1_800_000_000)
    app = make_app(FAST_PATHS=True, SECRET_KEY="n" * 64, SECRET_KEY_FALLBACKS=["k" * 64])
    assert isinstance(app.session_interface, CachedSessionInterface)
    plain, fast = SecureCookieSessionInterface(), app.session_interface
    content = {"csrf_token": "a" * 40, "lang": "tr", "signup_at": 1.5}
    with app.app_context():
        for _ in range(2):  # the second time from the kept serializer
            assert (fast.get_signing_serializer(app).dumps(content)
                    == plain.get_signing_serializer(app).dumps(content))
        old = make_app(FAST_PATHS=False, SECRET_KEY="k" * 64)
        with old.app_context():
            retired = plain.get_signing_serializer(old).dumps(content)
        assert fast.get_signing_serializer(app).loads(retired) == content
    app.config["SECRET_KEY_FALLBACKS"] = []  # keys changed: the serializer is asked again
    with app.app_context():
        with pytest.raises(BadSignature):
            fast.get_signing_serializer(app).loads(retired)
    assert not isinstance(make_app(FAST_PATHS=False).session_interface, CachedSessionInterface)
