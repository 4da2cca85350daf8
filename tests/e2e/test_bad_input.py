"""Bad input over HTTP, against gunicorn: every shape of body a POST can carry gets a 4xx page in
words and changes nothing (issue 11, items 7 and 8).

Item 7: file parts in multipart bodies and JSON bodies whose values are not strings (sent with
a valid CSRF header, as a script would) on every POST route. Item 8: control characters in
every password field.
"""

from __future__ import annotations

import html
import re

import pytest
import requests
from hypothesis import HealthCheck, given, settings

from ..shapes import ALL_FIELDS, FAMILIES, POST_ROUTES, judge
from .conftest import HTTP_TIMEOUT, PASSWORD, Browser, code_and_link, dump_redis, new_address, \
    user_rows

pytestmark = [pytest.mark.slow, pytest.mark.redis, pytest.mark.usefixtures("fresh_redis")]

NOT_TEXT = {
    "en": "Every field of this form must be text typed into the page",
    "tr": "Bu formun her alanı sayfaya yazılmış bir metin olmalı",
}
CONTROL = {
    "en": "A password can't contain control characters",
    "tr": "Parola denetim karakterleri",
}
# What a request sends to each POST route when it is well formed (None: filled in per test).
ROUTES = {
    "/signup": {"email": None, "password": PASSWORD, "confirm": PASSWORD, "name": "Ada",
                "typed_email": ""},
    "/verify": {"email": None, "code": "123456", "password": PASSWORD},
    "link": {"password": PASSWORD},
    "/resend": {"email": None},
    "/login": {"email": None, "password": PASSWORD},
    "/logout": {},
    "/lang": {"lang": "tr", "next": "/signup"},
}
# Values of every JSON type but a string, and bodies that are not a JSON object at all.
JSON_VALUES = [12345, 1.5, True, None, ["a@example.com"], {"a": 1}, [[1, {"b": None}]]]
JSON_BODIES = ['[1,2,3]', '"abc"', "5", "true", "null", "{", '{"email": "a", "email": 7}']


class World:
    """What the tests look at to tell that a refused request changed nothing."""

    def __init__(self, server, redis_server, smtp_server):
        self.server, self.redis, self.smtp = server, redis_server.client(), smtp_server

    def snapshot(self):
        """Every Redis key and value (not TTLs, which tick), the users table, the mail count."""
        keys = {key: (kind, value) for key, (kind, value, _ttl) in dump_redis(self.redis).items()}
        rows = [tuple(row) for row in user_rows(self.server.database)]
        return keys, rows, len(self.smtp.messages)


@pytest.fixture
def world(live_server, redis_server, smtp_server):
    """The live server, its Redis and mailbox, with one pending registration and one user."""
    state = World(live_server, redis_server, smtp_server)
    # A registration waiting (its link is a POST route to probe) and a signed-in user (so a
    # refused /logout can be seen to keep the session).
    signer = Browser(live_server.base_url)
    state.pending_address = new_address("shape-pending")
    assert signer.signup(state.pending_address).status_code == 303
    _code, state.link = code_and_link(smtp_server, state.pending_address)
    state.signer = signer
    user = Browser(live_server.base_url)
    state.user_address = new_address("shape-user")
    assert user.signup(state.user_address).status_code == 303
    code, _link = code_and_link(smtp_server, state.user_address)
    assert user.verify(state.user_address, code).status_code == 303
    state.user = user
    return state


def path_of_route(world, route: str) -> str:
    """The route's path (the pending registration's link for "link")."""
    return world.link if route == "link" else route


def well_formed(world, route: str) -> dict:
    """The route's fields with plausible values."""
    return {name: world.pending_address if value is None else value
            for name, value in ROUTES[route].items()}


def assert_refused_in_words(response, language: str = "en") -> None:
    """400, an HTML page that says in words what was wrong, no traceback."""
    assert response.status_code == 400, (response.status_code, response.text[:300])
    assert response.headers["Content-Type"].startswith("text/html")
    text = html.unescape(response.text)
    assert NOT_TEXT[language] in text, text[:2000]
    assert "Traceback" not in text


def send(world, route: str, browser: Browser, **kwargs) -> requests.Response:
    """POST to the route without following redirects."""
    return browser.session.post(browser.url(path_of_route(world, route)), allow_redirects=False,
                                timeout=HTTP_TIMEOUT, **kwargs)


