"""Signing up (SPEC section 3): the form and its checks, the typo question, what is stored
and emailed, and the promotion into the users table. On the memory store, a real redis-server
and the test Redis Cluster (the `backend` fixture of tests/helpers.py).
"""

from __future__ import annotations

import re
import sqlite3

import pytest
from flask_sqlalchemy.session import Session as FlaskSession
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from app.extensions import db
from app.typos import suggest

from .helpers import (EMAIL, OTHER_PASSWORD, PASSWORD, SignupActions, assert_redirect, code_from,
                      complete, field_errors, free_port, input_value, location, page_text, pending,
                      signed_in_as, signed_up, text_of, users)
from .helpers import backend_with_cluster  # noqa: F401 (a fixture: memory, redis and cluster)


INVALID_SIGNUPS = {
    "bad-email": ({"email": "not-an-email"}, "email", "valid email address"),
    "short-password": ({"password": "short1"}, "password", "at least 8 characters"),
    "common-password": ({"password": "password123"}, "password", "too common"),
    "password-is-email": ({"email": "ada.lovelace@example.com",
                           "password": "ada.lovelace@example.com"}, "password",
                          "email address as your password"),
    "password-is-local-part": ({"email": "ada.lovelace@example.com",
                                "password": "Ada.Lovelace"}, "password",
                               "email address as your password"),
    "long-password": ({"password": "x" * 60 + " " + "y" * 68}, "password", "at most 128"),
    "non-ascii-local-part": ({"email": "adä@example.com"}, "email", "valid email address"),
    "confirm-mismatch": ({"confirm": PASSWORD + "!"}, "confirm", "not the same"),
    "long-name": ({"name": "A" * 101}, "name", "at most 100"),
    "name-bell": ({"name": "Ada\x07"}, "name", "characters we can't store"),
    "name-rtl-override": ({"name": "Ada\u202eevil"}, "name", "characters we can't store"),
    "name-line-separator": ({"name": "Ada\u2028Lovelace"}, "name", "characters we can't store"),
}


@pytest.mark.parametrize("typed, expected", [
    ("ada@gmial.com", "ada@gmail.com"), ("ada@gmail.con", "ada@gmail.com"),
    ("ada@hotnail.com", "ada@hotmail.com"), ("ada@yaho.com", "ada@yahoo.com"),
    ("ada@outlok.com", "ada@outlook.com"), ("ada@icloud.cm", "ada@icloud.com"),
    ("ada@yandex.com.rt", "ada@yandex.com.tr"), ("ada@company.con", "ada@company.com"),
    ("ada@gmail.com", None), ("ada@mail.com", None), ("ada@email.com", None),
    ("ada@yahoo.fr", None), ("ada@live.fr", None), ("ada@gmx.at", None),
    ("ada@example.com", None), ("ada@xn--bcher-kva.example", None),
])
def test_typo_suggestions(typed, expected):
    """Common-domain slips get a suggestion; real domains near them never do."""
    assert suggest(typed) == expected


def test_typo_question_stores_nothing_until_answered(app, actions, smtp):
    """"gmial.com": 200 with the question and both passwords kept; nothing stored or sent."""
    page = actions.signup("ada@gmial.com")
    assert page.status_code == 200
    assert "Did you mean ada@gmail.com?" in page_text(page)
    assert re.search(r'<button[^>]*name="choice"[^>]*value="suggested"[^>]*autofocus', page.text)
    assert 'name="typed_email" type="hidden" value="ada@gmial.com"' in page.text
    assert page.text.count(f'value="{PASSWORD}"') == 2  # answering is one press
    assert pending(app, "ada@gmial.com") is None and pending(app, "ada@gmail.com") is None
    assert smtp.messages == []


@pytest.mark.parametrize("choice, stored", [("suggested", "ada@gmail.com"),
                                            ("typed", "ada@gmial.com")])
def test_typo_answer_decides_the_address(app, actions, smtp, choice, stored):
    """Either answer goes on to /verify with the chosen address; the other gets nothing."""
    response = actions.post("/signup", {"email": "ada@gmial.com", "password": PASSWORD,
                                        "confirm": PASSWORD, "typed_email": "ada@gmial.com",
                                        "choice": choice})
    assert response.status_code == 303 and response.headers["Location"].endswith("/verify")
    assert pending(app, stored) is not None
    other = {"ada@gmail.com", "ada@gmial.com"} - {stored}
    assert pending(app, other.pop()) is None
    assert smtp.wait_for(stored)


def test_edited_address_wins_over_the_suggestion(app, actions):
    """If the person edits the field instead, "use the suggestion" does not override the edit."""
    response = actions.post("/signup", {"email": "bob@example.com", "password": PASSWORD,
                                        "confirm": PASSWORD, "typed_email": "ada@gmial.com",
                                        "choice": "suggested"})
    assert response.status_code == 303
    assert pending(app, "bob@example.com") is not None and pending(app, "ada@gmail.com") is None


def test_signup_with_verified_address(flow_app, browser, other, smtp):
    """A verified address: same 303, the owner gets "already have an account", no second user."""
    code, _ = signed_up(browser)
    assert_redirect(browser.verify(EMAIL, code), "/account")
    before = users(flow_app)

    fresh = other.signup("someone-new@example.com")
    response = other.signup("ADA@example.com", password=OTHER_PASSWORD)
    assert response.status_code == fresh.status_code
    assert location(response) == location(fresh) == "/verify"

    message = other.email_to(EMAIL, 2)
    assert "already have an account" in message["Subject"]
    body = text_of(message)
    assert not re.search(r"(?<!\d)\d{6}(?!\d)", body)
    assert "/verify/" not in body and "/login" in body
    assert users(flow_app) == before and len(before) == 1
    assert pending(flow_app) is None

    assert other.login(EMAIL, OTHER_PASSWORD).status_code == 400
    assert_redirect(other.login(EMAIL, PASSWORD), "/account")


