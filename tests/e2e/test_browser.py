"""The person's experience in a real browser: Chromium (Playwright) against gunicorn, real Redis
and SMTP. Screenshots of every page go to test-artifacts/screenshots/<lang>/<viewport>/."""

from __future__ import annotations

import re
import time

import pytest
from redis import Redis

from app.pending.redis_store import RedisStore
from app.security import Digester

from ..helpers import code_from, html_of, text_of
from .browser import (COOLDOWN_SECONDS, active_id, axe_source, chromium, email_code, email_link,
                      fill_signup, new_page, run_axe, save_axe_report, screenshot, submit,
                      tab_to, ui_server, wait_for_focus, wait_until)
from .conftest import PASSWORD, Browser, new_address, user_rows, wrong_code

pytestmark = [pytest.mark.slow, pytest.mark.redis]
__all__ = ["axe_source", "chromium", "ui_server"]  # fixtures used by the tests below

SERIOUS = ("serious", "critical")
NEW_PASSWORD = "a brand new long passphrase"


def wait_for_path(page, path: str) -> None:
    """Wait until the page's URL path is `path`."""
    page.wait_for_url(re.compile(rf"^https?://[^/]+{re.escape(path)}(\?.*)?$"))


def change_password(page, current: str, new: str) -> None:
    """Fill in and send /account's change-password form (the page must show /account)."""
    page.fill("#current_password", current)
    page.fill("#new_password", new)
    page.fill("#new_confirm", new)
    page.locator("form[action='/account/password'] button[type=submit]").click()


def delete_account(page, password: str) -> None:
    """Fill in and send /account's delete form (the page must show /account)."""
    page.fill("#delete_password", password)
    page.locator("form[action='/account/delete'] button[type=submit]").click()


def signed_up_and_in(chromium, ui_server, smtp_server, label, **options):
    """A new page that signed up a new address and verified it: on /account."""
    page = new_page(chromium, ui_server, **options)
    address = new_address(label)
    fill_signup(page, address, PASSWORD)
    wait_for_path(page, "/verify")
    page.fill("#code", email_code(smtp_server, address))
    submit(page)
    wait_for_path(page, "/account")
    return page, address


def test_code_flow_from_signup_to_account(chromium, ui_server, smtp_server):
    """Signup, the code read from the SMTP server, typed into /verify, /account shown."""
    page = new_page(chromium, ui_server, viewport="phone")
    address = new_address("b-code")
    fill_signup(page, address, PASSWORD, name="Ada")
    wait_for_path(page, "/verify")
    sent_to = page.locator("#sent-to").inner_text()
    assert "***@example.com" in sent_to and "60 minutes" in sent_to
    assert address.split("@")[0] not in sent_to  # the address is masked
    wait_for_focus(page, "code")  # the one thing to do here has the focus
    code_input = page.locator("#code")
    assert code_input.get_attribute("inputmode") == "numeric"
    assert code_input.get_attribute("autocomplete") == "one-time-code"

    code = email_code(smtp_server, address)
    code_input.fill(f"{code[:3]} {code[3:]}")  # as people copy it
    submit(page)
    wait_for_path(page, "/account")
    assert page.locator("#account-email").inner_text() == address
    assert "Ada" in page.locator("main").inner_text()
    page.watch.assert_clean()
    page.context.close()


def test_link_flow_confirms_with_one_press(chromium, ui_server, smtp_server):
    """The emailed link shows a confirm page (GET changes nothing); its button signs in."""
    page = new_page(chromium, ui_server)
    address = new_address("b-link")
    fill_signup(page, address, PASSWORD)
    wait_for_path(page, "/verify")
    page.goto(email_link(smtp_server, address))
    assert page.locator("h1").inner_text() == "Confirm your address"
    assert page.locator("input[name=password]").count() == 0  # the signing-up browser
    submit(page)
    wait_for_path(page, "/account")
    assert page.locator("#account-email").inner_text() == address
    page.watch.assert_clean()
    page.context.close()