def probe_browser(world, route: str) -> Browser:
    """A browser to probe with: the signed-in user for /logout, a new visitor otherwise."""
    if route == "/logout":
        return world.user
    return Browser(world.server.base_url)


def form_token(world, route: str, browser: Browser) -> str:
    """The CSRF token from the page the route's form is on."""
    page = {"link": world.link, "/lang": "/signup"}.get(route, route)
    return browser.get_form(page)


def assert_nothing_changed(world, before, browser: Browser) -> None:
    """Redis, the users table and the mailbox are as they were; the user is still signed in;
    the probing browser's language was not switched."""
    assert world.snapshot() == before
    account = world.user.get("/account")
    assert account.status_code == 200 and world.user_address in account.text
    assert '<html lang="en">' in browser.get("/signup").text


@pytest.mark.parametrize("route", list(ROUTES))
def test_a_file_part_in_any_field_is_refused_in_words(world, route):
    """multipart (`curl -F field=@file`): a file in any field is a 400 page, nothing changes."""
    browser = probe_browser(world, route)
    token = form_token(world, route, browser)
    fields = well_formed(world, route)
    before = world.snapshot()
    # Each field in turn as a file; /logout has no field but its token, so a part of its own.
    for name in list(fields) or ["note"]:
        text = {key: value for key, value in fields.items() if key != name}
        text["csrf_token"] = token
        content = (fields.get(name) or "a note").encode()
        response = send(world, route, browser, data=text,
                        files={name: ("value.txt", content, "text/plain")})
        assert_refused_in_words(response)
        assert_nothing_changed(world, before, browser)


@pytest.mark.parametrize("route", list(ROUTES))
def test_json_values_that_are_not_strings_are_refused_in_words(world, route):
    """JSON with a valid CSRF header: a non-string in any field is a 400 page, nothing changes.

    The issue's cases are among them: `{"password": 12345}`, a dict in `name`, `{"next": 5}`.
    """
    browser = probe_browser(world, route)
    headers = {"X-CSRFToken": form_token(world, route, browser)}
    fields = well_formed(world, route)
    before = world.snapshot()
    for name in list(fields) or ["anything"]:
        for value in JSON_VALUES:
            response = send(world, route, browser, json={**fields, name: value},
                            headers=headers)
            assert_refused_in_words(response)
    assert_nothing_changed(world, before, browser)


@pytest.mark.parametrize("route", list(ROUTES))
def test_json_bodies_that_are_not_objects_are_refused_in_words(world, route):
    """`[1,2,3]`, `"abc"`, a number, `true`, `null`, broken JSON: a 400 page, nothing changes."""
    browser = probe_browser(world, route)
    headers = {"X-CSRFToken": form_token(world, route, browser),
               "Content-Type": "application/json"}
    before = world.snapshot()
    for body in JSON_BODIES:
        response = send(world, route, browser, data=body.encode(), headers=headers)
        assert_refused_in_words(response)
    assert_nothing_changed(world, before, browser)


def test_refusal_is_in_the_visitors_language(world):
    """A Turkish visitor reads the refusal in Turkish."""
    browser = probe_browser(world, "/signup")
    browser.session.headers["Accept-Language"] = "tr"
    headers = {"X-CSRFToken": browser.get_form("/signup")}
    assert_refused_in_words(send(world, "/signup", browser, json=[1, 2, 3], headers=headers),
                            "tr")
    token = browser.get_form("/signup")
    response = send(world, "/signup", browser, data={"csrf_token": token},
                    files={"password": ("p.txt", PASSWORD.encode(), "text/plain")})
    assert_refused_in_words(response, "tr")


def test_a_json_object_of_strings_still_works(live_server, smtp_server):
    """What Flask-WTF documents keeps working: a JSON object of strings with the CSRF header."""
    browser = Browser(live_server.base_url)
    address = new_address("shape-json")
    headers = {"X-CSRFToken": browser.get_form("/signup")}
    response = browser.session.post(
        browser.url("/signup"), json={"email": address, "password": PASSWORD,
                                      "confirm": PASSWORD}, headers=headers,
        allow_redirects=False, timeout=HTTP_TIMEOUT)
    assert response.status_code == 303, response.text[:500]
    code, _link = code_and_link(smtp_server, address)
    assert browser.verify(address, code).status_code == 303
    assert len(user_rows(live_server.database, address)) == 1


