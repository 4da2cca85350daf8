"""The real app under gunicorn, driven over HTTP like a browser, on real Redis and SMTP."""

from __future__ import annotations

import re
import secrets
import time
from collections import defaultdict

import pytest

from ..helpers import assert_see_other as assert_redirect
from ..helpers import html_of, text_of
from .conftest import (
    PASSWORD,
    Browser,
    code_and_link,
    contains_code,
    dump_redis,
    new_address,
    redis_text,
    user_rows,
    wrong_code,
)

pytestmark = [pytest.mark.slow, pytest.mark.redis, pytest.mark.usefixtures("fresh_redis")]

OTHER_PASSWORD = "purple elephant under the stairs"
NOT_RIGHT = "That code is not right (or has expired)."


def pending_keys(client) -> list[bytes]:
    """Keys under signup:pending: (found with SCAN)."""
    return list(client.scan_iter(match="signup:pending:*", count=500))


def sent_to_paragraph(html: str) -> str:
    """The verify page's sentence saying where the code went."""
    match = re.search(r'<p id="sent-to">(.*?)</p>', html, re.S)
    assert match, "the verify page does not say where the code went"
    return match.group(1)


def test_signup_code_flow_reaches_account(live_server, smtp_server):
    """Signup -> 303 /verify (masked address) -> code from the email -> 303 /account."""
    browser = Browser(live_server.base_url)
    address = new_address("code")
    typed = address[0].upper() + address[1:].replace("@example.com", "@Example.COM")
    assert_redirect(browser.signup(typed, name="Ada"), "/verify")

    page = browser.get("/verify")
    assert page.status_code == 200
    sent_to = sent_to_paragraph(page.text)
    local = address.split("@")[0]
    assert "@example.com" in sent_to and "*" in sent_to and local not in sent_to

    code, _link = code_and_link(smtp_server, address)
    assert_redirect(browser.verify(address, code), "/account")
    account = browser.get("/account")
    assert account.status_code == 200 and address in account.text and "Ada" in account.text


def test_link_get_changes_nothing_and_code_still_works(live_server, smtp_server, redis_server):
    """GET of the link shows a confirm button and leaves the pending hash as it was."""
    browser = Browser(live_server.base_url)
    address = new_address("linkget")
    assert_redirect(browser.signup(address), "/verify")
    code, link = code_and_link(smtp_server, address)
    client = redis_server.client()
    (key,) = pending_keys(client)
    before = client.hgetall(key)
    assert before[b"e"].decode() == address

    page = browser.open_link(link)
    assert page.status_code == 200
    assert re.search(r"<form[^>]*method=\"post\"", page.text)
    assert re.search(r"<button[^>]*type=\"submit\"[^>]*>\s*Confirm my address", page.text)
    assert 'name="password"' not in page.text  # the signing-up browser needs no password
    assert page.headers["Referrer-Policy"] == "no-referrer"
    scanner = Browser(live_server.base_url).open_link(link)  # a mail scanner's prefetch
    assert scanner.status_code == 200 and 'name="password"' in scanner.text

    assert pending_keys(client) == [key]
    assert client.hgetall(key) == before
    assert user_rows(live_server.database, address) == []

    assert_redirect(browser.verify(address, code), "/account")


def test_link_confirm_post_verifies(live_server, smtp_server, redis_server):
    """POST of the link page's confirm form verifies and lands on /account."""
    browser = Browser(live_server.base_url)
    address = new_address("linkpost")
    assert_redirect(browser.signup(address), "/verify")
    code, link = code_and_link(smtp_server, address)
    assert browser.open_link(link).status_code == 200
    assert_redirect(browser.confirm_link(link), "/account")
    account = browser.get("/account")
    assert account.status_code == 200 and address in account.text
    assert pending_keys(redis_server.client()) == []
    assert len(user_rows(live_server.database, address)) == 1

    # SPEC 8: neither the access log nor the app's log shows the token, the code or the password.
    logs = live_server.output()
    assert "/verify/\u2026" in logs
    token = link.rsplit("/", 1)[1]
    assert token not in logs and PASSWORD not in logs and not contains_code(logs, code)


