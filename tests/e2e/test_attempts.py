"""Guessing, enumeration and blocking over HTTP: gunicorn, a real redis-server, aiosmtpd.

What a visitor sees when codes or link passwords are refused, and what a signup over the email
allowance does, must not depend on the address's state (new, pending, already a user,
unknown), on a replayed cookie, or on whether a refused code was the right one.
"""

from __future__ import annotations

import html
import re

import pytest
import requests
from redis import Redis

from ..helpers import CODE_RE, text_of
from .conftest import (
    HTTP_TIMEOUT,
    PASSWORD,
    Browser,
    code_and_link,
    new_address,
    start_gunicorn,
    user_rows,
    wrong_code,
)
from .test_http import assert_redirect, pending_keys

pytestmark = [pytest.mark.slow, pytest.mark.redis, pytest.mark.usefixtures("fresh_redis")]

NOT_THE_PASSWORD = "not the password chosen at signup"


@pytest.fixture(scope="module")
def allowance_server(tmp_path_factory, redis_server, smtp_server):
    """The app under gunicorn allowing one email per address per hour (and no cooldown), so
    the second email to an address is over the allowance for the whole test."""
    yield from start_gunicorn(
        tmp_path_factory, redis_server, smtp_server, "gunicorn-allowance", db=3,
        extra_env={"RESEND_COOLDOWN_SECONDS": "0", "RESEND_MAX_PER_HOUR": "1"})


class CopiedCookie:
    """A browser's cookie copied once and sent unchanged with every request (a replay): any
    cookie the server sets in its answers is thrown away."""

    def __init__(self, browser: Browser):
        self.base_url = browser.base_url
        self.token = browser.get_form("/verify")
        self.cookie = "; ".join(f"{c.name}={c.value}" for c in browser.session.cookies)

    def post(self, path: str, data: dict) -> requests.Response:
        """POST a form with the copied cookie and the CSRF token it was given."""
        return requests.post(self.base_url + path, data={**data, "csrf_token": self.token},
                             headers={"Cookie": self.cookie}, allow_redirects=False,
                             timeout=HTTP_TIMEOUT)


def unsent_code(smtp_server, address: str) -> str:
    """A 6-digit code that no email to `address` carried (so it is surely wrong)."""
    sent = {match for message in smtp_server.to(address)
            for match in CODE_RE.findall(text_of(message))}
    return next(f"{n:06d}" for n in range(1_000_000) if f"{n:06d}" not in sent)


def refusal(response: requests.Response) -> str:
    """What a refused code's answer says, in short: "left N", "dead", "locked" or "not right"."""
    text = html.unescape(response.text)
    if response.status_code == 429:
        assert "Too many wrong" in text, text[:2000]
        return "locked"
    assert response.status_code == 400, (response.status_code, text[:2000])
    if "tried too many times" in text:
        return "dead"
    left = re.search(r"Attempts left: (\d+)\.", text)
    if left:
        return f"left {left.group(1)}"
    assert "That code is not right (or has expired)." in text, text[:2000]
    return "not right"


def comparable(page: str, *addresses: str) -> str:
    """A page with what legitimately differs between two answers taken out: CSRF tokens,
    numbers (a wait in seconds) and the addresses typed."""
    page = re.sub(r'(name="csrf_token"[^>]*value=")[^"]+', r"\1", page)
    for address in addresses:
        page = page.replace(address, "ADDRESS")
    return re.sub(r"\d+", "N", page)


def test_attempts_left_are_the_same_whatever_the_address_state(live_server, smtp_server,
                                                                  redis_server):
    """Issue 11 item 2: the signing-up browser's "attempts left" come from the server.

    The same sequence (wrong codes sent with a copied cookie, another browser's wrong code in
    between, the code tried to death, a resend, more wrong codes up to the per-address lock)
    gives the same answers for a new address, a pending one, one with an account, and one
    whose registration is gone (unknown). Counted in the cookie, a registered address would
    read "left 4" every time.
    """
    redis = redis_server.client()

    def run(state: str) -> list[str]:
        address = new_address(f"state-{state}")
        if state == "registered":
            owner = Browser(live_server.base_url)
            assert_redirect(owner.signup(address), "/verify")
            code, _link = code_and_link(smtp_server, address)
            assert_redirect(owner.verify(address, code), "/account")
        elif state == "pending":
            assert_redirect(Browser(live_server.base_url).signup(address), "/verify")
        probe = Browser(live_server.base_url)
        assert_redirect(probe.signup(address), "/verify")
        if state == "unknown":  # the registration has gone (as if it had expired)
            for key in pending_keys(redis):
                if redis.hget(key, "e").decode() == address:
                    redis.delete(key)
        copied = CopiedCookie(probe)

        def guess():
            return refusal(copied.post("/verify", {
                "email": address, "code": unsent_code(smtp_server, address)}))

        seen = [guess(), guess()]
        stranger = Browser(live_server.base_url).verify(
            address, unsent_code(smtp_server, address), password=PASSWORD)
        seen.append(refusal(stranger))
        seen += [guess(), guess(), guess()]
        assert_redirect(copied.post("/resend", {"email": address}), "/verify")
        seen += [guess() for _ in range(5)]
        return seen

    answers = {state: run(state) for state in ("new", "pending", "registered", "unknown")}
    # CODE_MAX_ATTEMPTS 5, REGISTRATION_MAX_ATTEMPTS 10: every refused code counts on both.
    expected = ["left 4", "left 3", "not right", "left 1", "left 0", "dead",
                "left 3", "left 2", "left 1", "left 0", "locked"]
    assert answers == {state: expected for state in answers}


