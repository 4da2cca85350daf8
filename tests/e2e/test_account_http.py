"""Signed-in sessions over HTTP against gunicorn (2 workers), real Redis and SMTP: signing out
ends every session of the user, and a copied cookie is refused afterwards."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from .conftest import Browser, code_and_link, new_address

pytestmark = [pytest.mark.slow, pytest.mark.redis]


@pytest.fixture(autouse=True)
def fresh_redis(redis_url):
    """Each test starts on an empty redis-server (users persist: every test uses new addresses)."""
    return redis_url


def assert_redirect(response, path: str) -> None:
    """A redirect (302 from a GET, 303 from a POST) to `path`."""
    assert response.status_code in (302, 303), (response.status_code, response.text[:500])
    assert urlsplit(response.headers["Location"]).path == path


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