def test_resend_kills_old_code_and_link(live_server, smtp_server):
    """After a resend the old code answers 400 and the old link 404; the new ones work."""
    browser = Browser(live_server.base_url)
    address = new_address("resend")
    assert_redirect(browser.signup(address), "/verify")
    old_code, old_link = code_and_link(smtp_server, address)
    assert_redirect(browser.resend(address), "/verify")
    new_code, new_link = code_and_link(smtp_server, address, count=2)
    assert new_link != old_link

    if old_code != new_code:  # one chance in a million that the new code is the same
        refused = browser.verify(address, old_code)
        assert refused.status_code == 400 and NOT_RIGHT in refused.text
    assert browser.open_link(old_link).status_code == 404
    assert browser.open_link(new_link).status_code == 200
    assert_redirect(browser.verify(address, new_code), "/account")
    assert address in browser.get("/account").text


def test_wrong_code_attempts_left_only_for_signup_browser(live_server, smtp_server):
    """A wrong code answers 400; only the signing-up browser is told the attempts left."""
    browser = Browser(live_server.base_url)
    address = new_address("wrong")
    assert_redirect(browser.signup(address), "/verify")
    code, _link = code_and_link(smtp_server, address)

    mine = browser.verify(address, wrong_code(code))
    assert mine.status_code == 400
    assert NOT_RIGHT in mine.text and "Attempts left: 4." in mine.text

    other = Browser(live_server.base_url).verify(address, wrong_code(code), password=PASSWORD)
    assert other.status_code == 400
    assert NOT_RIGHT in other.text and "Attempts left" not in other.text

    assert_redirect(browser.verify(address, code), "/account")


def test_per_code_cap_kills_the_code(capped_server, smtp_server):
    """Past CODE_MAX_ATTEMPTS wrong codes the right code no longer works (and counts)."""
    browser = Browser(capped_server.base_url)
    address = new_address("codecap")
    assert_redirect(browser.signup(address), "/verify")
    code, _link = code_and_link(smtp_server, address)
    for _ in range(2):
        assert browser.verify(address, wrong_code(code)).status_code == 400
    dead = browser.verify(address, code)
    assert dead.status_code == 400 and "tried too many times" in dead.text
    assert user_rows(capped_server.database, address) == []

    # The refused right code counted against the address too (3 of REGISTRATION_MAX_ATTEMPTS
    # 3), so even a resent code is refused now: a dead code counts like any refused code.
    assert_redirect(browser.resend(address), "/verify")
    new_code, _new_link = code_and_link(smtp_server, address, count=2)
    locked = browser.verify(address, new_code)
    assert locked.status_code == 429 and int(locked.headers["Retry-After"]) > 0


def test_per_address_cap_refuses_a_fresh_code_with_429(capped_server, smtp_server):
    """Past REGISTRATION_MAX_ATTEMPTS wrong codes even a fresh right code gets 429 + Retry-After."""
    browser = Browser(capped_server.base_url)
    address = new_address("addrcap")
    assert_redirect(browser.signup(address), "/verify")
    code, _link = code_and_link(smtp_server, address)
    for _ in range(2):
        assert browser.verify(address, wrong_code(code)).status_code == 400
    assert_redirect(browser.resend(address), "/verify")
    code, _link = code_and_link(smtp_server, address, count=2)
    assert browser.verify(address, wrong_code(code)).status_code == 400  # the 3rd wrong code

    assert_redirect(browser.resend(address), "/verify")
    code, link = code_and_link(smtp_server, address, count=3)
    locked = browser.verify(address, code)
    assert locked.status_code == 429
    assert 0 < int(locked.headers["Retry-After"]) <= 86400
    assert "Too many wrong codes" in locked.text
    assert user_rows(capped_server.database, address) == []

    # The link is not affected by wrong codes (SPEC 3).
    assert_redirect(browser.confirm_link(link), "/account")