def test_resend_countdown_ticks_then_enables_the_button(chromium, ui_server, smtp_server):
    """During the cooldown the resend button is disabled and a countdown ticks; then it works."""
    page = new_page(chromium, ui_server)
    address = new_address("b-resend")
    fill_signup(page, address, PASSWORD)
    wait_for_path(page, "/verify")
    resend = page.locator("form[action='/resend'] button[type=submit]")
    countdown = page.locator("#resend-countdown")
    assert resend.is_disabled()
    first = countdown.locator("time").inner_text()
    assert re.fullmatch(r"0:(0[1-9]|10)", first), first
    page.wait_for_timeout(1500)
    if countdown.locator("time").count():  # still counting: it moved on
        assert countdown.locator("time").inner_text() < first
    wait_until(page, "!document.querySelector(\"form[action='/resend'] button\").disabled",
               timeout=COOLDOWN_SECONDS + 5)
    assert countdown.inner_text() == "You can ask for a new code now."
    assert page.locator("[data-countdown-status]").inner_text() == "You can ask for a new code now."
    resend.click()
    wait_for_path(page, "/verify")
    assert "we've sent a new code" in page.locator(".flash").inner_text()
    assert page.locator("#resend-countdown").is_visible()  # a new cooldown started
    new_code = email_code(smtp_server, address, count=2)
    page.fill("#code", new_code)
    submit(page)
    wait_for_path(page, "/account")
    page.watch.assert_clean()
    page.context.close()


def test_resend_cooldown_without_javascript(chromium, ui_server, smtp_server):
    """Without JavaScript the page says how long to wait; pressing early answers 429 in words."""
    page = new_page(chromium, ui_server, java_script_enabled=False)
    address = new_address("b-nojs")
    fill_signup(page, address, PASSWORD)
    wait_for_path(page, "/verify")
    page.goto("/resend")
    assert page.locator("#email").input_value() == address
    assert re.search(r"You can ask for a new code in 0:[01]\d\.",
                     page.locator("#resend-countdown").inner_text())
    button = page.locator("main form button[type=submit]")
    assert button.is_enabled()  # nothing to re-enable it without a script: the server decides
    with page.expect_response(lambda r: r.url.endswith("/resend")) as answer:
        button.click()
    assert answer.value.status == 429
    assert re.search(r"You can ask for a new code in \d+ seconds?\.",
                     page.locator("#email-error").inner_text())
    wait_for_focus(page, "email")
    page.context.close()


@pytest.mark.parametrize("how", ["link", "code"])
def test_waiting_page_moves_on_after_verification_elsewhere(chromium, ui_server, smtp_server, how):
    """/verify in the signing-up browser moves on by itself to "verified — sign in"."""
    waiting = new_page(chromium, ui_server)
    address = new_address(f"b-away-{how}")
    fill_signup(waiting, address, PASSWORD)
    wait_for_path(waiting, "/verify")

    elsewhere = new_page(chromium, ui_server, viewport="phone")
    if how == "link":
        elsewhere.goto(email_link(smtp_server, address))
        elsewhere.fill("#password", PASSWORD)  # another browser: the signup password too
    else:
        elsewhere.goto("/verify")
        elsewhere.fill("#email", address)
        elsewhere.fill("#code", email_code(smtp_server, address))
        elsewhere.fill("#password", PASSWORD)
    submit(elsewhere)
    wait_for_path(elsewhere, "/account")

    wait_for_path(waiting, "/verify/done")  # polling /verify/status every 4 s
    assert waiting.locator("h1").inner_text() == "Your address is verified"
    assert waiting.locator("main a.button").get_attribute("href") == "/login"
    # It proved nothing itself, so it is not signed in: /account asks to sign in.
    waiting.goto("/account")
    wait_for_path(waiting, "/login")
    assert waiting.locator("#email").input_value() == address  # but the address is filled in
    for page in (waiting, elsewhere):
        page.watch.assert_clean()
        page.context.close()


