"""Forgotten passwords in a real browser: Chromium (Playwright) against gunicorn, real Redis and
SMTP. Screenshots of the new pages go to test-artifacts/screenshots/<lang>/<viewport>/ and
axe's findings to test-artifacts/axe/<lang>-<viewport>-reset.json."""

from __future__ import annotations

import re

import pytest

from ..catalogs import compile_catalogs
from ..helpers import html_of, text_of
from .browser import (active_id, axe_source, chromium, email_code, new_page, run_axe,
                      save_axe_report, screenshot, submit, tab_to, wait_for_focus)
from .conftest import PASSWORD, Browser, code_and_link, new_address, start_gunicorn, wrong_code
from .test_browser import SERIOUS, wait_for_path

pytestmark = [pytest.mark.slow, pytest.mark.redis]
__all__ = ["axe_source", "chromium"]  # fixtures used by the tests below

NEW_PASSWORD = "a brand new long passphrase"
RESET_LINK_RE = re.compile(r"(https?://\S+/password/reset/[A-Za-z0-9_\-]+)")


@pytest.fixture(scope="module")
def reset_ui_server(tmp_path_factory, redis_server, smtp_server):
    """The app under gunicorn (2 workers), no email cooldown (a forgot right after the signup
    email must send), 3 failed sign-ins per account, on its own Redis db."""
    compile_catalogs()  # the Turkish pages need messages.mo (`make test` builds it too)
    yield from start_gunicorn(tmp_path_factory, redis_server, smtp_server, "gunicorn-reset-ui",
                              db=5, extra_env={"LOGIN_MAX_FAILURES": "3"})


def verified_account(server, smtp_server, label: str) -> str:
    """A new address signed up and verified (outside the browser under test)."""
    address = new_address(label)
    helper = Browser(server.base_url)
    assert helper.signup(address).status_code == 303
    assert helper.verify(address, code_and_link(smtp_server, address)[0]).status_code == 303
    return address


def nth_email(smtp_server, address: str, count: int):
    """The `count`-th email to `address` (not the newest: more may have come since)."""
    smtp_server.wait_for(address, count)
    return smtp_server.to(address)[count - 1]


def reset_link(smtp_server, address: str, count: int) -> str:
    """The reset link of the `count`-th email to `address`."""
    return RESET_LINK_RE.search(text_of(nth_email(smtp_server, address, count))).group(1)


def signs_in_with(server, address: str, password: str) -> bool:
    """True when /login takes this password (a separate HTTP client)."""
    answer = Browser(server.base_url).login(address, password)
    return answer.status_code == 303 and answer.headers["Location"].endswith("/account")


def choose_password(page, address: str) -> None:
    """Type the new password twice, submit, and land on /account signed in as `address`."""
    page.fill("#password", NEW_PASSWORD)
    page.fill("#confirm", NEW_PASSWORD)
    submit(page)
    wait_for_path(page, "/account")
    assert page.locator("#account-email").inner_text() == address


def test_forgot_email_code_new_password_account(chromium, reset_ui_server, smtp_server):
    """/login → "Forgot your password?" → the emailed code and a new password → /account."""
    address = verified_account(reset_ui_server, smtp_server, "b-reset-code")
    page = new_page(chromium, reset_ui_server, viewport="phone")
    page.goto("/login")
    page.get_by_role("link", name="Forgot your password?").click()
    wait_for_path(page, "/password/forgot")
    page.fill("#email", address)
    submit(page)
    wait_for_path(page, "/password/reset")
    assert "***@example.com" in page.locator("#sent-to").inner_text()
    assert page.locator("#email").input_value() == address
    wait_for_focus(page, "code")
    page.fill("#code", email_code(smtp_server, address, 2))
    choose_password(page, address)
    assert "Your password was changed" in page.locator(".flash").inner_text()
    assert smtp_server.wait_for(address, 3)["Subject"] == "Your password was changed"
    assert signs_in_with(reset_ui_server, address, NEW_PASSWORD)
    assert not signs_in_with(reset_ui_server, address, PASSWORD)
    page.watch.assert_clean()
    page.context.close()


def test_forgot_email_link_new_password_account(chromium, reset_ui_server, smtp_server):
    """The same with the emailed link, opened in another browser than the one that asked."""
    address = verified_account(reset_ui_server, smtp_server, "b-reset-link")
    asking = new_page(chromium, reset_ui_server)
    asking.goto("/password/forgot")
    asking.fill("#email", address)
    submit(asking)
    wait_for_path(asking, "/password/reset")
    page = new_page(chromium, reset_ui_server, viewport="phone")
    page.goto(reset_link(smtp_server, address, 2))
    assert page.locator("h1").inner_text() == "Choose a new password"
    choose_password(page, address)
    assert signs_in_with(reset_ui_server, address, NEW_PASSWORD)
    for each in (asking, page):
        each.watch.assert_clean()
        each.context.close()