# Generated requests per shape family over HTTP (each example goes to all 7 POST routes); the
# volume is in tests/test_fuzz.py, through Flask's test client.
HTTP_EXAMPLES = 15


@pytest.mark.parametrize("family", list(FAMILIES))
def test_generated_shapes_over_http(live_server, redis_server, smtp_server, family):
    """The fuzz suite's shape families through gunicorn: the same answers, nothing stored."""
    browser = Browser(live_server.base_url)
    token = browser.get_form("/signup")
    cookie = browser.session.cookies.get("session")
    redis_client = redis_server.client()
    users = len(user_rows(live_server.database))
    mails = len(smtp_server.messages)
    sent = []

    @settings(max_examples=HTTP_EXAMPLES, deadline=None, database=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
    @given(shaped=FAMILIES[family](ALL_FIELDS, token))
    def run(shaped):
        for path in POST_ROUTES:
            # Always the first page's session, so a sign-out does not drop the CSRF token.
            response = requests.post(live_server.base_url + path, cookies={"session": cookie},
                                     allow_redirects=False, timeout=HTTP_TIMEOUT,
                                     **shaped.as_request())
            sent.append(path)
            judge(shaped, path, response.status_code, response.text)
        assert not list(redis_client.scan_iter(match="signup:pending:*"))
        assert len(user_rows(live_server.database)) == users
        assert len(smtp_server.messages) == mails

    run()
    assert len(sent) >= HTTP_EXAMPLES * len(POST_ROUTES)


# -- item 8: control characters in passwords -------------------------------------------------
CONTROL_PASSWORDS = ["correct\x00horse battery", "correct horse\tbattery", "correct\nhorse bat",
                     "correct horse\x7fbattery", "correct\x85horse battery", "\x1bcorrect horse"]


def field_errors(response, field: str) -> list[str]:
    """The error messages shown next to one form field."""
    found = re.findall(rf'<p class="error" id="{field}-error">(.*?)</p>', response.text, re.S)
    return [html.unescape(message) for message in found]


def assert_control_refused(response, fields, language="en") -> None:
    """400 with the control-character message next to each of `fields`."""
    assert response.status_code == 400, (response.status_code, response.text[:300])
    for field in fields:
        errors = field_errors(response, field)
        assert any(CONTROL[language] in message for message in errors), (field, errors)


@pytest.mark.parametrize("password", CONTROL_PASSWORDS)
def test_control_characters_in_passwords_are_refused_next_to_the_field(world, password):
    """Signup (password, confirm), verify, the link page and login: a message by the field."""
    before = world.snapshot()
    visitor = Browser(world.server.base_url)
    address = new_address("control")
    response = visitor.post_form("/signup", {"email": address, "password": password,
                                             "confirm": password})
    assert_control_refused(response, ["password", "confirm"])
    # Another browser than the signing-up one: the password field is on the page.
    response = visitor.verify(world.pending_address, "123456", password=password)
    assert_control_refused(response, ["password"])
    response = visitor.post_form(world.link, {"password": password})
    assert_control_refused(response, ["password"])
    # The signing-up browser's link page has no password field, unless it must show an error.
    response = world.signer.post_form(world.link, {"password": password})
    assert_control_refused(response, ["password"])
    response = visitor.post_form("/login", {"email": world.user_address, "password": password})
    assert_control_refused(response, ["password"])
    assert_nothing_changed(world, before, visitor)


def test_control_character_message_is_translated(world):
    """A Turkish visitor reads the message in Turkish."""
    visitor = Browser(world.server.base_url)
    visitor.session.headers["Accept-Language"] = "tr"
    response = visitor.post_form("/login", {"email": world.user_address,
                                            "password": "correct\x00horse battery"})
    assert_control_refused(response, ["password"], "tr")


def test_format_characters_stay_allowed_in_passwords(live_server, smtp_server):
    """Cf characters (a zero-width joiner inside an emoji, ZWNJ in Persian) are typed by people:
    such a password signs up, verifies and signs in."""
    browser = Browser(live_server.base_url)
    address = new_address("format")
    password = "می\u200cخواهم 👩\u200d💻 horse"
    assert browser.post_form("/signup", {"email": address, "password": password,
                                         "confirm": password}).status_code == 303
    code, _link = code_and_link(smtp_server, address)
    other = Browser(live_server.base_url)
    assert other.verify(address, code, password=password).status_code == 303
    assert Browser(live_server.base_url).login(address, password).status_code == 303