def wait_for_email_allowance(server, address: str) -> None:
    """Wait (at most the cooldown) until the site may email `address` again, read from its
    Redis: a signup over the allowance stores nothing and does not mark its browser as the
    signing-up one, so a test of what that browser sees must sign up within the allowance."""
    client = Redis.from_url(server.env["REDIS_URL"])
    address_id = Digester(server.env["SECRET_KEY"]).address_id(address)
    cooldown = RedisStore(client).key("mail:cooldown", address_id)
    deadline = time.monotonic() + COOLDOWN_SECONDS + 5
    try:
        while client.exists(cooldown):
            assert time.monotonic() < deadline, "the email cooldown did not end"
            time.sleep(0.1)
    finally:
        client.close()


def test_status_answers_only_for_this_browsers_signup(chromium, ui_server, smtp_server):
    """/verify/status: "none" without a signup, "pending" (never "verified") for a taken address."""
    owner = Browser(ui_server.base_url)
    taken = new_address("b-taken")
    assert owner.signup(taken).status_code == 303
    assert owner.verify(taken, email_code(smtp_server, taken)).status_code == 303
    wait_for_email_allowance(ui_server, taken)

    page = new_page(chromium, ui_server)
    page.goto("/")
    assert page.evaluate("fetch('/verify/status').then(r => r.json())") == {"status": "none"}
    fill_signup(page, taken, "another long passphrase here")
    wait_for_path(page, "/verify")
    assert page.evaluate("fetch('/verify/status').then(r => r.json())") == {"status": "pending"}
    page.wait_for_timeout(5000)  # a poll has happened: the page stays where it is
    assert page.url.endswith("/verify")
    page.context.close()


def test_keyboard_only_signup(chromium, ui_server, smtp_server):
    """From the start page to /account with the keyboard alone, the focus always visible."""
    page = new_page(chromium, ui_server)
    address = new_address("b-keys")
    page.goto("/")
    tab_to(page, "e.matches('main a.button')")
    page.keyboard.press("Enter")
    wait_for_path(page, "/signup")
    tab_to(page, "e.id === 'email'")
    page.keyboard.type(address)
    page.keyboard.press("Tab")
    assert active_id(page) == "password"
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Tab")
    assert active_id(page) == "confirm"
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    wait_for_path(page, "/verify")
    wait_for_focus(page, "code")
    page.keyboard.type(email_code(smtp_server, address))
    page.keyboard.press("Enter")
    wait_for_path(page, "/account")
    assert page.locator("#account-email").inner_text() == address
    page.watch.assert_clean()
    page.context.close()


def test_errors_are_next_to_fields_summarised_announced_and_focused(chromium, ui_server):
    """A bad signup: summary (role=alert) on top, each error by its field, focus on the first."""
    page = new_page(chromium, ui_server)
    page.goto("/signup")
    page.fill("#email", "not an address")
    page.fill("#password", "short")
    page.fill("#confirm", "different")
    submit(page)
    summary = page.locator("#error-summary")
    assert summary.get_attribute("role") == "alert"
    assert summary.locator("a[href='#email']").count() == 1
    assert summary.locator("a[href='#password']").count() == 1
    wait_for_focus(page, "email")
    email = page.locator("#email")
    assert email.get_attribute("aria-invalid") == "true"
    assert "email-error" in email.get_attribute("aria-describedby")
    assert "valid email address" in page.locator("#email-error").inner_text()
    assert email.input_value() == "not an address"  # what was typed stays
    assert page.locator("#password").input_value() == ""  # passwords never come back
    summary.locator("a[href='#password']").click()
    assert active_id(page) == "password"
    page.watch.assert_clean()
    page.context.close()