def test_second_browser_needs_the_password(live_server, smtp_server):
    """Another browser's code or link is refused without the signup password, accepted with it."""
    owner = Browser(live_server.base_url)
    address = new_address("other")
    assert_redirect(owner.signup(address), "/verify")
    code, link = code_and_link(smtp_server, address)

    phone = Browser(live_server.base_url)
    refused = phone.verify(address, code)
    assert refused.status_code == 400 and "password" in refused.text
    page = phone.open_link(link)
    assert page.status_code == 200 and 'name="password"' in page.text
    assert phone.confirm_link(link).status_code == 400
    assert phone.confirm_link(link, password="not the signup password").status_code == 400
    assert phone.get("/account").status_code == 302  # still signed out
    assert user_rows(live_server.database, address) == []

    assert_redirect(phone.verify(address, code, password=PASSWORD), "/account")
    assert address in phone.get("/account").text

    address = new_address("otherlink")
    assert_redirect(owner.signup(address), "/verify")
    _code, link = code_and_link(smtp_server, address)
    laptop = Browser(live_server.base_url)
    assert laptop.confirm_link(link).status_code == 400
    assert_redirect(laptop.confirm_link(link, password=PASSWORD), "/account")
    assert address in laptop.get("/account").text


def test_used_link_answers_404_offering_resend(live_server, smtp_server):
    """A used (or never issued) link answers 404 with a page that links to /resend."""
    browser = Browser(live_server.base_url)
    address = new_address("used")
    assert_redirect(browser.signup(address), "/verify")
    _code, link = code_and_link(smtp_server, address)
    assert_redirect(browser.confirm_link(link), "/account")

    for visitor in (browser, Browser(live_server.base_url)):
        page = visitor.open_link(link)
        assert page.status_code == 404
        assert 'href="/resend"' in page.text
        assert page.headers["Referrer-Policy"] == "no-referrer"
    again = browser.post_form(link, {}, form_path="/resend")
    assert again.status_code == 404 and 'href="/resend"' in again.text
    unknown = browser.open_link(f"/verify/{secrets.token_urlsafe(32)}")
    assert unknown.status_code == 404 and 'href="/resend"' in unknown.text


def test_verified_address_signing_up_again(live_server, smtp_server, redis_server):
    """A verified address signing up again answers as new, mails the owner, changes nothing."""
    owner = Browser(live_server.base_url)
    address = new_address("taken")
    assert_redirect(owner.signup(address), "/verify")
    code, _link = code_and_link(smtp_server, address)
    assert_redirect(owner.verify(address, code), "/account")
    (row,) = user_rows(live_server.database, address)

    fresh = new_address("fresh")
    as_new = Browser(live_server.base_url).signup(fresh, password=OTHER_PASSWORD)
    again = Browser(live_server.base_url).signup(address, password=OTHER_PASSWORD)
    assert again.status_code == as_new.status_code == 303
    assert again.headers["Location"] == as_new.headers["Location"]

    notice = smtp_server.wait_for(address, 2)
    assert notice["Subject"] == "You already have an account"
    body = text_of(notice)
    assert f"{live_server.base_url}/login" in body
    assert "/verify/" not in body and not re.search(r"^\s{4}\d{6}\s*$", body, re.M)

    # Nothing stored for the taken address: the only pending registration is the fresh one.
    client = redis_server.client()
    assert [client.hget(key, "e").decode() for key in pending_keys(client)] == [fresh]

    assert_redirect(Browser(live_server.base_url).login(address, PASSWORD), "/account")
    assert Browser(live_server.base_url).login(address, OTHER_PASSWORD).status_code == 400
    assert [dict(r) for r in user_rows(live_server.database, address)] == [dict(row)]


