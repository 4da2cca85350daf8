"""Signed-in sessions over HTTP against gunicorn (2 workers), real Redis and SMTP: signing out
ends every session of the user, and a copied cookie is refused afterwards."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from prometheus_client.parser import text_string_to_metric_families

from ..helpers import assert_redirect, text_of
from .conftest import PASSWORD, Browser, code_and_link, new_address, user_rows

pytestmark = [pytest.mark.slow, pytest.mark.redis, pytest.mark.usefixtures("fresh_redis")]


def signed_in(server, smtp_server, label: str) -> tuple[Browser, str]:
    """A browser that signed up and verified a new address: signed in on /account."""
    browser = Browser(server.base_url)
    address = new_address(label)
    assert_redirect(browser.signup(address), "/verify")
    code, _link = code_and_link(smtp_server, address)
    assert_redirect(browser.verify(address, code), "/account")
    return browser, address


def cookie_of(browser: Browser) -> str:
    """The browser's session cookie as it is now (what someone copying it would get)."""
    return browser.session.cookies.get("session")


def with_cookie(server, cookie: str) -> Browser:
    """A new browser carrying `cookie` as its session cookie."""
    browser = Browser(server.base_url)
    browser.session.cookies.set("session", cookie, domain=urlsplit(server.base_url).hostname,
                                path="/")
    return browser


def deleted_total(server) -> float:
    """signup_accounts_deleted_total as /metrics shows it (the sum over gunicorn's workers)."""
    text = Browser(server.base_url).get("/metrics").text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "signup_accounts_deleted_total":
                return sample.value
    return 0.0


def shows_account(browser: Browser, address: str) -> bool:
    """True when /account answers 200 with the address on it."""
    page = browser.get("/account")
    return page.status_code == 200 and address in page.text


def test_a_cookie_copied_before_logout_is_refused_after_it(live_server, smtp_server):
    """Copy the cookie, sign out, replay the copy: /account sends it to the sign-in page."""
    browser, address = signed_in(live_server, smtp_server, "replay")
    copied = cookie_of(browser)
    assert shows_account(with_cookie(live_server, copied), address)  # works while it lives

    assert_redirect(browser.post_form("/logout", {}), "/")
    old = with_cookie(live_server, copied)
    answer = old.get("/account")
    assert_redirect(answer, "/login")
    assert answer.headers.get("Set-Cookie", "").startswith("session=")  # the stale one cleared
    assert not shows_account(old, address)
    assert not shows_account(with_cookie(live_server, copied), address)


def test_logout_on_one_device_ends_the_session_on_another(live_server, smtp_server):
    """SPEC 8: signing out ends the user's other sessions; signing in again starts a new one."""
    laptop, address = signed_in(live_server, smtp_server, "twodevices")
    phone = Browser(live_server.base_url)
    assert_redirect(phone.login(address), "/account")
    assert shows_account(laptop, address) and shows_account(phone, address)

    assert_redirect(phone.post_form("/logout", {}), "/")
    assert_redirect(laptop.get("/account"), "/login")
    assert not shows_account(phone, address)

    assert_redirect(laptop.login(address), "/account")
    assert shows_account(laptop, address)


NEW_PASSWORD = "a brand new long passphrase"


def test_password_change_keeps_this_browser_and_refuses_the_others(live_server, smtp_server):
    """After a change: this browser stays signed in; another device and a copied cookie are
    refused; the owner is emailed; only the new password signs in."""
    laptop, address = signed_in(live_server, smtp_server, "chpw")
    phone = Browser(live_server.base_url)
    assert_redirect(phone.login(address), "/account")
    copied = cookie_of(laptop)

    wrong = laptop.post_form("/account/password", {
        "current_password": "not the password", "password": NEW_PASSWORD,
        "confirm": NEW_PASSWORD}, form_path="/account")
    assert wrong.status_code == 400 and "That is not your current password." in wrong.text
    assert shows_account(phone, address)  # a refused change ends nothing

    answer = laptop.post_form("/account/password", {
        "current_password": PASSWORD, "password": NEW_PASSWORD, "confirm": NEW_PASSWORD},
        form_path="/account")
    assert_redirect(answer, "/account")
    assert shows_account(laptop, address)
    assert_redirect(phone.get("/account"), "/login")
    assert_redirect(with_cookie(live_server, copied).get("/account"), "/login")

    notice = smtp_server.wait_for(address, 2)
    assert notice["Subject"] == "Your password was changed"
    assert f"{live_server.base_url}/password/forgot" in text_of(notice)
    rows = user_rows(live_server.database, address)
    assert len(rows) == 1 and rows[0]["password_hash"].startswith("$argon2id$")
    assert Browser(live_server.base_url).login(address, PASSWORD).status_code == 400
    assert_redirect(Browser(live_server.base_url).login(address, NEW_PASSWORD), "/account")
    logs = live_server.output()
    assert NEW_PASSWORD not in logs and PASSWORD not in logs


def test_delete_ends_every_session_and_the_address_signs_up_again(live_server, smtp_server):
    """Delete: the row goes, every session (this one, another device, a copy) is refused, a
    goodbye email; the same address then signs up and verifies as new, and no cookie of the
    deleted account opens the new one."""
    laptop, address = signed_in(live_server, smtp_server, "delete")
    phone = Browser(live_server.base_url)
    assert_redirect(phone.login(address), "/account")
    copied = cookie_of(laptop)
    deleted_before = deleted_total(live_server)

    answer = laptop.post_form("/account/delete", {"password": PASSWORD}, form_path="/account")
    assert_redirect(answer, "/")
    assert deleted_total(live_server) == deleted_before + 1  # summed over both workers
    assert user_rows(live_server.database, address) == []
    for browser in (laptop, phone, with_cookie(live_server, copied)):
        assert_redirect(browser.get("/account"), "/login")
    goodbye = smtp_server.wait_for(address, 2)
    assert goodbye["Subject"] == "Your account was deleted"
    assert f"{live_server.base_url}/signup" in text_of(goodbye)
    assert phone.login(address).status_code == 400

    again = Browser(live_server.base_url)
    assert_redirect(again.signup(address, password=NEW_PASSWORD), "/verify")
    code, _link = code_and_link(smtp_server, address, count=3)
    assert_redirect(again.verify(address, code), "/account")
    assert shows_account(again, address)
    for browser in (laptop, phone, with_cookie(live_server, copied)):
        assert not shows_account(browser, address)
    assert len(user_rows(live_server.database, address)) == 1
