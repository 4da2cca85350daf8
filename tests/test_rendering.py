"""Form pages as the libraries make them: Flask-WTF's per-session CSRF token, Flask's session
cookie (and its key rotation), Flask-Babel's text in the page's language, limits on POSTs only.

Issue 13 removed the page cache and the copies of library internals that issue 7 added; these
tests hold the behaviour that machinery had to keep.
"""

from __future__ import annotations

import re

import pytest
from flask import render_template_string
from flask_babel import force_locale
from flask_wtf.csrf import validate_csrf

from tests.conftest import PASSWORD
from tests.helpers import csrf_token


def page_without_token(html: str) -> str:
    """The page with its CSRF tokens blanked, to compare two visitors' pages."""
    return re.sub(r'name="csrf_token"([^>]*)value="[^"]+"', r'name="csrf_token"\1value=""', html)


def all_tokens(html: str) -> list[str]:
    """Every CSRF token on a page (the language switcher's and each form's)."""
    return re.findall(r'name="csrf_token"[^>]*value="([^"]+)"', html)


def form_token(html: str) -> str:
    """The token of the page's main form (what a browser submits), not the header's."""
    return all_tokens(html[html.index("<main"):])[0]


def test_blank_signup_page_is_the_same_for_everyone_but_the_token(app):
    first, second, third = app.test_client(), app.test_client(), app.test_client()
    pages = [client.get("/signup") for client in (first, second, third)]
    assert [page.status_code for page in pages] == [200, 200, 200]
    for page in pages:
        # The form and the language switcher carry this session's token, and no other.
        tokens = all_tokens(page.text)
        assert len(tokens) == 2 and len(set(tokens)) == 1
    assert len({form_token(page.text) for page in pages}) == 3
    assert len({page_without_token(page.text) for page in pages}) == 1


def test_a_page_token_is_accepted_by_flask_wtf_and_by_the_signup(app, smtp):
    app.test_client().get("/signup")  # another visitor's token must not be this one's
    client = app.test_client()
    token = form_token(client.get("/signup").text)
    with app.test_request_context():
        from flask import session

        with client.session_transaction() as stored:
            session.update(stored)
        validate_csrf(token)  # raises when Flask-WTF would refuse it
    response = client.post("/signup", data={"csrf_token": token, "email": "ada@example.com",
                                            "password": PASSWORD, "confirm": PASSWORD})
    assert response.status_code == 303
    assert smtp.wait_for("ada@example.com")


def test_another_browsers_token_is_refused(app):
    mine, theirs = app.test_client(), app.test_client()
    mine.get("/signup")
    stolen = form_token(theirs.get("/signup").text)
    response = mine.post("/signup", data={"csrf_token": stolen, "email": "ada@example.com",
                                          "password": PASSWORD, "confirm": PASSWORD})
    assert response.status_code == 400
    assert app.extensions["pending"].get_registration("ada@example.com") is None


def test_each_language_has_its_own_page(app):
    english = app.test_client().get("/signup", headers={"Accept-Language": "en"}).text
    turkish = app.test_client().get("/signup", headers={"Accept-Language": "tr"}).text
    assert '<html lang="en">' in english and '<html lang="tr">' in turkish
    assert "Kaydol" in turkish and "Kaydol" not in english


def test_flashed_messages_and_the_query_string_are_this_browsers_own(app):
    client = app.test_client()
    client.get("/signup")
    with client.session_transaction() as session:
        session["_flashes"] = [("warning", "A message for this browser only")]
    assert "A message for this browser only" in client.get("/signup").text
    assert "A message for this browser only" not in app.test_client().get("/signup").text
    # A query string is part of the page (the language switcher returns to it): not cached.
    with_query = app.test_client().get("/signup?from=mail").text
    assert 'value="/signup?from=mail"' in with_query
    assert "from=mail" not in app.test_client().get("/signup").text


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


def test_template_text_follows_a_forced_language(app):
    with app.test_request_context("/", headers={"Accept-Language": "en"}):
        template = "{{ _('Sign up') }}"
        assert render_template_string(template) == "Sign up"
        with force_locale("tr"):
            assert render_template_string(template) == "Kaydol"
        assert render_template_string(template) == "Sign up"


@pytest.mark.parametrize("mount", ["", "/accounts"])
def test_template_urls_follow_the_mount_point_and_keep_their_values(app, mount):
    with app.test_request_context("/", base_url=f"http://localhost{mount}"):
        rendered = render_template_string(
            "{{ url_for('static', filename='css/site.css') }} {{ url_for('signup.signup') }} "
            "{{ url_for('verify.link', token='abc') }} {{ url_for('verify.link', token='xyz') }}")
    assert rendered.split() == [f"{mount}/static/css/site.css", f"{mount}/signup",
                                f"{mount}/verify/abc", f"{mount}/verify/xyz"]