@pytest.mark.parametrize("answer", ["suggested", "typed"])
def test_typo_hint_is_offered_before_anything_is_stored(chromium, ui_server, smtp_server, answer):
    """"gmial.com" → "Did you mean …@gmail.com?"; nothing is sent until the person chooses."""
    page = new_page(chromium, ui_server, viewport="phone")
    local = new_address(f"b-typo-{answer}").split("@")[0]
    typed, suggested = f"{local}@gmial.com", f"{local}@gmail.com"
    fill_signup(page, typed, PASSWORD)
    wait_for_path(page, "/signup")
    assert page.locator("#suggestion-question").inner_text() == f"Did you mean {suggested}?"
    # The question has the focus, on its first answer.
    wait_until(page, "document.activeElement.value === 'suggested'", timeout=5)
    time.sleep(0.5)
    assert smtp_server.to(typed) == [] and smtp_server.to(suggested) == []  # nothing stored
    page.locator(f"button[name=choice][value={answer}]").click()
    wait_for_path(page, "/verify")
    chosen = suggested if answer == "suggested" else typed
    assert chosen.split("@")[1] in page.locator("#sent-to").inner_text()
    page.fill("#code", email_code(smtp_server, chosen))
    submit(page)
    wait_for_path(page, "/account")
    assert page.locator("#account-email").inner_text() == chosen
    other = typed if answer == "suggested" else suggested
    assert smtp_server.to(other) == []
    page.watch.assert_clean()
    page.context.close()


def test_turkish_signup_end_to_end(chromium, ui_server, smtp_server):
    """A Turkish browser gets Turkish pages (<html lang="tr">), a Turkish email, and finishes."""
    page = new_page(chromium, ui_server, lang="tr", viewport="phone")
    page.goto("/")
    assert page.locator("html").get_attribute("lang") == "tr"
    assert page.locator("h1").inner_text() == "Hesabınızı oluşturun"
    address = new_address("b-turkce")
    fill_signup(page, address, PASSWORD, name="Ayşe")
    wait_for_path(page, "/verify")
    assert page.locator("h1").inner_text() == "E-postanızı kontrol edin"
    assert "dakika geçerlidir" in page.locator("#sent-to").inner_text()

    message = smtp_server.wait_for(address)
    assert message["Subject"] == "Doğrulama kodunuz"
    assert "Doğrulama kodunuz:" in text_of(message)
    assert 'lang="tr"' in html_of(message) and "Adresimi doğrula" in html_of(message)
    page.fill("#code", "000000" if email_code(smtp_server, address) != "000000" else "111111")
    submit(page)
    assert "Bu kod doğru değil" in page.locator("#code-error").inner_text()
    page.fill("#code", email_code(smtp_server, address))
    submit(page)
    wait_for_path(page, "/account")
    assert page.locator("h1").inner_text() == "Hesabınız"
    assert "Ayşe" in page.locator("main").inner_text()
    rows = user_rows(ui_server.database, address)
    assert len(rows) == 1 and rows[0]["name"] == "Ayşe"
    page.watch.assert_clean()
    page.context.close()


def test_change_password_keeps_this_browser_signs_out_the_other(chromium, ui_server,
                                                                 smtp_server):
    """/account: a wrong current password is said by its field (focused); the right one changes
    the password, this browser stays, another browser is sent to the sign-in page."""
    page, address = signed_up_and_in(chromium, ui_server, smtp_server, "b-chpw",
                                     viewport="phone")
    phone = new_page(chromium, ui_server)
    phone.goto("/login")
    phone.fill("#email", address)
    phone.fill("#password", PASSWORD)
    submit(phone)
    wait_for_path(phone, "/account")

    change_password(page, "not the password at all", NEW_PASSWORD)
    assert "That is not your current password." in page.locator(
        "#current_password-error").inner_text()
    wait_for_focus(page, "current_password")
    assert page.locator("#new_password").input_value() == ""  # passwords never come back
    change_password(page, PASSWORD, NEW_PASSWORD)
    wait_for_path(page, "/account")
    assert "Your password was changed" in page.locator(".flash").inner_text()
    assert smtp_server.wait_for(address, 2)["Subject"] == "Your password was changed"

    phone.goto("/account")
    wait_for_path(phone, "/login")
    phone.fill("#email", address)
    phone.fill("#password", NEW_PASSWORD)
    submit(phone)
    wait_for_path(phone, "/account")
    for shown in (page, phone):
        shown.watch.assert_clean()
        shown.context.close()