def test_signup_again_while_pending_replaces_code_and_link(live_server, smtp_server, redis_server):
    """A second signup for a pending address kills the old code and link; the new ones work."""
    browser = Browser(live_server.base_url)
    address = new_address("again")
    assert_redirect(browser.signup(address), "/verify")
    old_code, old_link = code_and_link(smtp_server, address)
    assert_redirect(browser.signup(address, password=OTHER_PASSWORD), "/verify")
    new_code, new_link = code_and_link(smtp_server, address, count=2)
    assert len(pending_keys(redis_server.client())) == 1

    assert browser.open_link(old_link).status_code == 404
    if old_code != new_code:  # one chance in a million that the new code is the same
        refused = browser.verify(address, old_code)
        assert refused.status_code == 400 and NOT_RIGHT in refused.text
    assert browser.open_link(new_link).status_code == 200
    assert_redirect(browser.confirm_link(new_link), "/account")

    # The replacement carried the new password: it signs in, the first one does not.
    assert Browser(live_server.base_url).login(address, PASSWORD).status_code == 400
    assert_redirect(Browser(live_server.base_url).login(address, OTHER_PASSWORD), "/account")


def test_redis_holds_only_digests_and_one_hash_per_registration(live_server, smtp_server,
                                                                redis_server):
    """Redis keeps no code, token or password in clear; verification removes the record."""
    users_before = len(user_rows(live_server.database))
    browser = Browser(live_server.base_url)
    address = new_address("redis")
    assert_redirect(browser.signup(address), "/verify")
    code, link = code_and_link(smtp_server, address)
    token = link.rsplit("/", 1)[1]
    client = redis_server.client()

    dump = dump_redis(client)
    text = redis_text(dump)
    assert not contains_code(text, code)
    assert token not in text and PASSWORD not in text
    assert all(key.startswith("signup:") for key in dump)
    assert not any(address in key for key in dump)  # addresses never appear in key names
    pending = {key: entry for key, entry in dump.items() if key.startswith("signup:pending:")}
    assert len(pending) == 1
    ((kind, record, ttl),) = pending.values()
    assert kind == "hash"
    assert 86000 <= ttl <= 86400
    assert record[b"p"].startswith(b"$argon2id$")  # the hash's head (app/pending/redis_format.py)

    assert_redirect(browser.verify(address, code), "/account")
    after = dump_redis(client)
    assert not [key for key in after if key.startswith("signup:pending:")]
    rows = user_rows(live_server.database, address)
    assert len(rows) == 1 and rows[0]["password_hash"].startswith("$argon2id$")
    assert len(user_rows(live_server.database)) == users_before + 1


def test_three_workers_ten_registrations(three_worker_server, smtp_server):
    """Under 3 workers, 10 registrations in a row succeed with signup and verify served by
    different workers.

    Which worker accepts a connection is the kernel's choice, so the others are paused while
    the chosen one serves (GunicornServer.only_worker): registration n signs up on worker n % 3
    and verifies on worker (n + 1) % 3, the same on every run.
    """
    pids = three_worker_server.worker_pids()
    chosen = {}  # step -> pid made to serve it
    for number in range(10):
        browser = Browser(three_worker_server.base_url, new_connection_per_request=True)
        address = new_address(f"worker{number}")
        step = f"reg{number}-signup"
        chosen[step] = pids[number % 3]
        with three_worker_server.only_worker(chosen[step]):
            assert_redirect(browser.signup(address, headers={"X-E2E-Step": step}), "/verify")
        code, _link = code_and_link(smtp_server, address)
        step = f"reg{number}-verify"
        chosen[step] = pids[(number + 1) % 3]
        with three_worker_server.only_worker(chosen[step]):
            assert_redirect(browser.verify(address, code, headers={"X-E2E-Step": step}),
                            "/account")
        assert address in browser.get("/account").text
        assert len(user_rows(three_worker_server.database, address)) == 1

    def served_by() -> dict:
        """step -> pids that answered its POST, from the access log."""
        found = defaultdict(set)
        for line in three_worker_server.access_log().splitlines():
            match = re.match(r'^<(\d+)> (\d{3}) "POST \S+ [^"]*" step=(reg\d+-\w+)$', line)
            if match:
                found[match.group(3)].add(int(match.group(1)))
        return found

    # A worker writes its access-log line after the response: wait (bounded) for all 20.
    deadline = time.monotonic() + 10
    while len(served_by()) < len(chosen) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert served_by() == {step: {pid} for step, pid in chosen.items()}