def test_keyboard_only_reset(chromium, reset_ui_server, smtp_server):
    """From /login to /account by a password reset with the keyboard alone, the focus visible."""
    address = verified_account(reset_ui_server, smtp_server, "b-reset-keys")
    page = new_page(chromium, reset_ui_server)
    page.goto("/login")
    tab_to(page, "e.matches('main a[href=\"/password/forgot\"]')")
    page.keyboard.press("Enter")
    wait_for_path(page, "/password/forgot")
    tab_to(page, "e.id === 'email'")
    page.keyboard.type(address)
    page.keyboard.press("Enter")
    wait_for_path(page, "/password/reset")
    wait_for_focus(page, "code")  # the one thing to do now has the focus
    page.keyboard.type(email_code(smtp_server, address, 2))
    page.keyboard.press("Tab")
    assert active_id(page) == "password"
    page.keyboard.type(NEW_PASSWORD)
    page.keyboard.press("Tab")
    assert active_id(page) == "confirm"
    page.keyboard.type(NEW_PASSWORD)
    page.keyboard.press("Enter")
    wait_for_path(page, "/account")
    assert page.locator("#account-email").inner_text() == address
    page.watch.assert_clean()
    page.context.close()


def test_unfinished_signup_signs_in_to_verify(chromium, reset_ui_server, smtp_server):
    """Signing in with the password of a signup never verified leads to /verify, code only."""
    address = new_address("b-unfinished")
    assert Browser(reset_ui_server.base_url).signup(address).status_code == 303
    page = new_page(chromium, reset_ui_server)
    page.goto("/login")
    page.fill("#email", address)
    page.fill("#password", PASSWORD)
    submit(page)
    wait_for_path(page, "/verify")
    assert "not verified yet" in page.locator(".flash").inner_text()
    assert page.locator("input[name=password]").count() == 0
    page.fill("#code", email_code(smtp_server, address, 2))
    submit(page)
    wait_for_path(page, "/account")
    page.watch.assert_clean()
    page.context.close()


# -- the new pages: screenshots on a phone and a desktop, both languages, and axe-core -------
@pytest.mark.parametrize("viewport", ["phone", "desktop"])
@pytest.mark.parametrize("lang", ["en", "tr"])
def test_reset_pages_screenshot_and_accessibility(chromium, reset_ui_server, smtp_server,
                                                  axe_source, lang, viewport):
    """Every forgotten-password page and state: one <h1>, <html lang>, a screenshot, and no
    serious axe violation (the context bypasses the CSP only to inject axe)."""
    address = verified_account(reset_ui_server, smtp_server, f"walk-reset-{lang}-{viewport}")
    page = new_page(chromium, reset_ui_server, lang, viewport, bypass_csp=True)
    report: dict[str, list] = {}

    def check(name: str):
        assert page.locator("html").get_attribute("lang") == lang, name
        assert page.locator("h1").count() == 1, name
        screenshot(page, lang, viewport, name)
        report[name] = run_axe(page, axe_source)

    page.goto("/login")
    check("login")
    for _ in range(3):
        page.fill("#email", address)
        page.fill("#password", "a wrong password")
        submit(page)
    page.fill("#email", address)
    page.fill("#password", PASSWORD)
    with page.expect_response(lambda r: r.url.endswith("/login")) as answer:
        submit(page)
    assert answer.value.status == 429
    check("login_locked")
    page.goto("/password/forgot")
    check("forgot")
    page.fill("#email", "not an address")
    submit(page)
    check("forgot_errors")
    page.fill("#email", address)
    submit(page)
    wait_for_path(page, "/password/reset")
    check("reset")
    code = email_code(smtp_server, address, 2)
    page.fill("#code", wrong_code(code))
    page.fill("#password", NEW_PASSWORD)
    page.fill("#confirm", "not the same")
    submit(page)
    check("reset_errors")
    link = reset_link(smtp_server, address, 2)
    page.goto(link)
    check("reset_link")
    page.fill("#password", "short")
    page.fill("#confirm", "short")
    submit(page)
    check("reset_link_errors")
    page.fill("#password", NEW_PASSWORD)
    page.fill("#confirm", NEW_PASSWORD)
    submit(page)
    wait_for_path(page, "/account")
    check("account_after_reset")
    page.goto(link)
    check("reset_link_invalid")

    assert nth_email(smtp_server, address, 2)["Subject"] != nth_email(smtp_server, address, 3)[
        "Subject"]
    page.set_content(html_of(nth_email(smtp_server, address, 2)))
    screenshot(page, lang, viewport, "email_password_reset")
    page.set_content(html_of(nth_email(smtp_server, address, 3)))
    screenshot(page, lang, viewport, "email_password_changed")

    save_axe_report(lang, f"{viewport}-reset", {
        name: [{"id": v["id"], "impact": v["impact"], "nodes": len(v["nodes"])} for v in found]
        for name, found in report.items()})
    serious = {name: [(v["id"], v["impact"], v["help"], v["nodes"][:3]) for v in found
                      if v["impact"] in SERIOUS] for name, found in report.items()}
    assert not {name: found for name, found in serious.items() if found}, serious
    page.context.close()
