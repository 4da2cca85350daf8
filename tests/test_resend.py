"""Asking for a new code on /resend: the old code and link die, the wait between emails is
stated and enforced, and the answers while the store serves from its memory fallback.
"""

from __future__ import annotations

import re

import pytest

from .helpers import (EMAIL, SignupActions, assert_redirect, code_from, complete, field_errors,
                      free_port, input_value, link_from, page_text, path_of, signed_in_as,
                      signed_up, text_of, users)
from .helpers import backend_with_cluster  # noqa: F401 (a fixture: memory, redis and cluster)


@pytest.mark.parametrize("how", ["code", "link"])
def test_resend_kills_old_code_and_link(flow_app, browser, how):
    """After a resend the old code gives 400 and the old link 404; the new code or link works."""
    old_code, old_link = signed_up(browser)
    response = browser.resend(EMAIL)
    assert_redirect(response, "/verify")
    message = browser.email_to(EMAIL, 2)
    new_code, new_link = code_from(message), link_from(message)
    assert new_link != old_link
    if new_code != old_code:  # one chance in a million that the new code repeats
        response = browser.verify(EMAIL, old_code)
        assert response.status_code == 400
        assert "not right" in page_text(response)
    assert browser.open_link(old_link).status_code == 404
    assert browser.post(path_of(old_link), {}, form_path="/resend").status_code == 404
    assert users(flow_app) == []
    assert_redirect(complete(browser, how, count=2), "/account")
    assert signed_in_as(browser)


def test_resend_page_says_the_same_for_an_unknown_address(flow_app, browser, smtp):
    """Resend for an unknown address answers like any other and sends one email with no code."""
    assert_redirect(browser.resend("nobody@example.com"), "/verify")
    page = browser.client.get("/verify")
    assert "If a registration is waiting for this address" in page_text(page)
    [message] = smtp.to("nobody@example.com")
    assert message["Subject"] == "No signup is waiting for this address"
    assert not re.search(r"\b\d{6}\b", text_of(message)) and "/verify/" not in text_of(message)
    assert "/signup" in text_of(message)


def test_resend_inside_cooldown_answers_429(build, smtp):
    """A resend inside RESEND_COOLDOWN_SECONDS: 429 with when, the form kept, nothing sent;
    other addresses pass."""
    app = build(RESEND_COOLDOWN_SECONDS=60)
    browser = SignupActions(app.test_client(), smtp)
    signed_up(browser)
    response = browser.resend(EMAIL)
    assert response.status_code == 429
    retry_after = int(response.headers["Retry-After"])
    assert 0 < retry_after <= 60
    assert f"new code in {retry_after} seconds" in page_text(response)
    assert input_value(response, "email") == EMAIL
    assert field_errors(response, "email")
    assert len(smtp.to(EMAIL)) == 1
    # Another address has its own allowance.
    assert_redirect(browser.resend("grace@example.com"), "/verify")
    assert len(smtp.to("grace@example.com")) == 1
    # Counted per requested address, registration or not: the answer does not tell.
    assert_redirect(browser.resend("nobody@example.com"), "/verify")
    assert browser.resend("nobody@example.com").status_code == 429


def test_verify_and_resend_pages_state_the_wait(make_app, smtp):
    """After a signup, /verify and /resend say when a new code can be asked for."""
    app = make_app(RESEND_COOLDOWN_SECONDS=60)
    actions = SignupActions(app.test_client(), smtp)
    assert actions.signup(EMAIL).status_code == 303
    for path in ("/verify", "/resend"):
        page = actions.client.get(path)
        match = re.search(r'data-countdown="(\d+)"', page.text)
        assert match and 55 <= int(match.group(1)) <= 60, path
        assert re.search(r"You can ask for a new code in <time[^>]*>[01]:\d\d</time>\.",
                         page.text), path
    verify_page = actions.client.get("/verify").text
    assert re.search(r'<form method="post" action="/resend"', verify_page)
    assert 'href="/signup">Use a different address' in verify_page
    assert "The code is valid for 60 minutes." in page_text(actions.client.get("/verify"))
    refused = actions.resend(EMAIL)
    assert refused.status_code == 429 and 'data-countdown="' in refused.text


def test_no_countdown_once_the_wait_is_over(actions):
    """With no cooldown the resend button is simply there, with no countdown."""
    assert actions.signup(EMAIL).status_code == 303
    page = actions.client.get("/verify")
    assert "data-countdown" not in page.text and "Send a new code" in page.text


def test_resend_during_fallback_does_not_claim_there_is_no_registration(make_app, smtp):
    """A resend that finds nothing in memory answers 503 and sends no "no signup" email."""
    app = make_app(REDIS_URL=f"redis://127.0.0.1:{free_port()}/0", REDIS_TIMEOUT=0.2)
    assert app.extensions["pending"].degraded
    actions = SignupActions(app.test_client(), smtp)
    response = actions.resend("held-in-redis@example.com")
    assert response.status_code == 503
    assert "temporarily unavailable" in response.get_data(as_text=True)
    assert smtp.to("held-in-redis@example.com") == []


def test_resend_during_fallback_still_serves_memory_registrations(make_app, smtp):
    """A registration made during the fallback gets its new code as usual."""
    app = make_app(REDIS_URL=f"redis://127.0.0.1:{free_port()}/0", REDIS_TIMEOUT=0.2)
    actions = SignupActions(app.test_client(), smtp)
    assert actions.signup("fresh@example.com").status_code == 303
    assert actions.resend("fresh@example.com").status_code == 303
    code = actions.code_for("fresh@example.com", count=2)
    assert actions.verify("fresh@example.com", code).status_code == 303
