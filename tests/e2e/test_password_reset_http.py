"""Forgotten passwords over HTTP against gunicorn (2 workers), a real redis-server and the
aiosmtpd server: the reset flows, their enumeration safety, caps, sessions and mail scanners,
sign-in of an unfinished signup and the per-account sign-in throttle."""

from __future__ import annotations

import re

import pytest
import redis

from ..helpers import text_of
from .conftest import (
    PASSWORD,
    Browser,
    assert_unchanged,
    code_and_link,
    contains_code,
    dump_redis,
    new_address,
    redis_text,
    start_gunicorn,
    wrong_code,
)
from .test_account_http import assert_redirect, shows_account, signed_in as account

pytestmark = [pytest.mark.slow, pytest.mark.redis, pytest.mark.usefixtures("fresh_redis")]

NEW_PASSWORD = "a brand new long passphrase"
RESET_LINK_RE = re.compile(r"(https?://\S+/password/reset/[A-Za-z0-9_\-]+)")
CODE_MAX, ADDRESS_MAX, LOGIN_MAX = 2, 3, 3


@pytest.fixture(scope="module")
def reset_server(tmp_path_factory, redis_server, smtp_server):
    """The app under gunicorn with small caps: 2 wrong codes per code, 3 per address, 3 failed
    sign-ins per account."""
    yield from start_gunicorn(
        tmp_path_factory, redis_server, smtp_server, "gunicorn-reset", db=4,
        extra_env={"CODE_MAX_ATTEMPTS": str(CODE_MAX),
                   "REGISTRATION_MAX_ATTEMPTS": str(ADDRESS_MAX),
                   "LOGIN_MAX_FAILURES": str(LOGIN_MAX)})


class Person(Browser):
    """A Browser that also knows the forgotten-password pages."""

    def forgot(self, email: str):
        """Ask for help with a forgotten password."""
        return self.post_form("/password/forgot", {"email": email})

    def reset(self, email: str, code: str, password: str = NEW_PASSWORD):
        """A new password with the emailed code."""
        return self.post_form("/password/reset", {"email": email, "code": code,
                                                  "password": password, "confirm": password})

    def reset_by_link(self, link: str, password: str = NEW_PASSWORD):
        """A new password on the emailed link's page."""
        return self.post_form(link, {"password": password, "confirm": password})


def reset_email(smtp_server, address: str, count: int) -> tuple[str, str]:
    """The code and the reset link of the `count`-th email to `address`."""
    message = smtp_server.wait_for(address, count)
    assert message["Subject"] == "Your password reset code", message["Subject"]
    code = re.search(r"^\s{4}(\d{6})\s*$", text_of(message), re.MULTILINE).group(1)
    return code, RESET_LINK_RE.search(text_of(message)).group(1)


def server_db(redis_server) -> redis.Redis:
    """A client on the Redis database reset_server uses."""
    return redis.Redis(host="127.0.0.1", port=redis_server.port, db=4, socket_timeout=2)


def comparable(response, typed: str = "") -> tuple:
    """What a visitor could compare: status, Location, header names, and the body with the CSRF
    token and the address they typed themselves taken out."""
    body = re.sub(r'(name="csrf_token"[^>]*value=")[^"]+"', r'\1…"', response.text)
    if typed:
        body = body.replace(typed, "<typed>")
    names = sorted(k.lower() for k in response.headers if k.lower() not in ("date", "set-cookie"))
    return response.status_code, response.headers.get("Location"), names, body


# -- the flows --------------------------------------------------------------------------------
def test_forgot_code_new_password_account(reset_server, smtp_server):
    """Forgot → the emailed code → a new password → /account; the old password is refused, the
    new one works elsewhere, and "your password was changed" arrives."""
    _owner, address = account(reset_server, smtp_server, "rs-code")
    person = Person(reset_server.base_url)
    assert_redirect(person.forgot(address), "/password/reset")
    code, _link = reset_email(smtp_server, address, 2)
    assert_redirect(person.reset(address, code), "/account")
    assert shows_account(person, address)
    assert smtp_server.wait_for(address, 3)["Subject"] == "Your password was changed"
    assert Person(reset_server.base_url).login(address, PASSWORD).status_code == 400
    assert_redirect(Person(reset_server.base_url).login(address, NEW_PASSWORD), "/account")
    assert person.reset(address, code, "another long passphrase").status_code == 400