def test_delete_account_then_sign_up_again(chromium, ui_server, smtp_server):
    """Delete with the password: signed out, a goodbye email; the address signs up again."""
    page, address = signed_up_and_in(chromium, ui_server, smtp_server, "b-delete", lang="tr")
    delete_account(page, "bu benim parolam değil")
    assert "Bu, parolanız değil." in page.locator("#delete_password-error").inner_text()
    wait_for_focus(page, "delete_password")
    delete_account(page, PASSWORD)
    wait_for_path(page, "/")
    assert "Hesabınız silindi" in page.locator(".flash").inner_text()
    assert smtp_server.wait_for(address, 2)["Subject"] == "Hesabınız silindi"
    assert user_rows(ui_server.database, address) == []
    page.goto("/account")
    wait_for_path(page, "/login")

    # The signup email's cooldown (not the goodbye email: a notice takes no allowance) may
    # still run: a signup that cannot send its email stores nothing (issue 11, item 10), so then
    # the person signs up again once the page's countdown allows a new email. (The SMTP
    # conversation ends before the signup answers, so the count is final at /verify.)
    before = len(smtp_server.to(address))
    fill_signup(page, address, NEW_PASSWORD)
    wait_for_path(page, "/verify")
    if len(smtp_server.to(address)) == before:
        wait_until(page, "!document.querySelector(\"form[action='/resend'] button\").disabled",
                   timeout=COOLDOWN_SECONDS + 5)
        fill_signup(page, address, NEW_PASSWORD)
        wait_for_path(page, "/verify")
        smtp_server.wait_for(address, before + 1)
    page.fill("#code", code_from(smtp_server.to(address)[-1]))  # the newest code
    submit(page)
    wait_for_path(page, "/account")
    assert page.locator("#account-email").inner_text() == address
    page.watch.assert_clean()
    page.context.close()


def test_language_switcher_remembers_the_choice(chromium, ui_server):
    """Türkçe in the header switches the page and every page after it, until English again."""
    page = new_page(chromium, ui_server)
    page.goto("/signup")
    assert page.locator("html").get_attribute("lang") == "en"
    page.locator(".lang-switch button[value=tr]").click()
    wait_for_path(page, "/signup")
    assert page.locator("html").get_attribute("lang") == "tr"
    assert page.locator("h1").inner_text() == "Kaydol"
    page.goto("/login")
    assert page.locator("h1").inner_text() == "Giriş yap"
    page.locator(".lang-switch button[value=en]").click()
    wait_for_path(page, "/login")
    assert page.locator("html").get_attribute("lang") == "en"
    page.watch.assert_clean()
    page.context.close()