SPOOFED = "evil.example"
URL_RE = re.compile(r"https?://[^\s\"'<>]+")


def urls_in(message) -> list[str]:
    """Every http(s) URL in an email, text and HTML parts."""
    return URL_RE.findall(text_of(message)) + URL_RE.findall(html_of(message))


@pytest.mark.parametrize("spoof", [
    {"Host": SPOOFED},
    {"X-Forwarded-Host": SPOOFED},
    {"Host": SPOOFED, "X-Forwarded-Host": SPOOFED, "X-Forwarded-Proto": "https"},
], ids=["host", "x-forwarded-host", "both"])
def test_emailed_links_never_come_from_request_headers(proxied_server, smtp_server, spoof):
    """No APP_BASE_URL, TRUSTED_PROXIES=1: with a spoofed Host / X-Forwarded-Host, the
    verification link, the "existing account" sign-in and signup links and the "no signup
    waiting" link all point at http://127.0.0.1:<PORT>, what `make run` serves."""
    base = proxied_server.base_url  # http://127.0.0.1:<port>, the server's PORT
    browser = Browser(base)
    address = new_address("spoof")
    assert_redirect(browser.signup(address, headers=spoof), "/verify")
    verification = smtp_server.wait_for(address)
    code, link = code_and_link(smtp_server, address)
    # requests files cookies under the Host header's name: keep sending it.
    assert_redirect(browser.verify(address, code, headers=spoof), "/account")

    again = Browser(base)
    assert_redirect(again.signup(address, headers=spoof), "/verify")
    existing = smtp_server.wait_for(address, 2)
    stranger = new_address("spoof-unknown")
    assert_redirect(Browser(base).post_form("/resend", {"email": stranger}, headers=spoof),
                    "/verify")
    unknown = smtp_server.wait_for(stranger)

    assert link.startswith(f"{base}/verify/")
    assert f"{base}/login" in urls_in(existing) and f"{base}/signup" in urls_in(unknown)
    for message in (verification, existing, unknown):
        urls = urls_in(message)
        assert urls and all(url.startswith(base + "/") for url in urls), urls
        assert SPOOFED not in text_of(message) + html_of(message)


def test_health_over_http(live_server, smtp_server):
    """/health answers 200 JSON with the SPEC section 9 keys and a healthy Redis."""
    health = Browser(live_server.base_url).get("/health")
    assert health.status_code == 200
    assert health.headers["Content-Type"].startswith("application/json")
    body = health.json()
    assert {"status", "version", "redis", "pending_registrations", "database",
            "mail"} <= body.keys()
    assert body["status"] == "healthy" and body["version"]
    assert {"status", "connected_clients", "used_memory_human", "uptime_in_seconds",
            "latency_ms"} <= body["redis"].keys()
    assert body["redis"]["status"] == "healthy"
    pending = body["pending_registrations"]
    assert (pending["total"], pending["backend"], pending["redis_connected"]) == (0, "redis", True)
    assert body["database"]["status"] == "healthy"
    assert (body["mail"]["status"], body["mail"]["last_error"]) == ("configured", None)

    browser = Browser(live_server.base_url)
    assert_redirect(browser.signup(new_address("health")), "/verify")
    assert browser.get("/health").json()["pending_registrations"]["total"] == 1