def test_forgot_link_new_password_account(reset_server, smtp_server, redis_server):
    """The same with the link: GET (a mail scanner, any browser) changes nothing; the POST of
    its form changes the password; the link and the code are dead afterwards."""
    _owner, address = account(reset_server, smtp_server, "rs-link")
    person = Person(reset_server.base_url)
    assert_redirect(person.forgot(address), "/password/reset")
    code, link = reset_email(smtp_server, address, 2)
    client = server_db(redis_server)
    before = dump_redis(client)
    for visitor in (Person(reset_server.base_url), person, Person(reset_server.base_url)):
        page = visitor.get(link)
        assert page.status_code == 200 and 'name="password"' in page.text
        assert page.headers["Referrer-Policy"] == "no-referrer"
    assert_unchanged(before, dump_redis(client))
    assert_redirect(person.reset_by_link(link), "/account")
    assert shows_account(person, address)
    assert person.get(link).status_code == 404
    assert person.reset(address, code).status_code == 400
    assert_redirect(Person(reset_server.base_url).login(address, NEW_PASSWORD), "/account")


def test_an_old_session_cookie_is_refused_after_a_reset(reset_server, smtp_server):
    """A cookie of the signed-in owner (or copied from it) no longer opens /account once the
    password was reset elsewhere; the browser that reset stays signed in."""
    owner, address = account(reset_server, smtp_server, "rs-cookie")
    copied = owner.session.cookies.get("session")
    person = Person(reset_server.base_url)
    person.forgot(address)
    code, _link = reset_email(smtp_server, address, 2)
    assert_redirect(person.reset(address, code), "/account")
    replay = Person(reset_server.base_url)
    replay.session.cookies.set("session", copied, domain="127.0.0.1", path="/")
    assert_redirect(replay.get("/account"), "/login")
    assert_redirect(owner.get("/account"), "/login")
    assert shows_account(person, address)


# -- enumeration ------------------------------------------------------------------------------
def test_forgot_and_reset_answers_are_byte_identical_across_addresses(reset_server, smtp_server):
    """A registered, a pending and an unknown address (same masked form, rs***@example.com):
    the forgot answer, the page it leads to and a wrong code's answer are the same bytes but
    for the CSRF token and the typed address; only the emails differ."""
    _owner, registered = account(reset_server, smtp_server, "rs-registered")
    pending = new_address("rs-pending")
    assert_redirect(Browser(reset_server.base_url).signup(pending), "/verify")
    smtp_server.wait_for(pending)
    unknown = new_address("rs-unknown")
    seen, subjects = [], []
    for address in (registered, pending, unknown):
        person = Person(reset_server.base_url)
        count = len(smtp_server.to(address))
        forgot = person.forgot(address)
        page = person.get("/password/reset")
        message = smtp_server.wait_for(address, count + 1)
        sent = re.search(r"^\s{4}(\d{6})\s*$", text_of(message), re.MULTILINE)
        guess = wrong_code(sent.group(1)) if sent else "000000"
        answer = person.reset(address, guess)
        seen.append((comparable(forgot), comparable(page, address), comparable(answer, address)))
        subjects.append(message["Subject"])
    assert seen[0] == seen[1] == seen[2]
    assert seen[0][0][0] == 303 and seen[0][1][0] == 200 and seen[0][2][0] == 400
    assert subjects == ["Your password reset code", "Your verification code",
                        "No account uses this address"]