def test_right_code_with_a_wrong_password_reads_like_a_wrong_code(live_server, smtp_server):
    """Issue 11 item 3: another browser giving the right code with a wrong password gets the
    answer a wrong code gets (nothing confirms the code), and it counts like one."""
    owner = Browser(live_server.base_url)
    address = new_address("rightcode")
    assert_redirect(owner.signup(address), "/verify")
    code, _link = code_and_link(smtp_server, address)

    other = Browser(live_server.base_url)
    right = other.verify(address, code, password="not the signup password")
    wrong = other.verify(address, wrong_code(code), password="not the signup password")
    assert right.status_code == wrong.status_code == 400
    assert NOT_THE_PASSWORD not in right.text
    assert comparable(right.text) == comparable(wrong.text)

    # Both counted on the code and the address: 5 - 2 - 1 left after the owner's wrong code.
    assert refusal(owner.verify(address, wrong_code(code))) == "left 2"
    assert_redirect(owner.verify(address, code), "/account")


def test_wrong_link_passwords_spend_the_address_allowance(capped_server, smtp_server):
    """Issue 11 item 9: wrong passwords on the link page count against
    REGISTRATION_MAX_ATTEMPTS (3 here) and, once it is spent, the link refuses every password,
    even the right one, and the code is refused too; the signing-up browser, which gives no
    password, still completes with the link."""
    owner = Browser(capped_server.base_url)
    address = new_address("linkcap")
    assert_redirect(owner.signup(address), "/verify")
    code, link = code_and_link(smtp_server, address)

    stranger = Browser(capped_server.base_url)
    for _ in range(3):
        assert stranger.confirm_link(link, password="a wrong guess at it").status_code == 400
    refused = stranger.confirm_link(link, password=PASSWORD)
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) > 0
    assert "Too many wrong" in refused.text
    assert stranger.verify(address, code, password=PASSWORD).status_code == 429
    assert stranger.get("/account").status_code == 302
    assert user_rows(capped_server.database, address) == []

    assert_redirect(owner.confirm_link(link), "/account")
    assert address in owner.get("/account").text


def test_signup_over_the_allowance_changes_nothing(allowance_server, smtp_server):
    """Issue 11 item 10: a signup that may not send its email (hourly cap) stores nothing: the
    code and link already emailed keep working, no email goes out, and the answer is the same
    "check your email" page with the wait for a pending, a registered and an unknown address."""
    server = allowance_server
    redis = Redis.from_url(server.env["REDIS_URL"])
    victim = Browser(server.base_url)
    pending = new_address("ovp")
    assert_redirect(victim.signup(pending), "/verify")
    code, link = code_and_link(smtp_server, pending)
    registered = new_address("ovr")
    owner = Browser(server.base_url)
    assert_redirect(owner.signup(registered), "/verify")
    assert_redirect(owner.verify(registered, code_and_link(smtp_server, registered)[0]),
                    "/account")
    unknown = new_address("ovu")
    assert_redirect(Browser(server.base_url).resend(unknown), "/verify")  # one email taken
    records = {key: redis.hgetall(key) for key in pending_keys(redis)}

    pages = {}
    for address in (pending, registered, unknown):
        mails = len(smtp_server.to(address))
        stranger = Browser(server.base_url)
        answer = stranger.signup(address, password="a stranger's own passphrase")
        assert_redirect(answer, "/verify")
        assert len(smtp_server.to(address)) == mails  # sent synchronously: none was sent
        page = stranger.get("/verify")
        assert page.status_code == 200 and "emailed this address recently" in page.text
        pages[address] = comparable(page.text, address)
    assert pages[pending] == pages[registered] == pages[unknown]
    assert {key: redis.hgetall(key) for key in pending_keys(redis)} == records

    assert victim.open_link(link).status_code == 200
    assert_redirect(victim.verify(pending, code), "/account")
    assert Browser(server.base_url).login(pending, "a stranger's own passphrase").status_code == 400