# -- every page: screenshots on a phone and a desktop, in both languages, and axe-core -------
@pytest.mark.parametrize("viewport", ["phone", "desktop"])
@pytest.mark.parametrize("lang", ["en", "tr"])
def test_every_page_screenshot_and_accessibility(chromium, ui_server, smtp_server, axe_source,
                                                 lang, viewport):
    """Walk every page: one <h1>, <html lang>, a screenshot, and no serious axe violation.

    The context bypasses the page's CSP only so that axe-core can be injected (the CSP allows
    no inline script); the other browser tests run under the real CSP.
    """
    page = new_page(chromium, ui_server, lang, viewport, bypass_csp=True)
    report: dict[str, list] = {}

    def check(name: str, on=None):
        """<html lang>, one <h1>, a screenshot and axe's findings for the page shown now."""
        shown = on or page
        assert shown.locator("html").get_attribute("lang") == lang, name
        assert shown.locator("h1").count() == 1, name
        screenshot(shown, lang, viewport, name)
        report[name] = run_axe(shown, axe_source)

    page.goto("/")
    check("index")
    page.goto("/signup")
    check("signup")
    page.fill("#email", "not an address")
    page.fill("#password", "short")
    submit(page)
    check("signup_errors")

    local = new_address(f"walk-{lang}-{viewport}").split("@")[0]
    fill_signup(page, f"{local}@gmial.com", PASSWORD)
    check("signup_typo")
    address = f"{local}@gmail.com"
    page.locator("button[name=choice][value=suggested]").click()
    wait_for_path(page, "/verify")
    check("verify")
    page.goto("/resend")
    check("resend_cooldown")
    # What a browser without JavaScript may do: press during the cooldown (429, in words).
    page.evaluate("document.querySelector('main form button').disabled = false")
    with page.expect_response(lambda r: r.url.endswith("/resend")) as answer:
        submit(page)
    assert answer.value.status == 429  # still inside the cooldown
    check("resend_refused")
    page.goto("/verify")
    page.fill("#code", wrong_code(email_code(smtp_server, address)))
    submit(page)
    check("verify_error")
    link = email_link(smtp_server, address)
    page.goto(link)
    check("link")
    submit(page)
    wait_for_path(page, "/account")
    check("account")
    # The account page's two forms, each refused once (wrong password), then a change.
    change_password(page, "not the password at all", NEW_PASSWORD)
    check("account_password_error")
    delete_account(page, "not the password at all")
    check("account_delete_error")
    change_password(page, PASSWORD, NEW_PASSWORD)
    wait_for_path(page, "/account")
    check("account_password_changed")
    page.goto("/logout")
    check("logout")
    submit(page)
    page.goto("/login")
    check("login")
    page.goto(link)
    check("link_invalid")
    page.goto("/resend")
    check("resend")
    page.goto("/no-such-page")
    check("error")

    # The signing-up browser's page after verification on another device.
    second = new_address(f"walk2-{lang}-{viewport}")
    fill_signup(page, second, PASSWORD)
    wait_for_path(page, "/verify")
    assert Browser(ui_server.base_url).verify(
        second, email_code(smtp_server, second), password=PASSWORD).status_code == 303
    wait_for_path(page, "/verify/done")
    check("verify_done")

    # Another device: /verify and the link page ask for the signup password too.
    other = new_page(chromium, ui_server, lang, viewport, bypass_csp=True)
    third = new_address(f"walk3-{lang}-{viewport}")
    fill_signup(other, third, PASSWORD)
    wait_for_path(other, "/verify")
    other.context.clear_cookies()
    other.goto("/verify")
    check("verify_other_device", on=other)
    other.goto(email_link(smtp_server, third))
    check("link_other_browser", on=other)

    # The verification email's HTML part, as a mail client shows it (not a page: no axe).
    other.set_content(html_of(smtp_server.wait_for(third)))
    screenshot(other, lang, viewport, "email_verification")
    other.set_content(html_of(smtp_server.wait_for(address, 2)))  # after the signup's
    screenshot(other, lang, viewport, "email_password_changed")

    # Deleting the account lands on the start page, signed out, with a word about it.
    page.goto("/login")
    page.fill("#email", address)
    page.fill("#password", NEW_PASSWORD)
    submit(page)
    wait_for_path(page, "/account")
    delete_account(page, NEW_PASSWORD)
    wait_for_path(page, "/")
    check("account_deleted")
    other.set_content(html_of(smtp_server.wait_for(address, 3)))
    screenshot(other, lang, viewport, "email_account_deleted")

    save_axe_report(lang, viewport, {
        name: [{"id": v["id"], "impact": v["impact"], "nodes": len(v["nodes"])} for v in found]
        for name, found in report.items()})
    serious = {name: [(v["id"], v["impact"], v["help"], v["nodes"][:3]) for v in found
                      if v["impact"] in SERIOUS] for name, found in report.items()}
    assert not {name: found for name, found in serious.items() if found}, serious
    other.context.close()
    page.context.close()