def test_a_reset_code_guessed_past_the_caps_is_refused(reset_server, smtp_server):
    """CODE_MAX_ATTEMPTS wrong codes kill the code (the right one is refused after, and that
    counts too); with REGISTRATION_MAX_ATTEMPTS refused codes the address is locked (429,
    Retry-After) even for a new code, on both workers; the link still works."""
    _owner, address = account(reset_server, smtp_server, "rs-caps")
    guesser = Person(reset_server.base_url, new_connection_per_request=True)
    guesser.forgot(address)
    code, _link = reset_email(smtp_server, address, 2)
    for _ in range(CODE_MAX):
        assert guesser.reset(address, wrong_code(code)).status_code == 400
    refused = guesser.reset(address, code)  # the third refused code: the address's cap
    assert refused.status_code == 400 and "not right" in refused.text
    guesser.forgot(address)
    code, link = reset_email(smtp_server, address, 3)
    locked = guesser.reset(address, code)
    assert locked.status_code == 429 and int(locked.headers["Retry-After"]) > 0
    assert "Too many wrong codes for this address" in locked.text
    assert Person(reset_server.base_url).login(address, NEW_PASSWORD).status_code == 400
    assert_redirect(guesser.reset_by_link(link), "/account")


# -- sign-in ----------------------------------------------------------------------------------
def test_sign_in_of_an_unfinished_signup_goes_to_verify(reset_server, smtp_server):
    """The signup password of a pending address: /verify with a new code, verified with the
    code alone in this browser; a wrong password gets the ordinary answer and no email."""
    address = new_address("rs-unfinished")
    assert_redirect(Browser(reset_server.base_url).signup(address), "/verify")
    smtp_server.wait_for(address)
    other = Person(reset_server.base_url)
    wrong = other.login(address, "not the signup password")
    assert wrong.status_code == 400 and "do not match an account" in wrong.text
    assert len(smtp_server.to(address)) == 1
    assert_redirect(other.login(address, PASSWORD), "/verify")
    assert "not verified yet" in other.get("/verify").text
    code, _link = code_and_link(smtp_server, address, 2)
    assert_redirect(other.verify(address, code), "/account")


def test_failed_sign_ins_are_capped_per_account_across_workers(reset_server, smtp_server):
    """LOGIN_MAX_FAILURES wrong passwords from new connections (either worker): then 429 in
    words with Retry-After, the right password included; a reset lifts it."""
    _owner, address = account(reset_server, smtp_server, "rs-throttle")
    for _ in range(LOGIN_MAX):
        attacker = Person(reset_server.base_url, new_connection_per_request=True)
        assert attacker.login(address, "a guessed password").status_code == 400
    refused = Person(reset_server.base_url).login(address)
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) > 0
    assert "Too many failed sign-ins for this address" in refused.text
    person = Person(reset_server.base_url)
    assert_redirect(person.forgot(address), "/password/reset")
    code, _link = reset_email(smtp_server, address, 2)
    assert_redirect(person.reset(address, code), "/account")
    assert_redirect(Person(reset_server.base_url).login(address, NEW_PASSWORD), "/account")


def test_no_reset_secret_reaches_logs_or_redis_in_clear(reset_server, smtp_server, redis_server):
    """Reset codes, link tokens and passwords appear neither in the logs nor in Redis."""
    _owner, address = account(reset_server, smtp_server, "rs-secrets")
    person = Person(reset_server.base_url)
    person.forgot(address)
    code, link = reset_email(smtp_server, address, 2)
    person.get(link)
    client = server_db(redis_server)
    stored = redis_text(dump_redis(client))
    token = link.rsplit("/", 1)[1]
    assert not contains_code(stored, code) and token.split("-", 1)[1] not in stored
    assert address not in "\n".join(dump_redis(client))  # key names
    assert_redirect(person.reset_by_link(link), "/account")
    logs = reset_server.output()
    assert token not in logs and token.split("-", 1)[1] not in logs
    assert NEW_PASSWORD not in logs and not contains_code(logs, code)
    assert "/password/reset/…" in logs
