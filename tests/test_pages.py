"""The pages themselves: the blank forms and their CSRF tokens, pages rendered per person,
labels, autocomplete and error announcements, and the verification status a page polls.
"""

from __future__ import annotations

import re

import pytest
from flask import render_template_string
from flask_wtf.csrf import validate_csrf

from .helpers import EMAIL, PASSWORD, SignupActions, csrf_token, page_text


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


@pytest.mark.parametrize("mount", ["", "/accounts"])
def test_template_urls_follow_the_mount_point_and_keep_their_values(app, mount):
    with app.test_request_context("/", base_url=f"http://localhost{mount}"):
        rendered = render_template_string(
            "{{ url_for('static', filename='css/site.css') }} {{ url_for('signup.signup') }} "
            "{{ url_for('verify.link', token='abc') }} {{ url_for('verify.link', token='xyz') }}")
    assert rendered.split() == [f"{mount}/static/css/site.css", f"{mount}/signup",
                                f"{mount}/verify/abc", f"{mount}/verify/xyz"]


def test_every_input_has_a_label_and_the_right_autocomplete(app, actions):
    """Labels for every visible input; autocomplete and inputmode where the issue asks."""
    assert actions.signup(EMAIL).status_code == 303
    other = app.test_client()
    pages = {"/signup": actions.client, "/login": actions.client, "/resend": actions.client,
             "/verify": other}
    for path, client in pages.items():
        page = client.get(path).text
        inputs = re.findall(r"<input[^>]*>", page)
        for tag in inputs:
            if 'type="hidden"' in tag:
                continue
            field_id = re.search(r'id="([^"]+)"', tag).group(1)
            assert f'<label for="{field_id}">' in page, (path, field_id)
    signup = actions.client.get("/signup").text
    assert re.search(r'<input[^>]*autocomplete="email"[^>]*id="email"', signup)
    assert signup.count('autocomplete="new-password"') == 2
    verify = other.get("/verify").text
    code = re.search(r'<input[^>]*id="code"[^>]*>', verify).group(0)
    assert 'autocomplete="one-time-code"' in code and 'inputmode="numeric"' in code
    assert 'autocomplete="current-password"' in verify


def test_errors_are_linked_announced_and_focused(actions):
    """Field errors: summary (role=alert) linking to fields, aria-describedby, autofocus."""
    page = actions.signup("not an address", password="short")
    assert page.status_code == 400
    assert 'role="alert" id="error-summary"' in page.text
    assert '<a href="#email">' in page.text and '<a href="#password">' in page.text
    email = re.search(r'<input[^>]*id="email"[^>]*>', page.text).group(0)
    assert "autofocus" in email and 'aria-invalid="true"' in email
    assert 'aria-describedby="email-error"' in email
    password = re.search(r'<input[^>]*id="password"[^>]*>', page.text).group(0)
    assert "autofocus" not in password
    assert 'aria-describedby="password-hint password-error"' in password


def test_status_is_none_without_a_signup(client):
    """A browser that signed up for nothing gets "none" (it cannot ask about any address)."""
    assert client.get("/verify/status").get_json() == {"status": "none"}
    assert client.get("/verify/status?email=ada@example.com").get_json() == {"status": "none"}
    assert client.get("/verify/done").status_code == 302


def test_status_moves_to_verified_when_verified_elsewhere(app, actions, smtp):
    """pending while waiting; verified once another browser used the code with the password."""
    assert actions.signup(EMAIL).status_code == 303
    page = actions.client.get("/verify")
    assert 'data-status-url="/verify/status"' in page.text
    assert actions.client.get("/verify/status").get_json() == {"status": "pending"}
    assert actions.client.get("/verify/done").status_code == 302  # not yet

    phone = SignupActions(app.test_client(), smtp)
    assert phone.verify(EMAIL, actions.code_for(EMAIL), password=PASSWORD).status_code == 303
    assert actions.client.get("/verify/status").get_json() == {"status": "verified"}
    done = actions.client.get("/verify/done")
    assert done.status_code == 200 and "Your address is verified" in page_text(done)
    assert 'href="/login"' in done.text
    assert actions.client.get("/account").status_code == 302  # not signed in here
    assert f'value="{EMAIL}"' in actions.client.get("/login").text