@pytest.mark.parametrize("how", ["code", "link"])
def test_resignup_while_pending_replaces_registration(flow_app, browser, how):
    """Re-signup while pending: old code and link dead; the new ones and the new password work."""
    old_code, old_link = signed_up(browser)
    new_code, new_link = signed_up(browser, password=OTHER_PASSWORD)
    if new_code != old_code:
        assert browser.verify(EMAIL, old_code).status_code == 400
    assert browser.open_link(old_link).status_code == 404
    assert users(flow_app) == []
    assert_redirect(complete(browser, how, count=2), "/account")
    assert len(users(flow_app)) == 1
    client2 = SignupActions(flow_app.test_client(), browser.smtp)
    assert client2.login(EMAIL, PASSWORD).status_code == 400
    assert_redirect(client2.login(EMAIL, OTHER_PASSWORD), "/account")


@pytest.mark.parametrize("case", list(INVALID_SIGNUPS))
def test_invalid_signup_is_refused_and_stores_nothing(flow_app, browser, smtp, case):
    """Bad signup fields: 400, error next to the field, email kept, nothing stored or sent."""
    changes, field, message = INVALID_SIGNUPS[case]
    data = {"email": EMAIL, "password": PASSWORD, "confirm": None, "name": "", **changes}
    if data["confirm"] is None:
        data["confirm"] = data["password"]
    response = browser.post("/signup", data)
    assert response.status_code == 400
    errors = field_errors(response, field)
    assert any(message in e for e in errors), errors
    assert input_value(response, "email") == data["email"]
    assert not input_value(response, "password")
    assert not input_value(response, "confirm")
    with flow_app.app_context():
        assert flow_app.extensions["pending"].get_stats()["total"] == 0
    if "@" in data["email"]:
        assert pending(flow_app, data["email"].lower()) is None
    assert smtp.messages == []


def test_internationalised_domain_is_idna_encoded(flow_app, browser, smtp):
    """An address with a Unicode domain is stored and emailed IDNA-encoded, lower-cased."""
    idna = "ada@xn--bcher-kva.example"
    assert_redirect(browser.signup("Ada@Bücher.example"), "/verify")
    code = code_from(smtp.wait_for(idna))
    assert pending(flow_app, idna) is not None
    assert_redirect(browser.verify(idna, code), "/account")
    assert [row[0] for row in users(flow_app)] == [idna]


def test_smtp_down_at_signup_keeps_registration(build, smtp):
    """SMTP unreachable: still 303, the registration is kept and /verify says the email failed."""
    app = build(MAIL_PORT=free_port())
    browser = SignupActions(app.test_client(), smtp)
    assert_redirect(browser.signup(EMAIL), "/verify")
    assert pending(app) is not None
    page = browser.client.get("/verify")
    assert page.status_code == 200
    assert "could not send the email" in page_text(page)
    # The offer to resend is a one-press button posting to /resend for the same address.
    assert re.search(r'<form method="post" action="/resend"', page.text)


def test_verification_leaves_one_argon2_user_and_no_pending(flow_app, browser, backend, request):
    """After verification: one users row with an argon2id hash, and the pending record is gone."""
    code, link = signed_up(browser, name="Ada")
    assert_redirect(browser.verify(EMAIL, code), "/account")
    rows = users(flow_app)
    assert len(rows) == 1 and rows[0][0] == EMAIL
    assert rows[0][1].startswith("$argon2id$")
    assert PASSWORD not in rows[0][1]
    assert pending(flow_app) is None
    with flow_app.app_context():
        assert flow_app.extensions["pending"].get_stats()["total"] == 0
    if backend == "redis":
        client = request.getfixturevalue("redis_server").client()
        assert list(client.scan_iter(match="signup:pending:*")) == []


def test_address_verified_concurrently_gives_one_row(flow_app, browser):
    """A users row appearing before promotion (a concurrent verify): "already verified", one row."""
    code, _ = signed_up(browser)
    with flow_app.app_context():
        db.session.execute(text(
            "INSERT INTO users (email, password_hash, name, created_at, verified_at) "
            "VALUES (:e, 'x', '', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"), {"e": EMAIL})
        db.session.commit()
    response = browser.verify(EMAIL, code)
    assert response.status_code in (400, 409)
    assert "already verified" in page_text(response)
    assert users(flow_app) == [(EMAIL, "x")]
    assert pending(flow_app) is None


def test_database_failure_at_promotion_keeps_registration(flow_app, browser, monkeypatch):
    """The commit fails once: 503 with a clear message, registration kept, the same code works."""
    code, _ = signed_up(browser)
    original = FlaskSession.commit
    failures = []

    def commit_failing_once(session):
        if not failures:
            failures.append(1)
            raise OperationalError("COMMIT", {}, sqlite3.OperationalError("database is locked"))
        return original(session)

    monkeypatch.setattr(FlaskSession, "commit", commit_failing_once)
    response = browser.verify(EMAIL, code)
    assert failures == [1]
    assert response.status_code == 503
    assert "temporarily unavailable" in page_text(response)
    assert response.headers.get("Retry-After")
    assert pending(flow_app) is not None
    assert users(flow_app) == []
    assert not signed_in_as(browser)

    assert_redirect(browser.verify(EMAIL, code), "/account")
    assert len(users(flow_app)) == 1
    assert pending(flow_app) is None
