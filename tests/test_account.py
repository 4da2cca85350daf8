"""Accounts: signing in and out (a new session at each sign-in), the server-side session
version and the users-table upgrade it needs, changing the password and deleting the account.

Driven through the Flask test client (a copied cookie is replayed in another client); the same
behaviour over HTTP against gunicorn is in tests/e2e/test_account_http.py.
"""

from __future__ import annotations

import html
import re
import sqlite3

import pytest
from flask_sqlalchemy.session import Session as FlaskSession
from sqlalchemy import inspect, text
from sqlalchemy.exc import OperationalError

from app.extensions import db

from .helpers import (EMAIL, OTHER_EMAIL, OTHER_PASSWORD, PASSWORD, SignupActions, assert_redirect,
                      html_of, page_text, session_of, signed_in_as, signed_up, text_of, verified)
from .helpers import backend_with_cluster  # noqa: F401 (a fixture: memory, redis and cluster)

# The users table as every release before the session version created it (SPEC section 5).
OLD_USERS_TABLE = """CREATE TABLE users (
    id INTEGER NOT NULL, email VARCHAR(254) NOT NULL, password_hash VARCHAR(255) NOT NULL,
    name VARCHAR(100) NOT NULL, created_at {ts} NOT NULL, verified_at {ts} NOT NULL,
    PRIMARY KEY (id), UNIQUE (email))"""
OLD_ROW = ("INSERT INTO users (id, email, password_hash, name, created_at, verified_at) "
           "VALUES (7, 'old@example.com', '{hash}', 'Old', '2025-01-02 03:04:05', "
           "'2025-01-02 03:04:05')")


def verified_browser(app, smtp, email=EMAIL) -> SignupActions:
    """A browser that signed up and verified `email`: signed in."""
    browser = SignupActions(app.test_client(), smtp)
    code, _link = signed_up(browser, email)
    assert_redirect(browser.verify(email, code), "/account")
    return browser


def copy_of(app, browser) -> SignupActions:
    """Another client carrying a copy of `browser`'s session cookie (a stolen or kept cookie)."""
    return with_cookie(app, browser.client.get_cookie("session").value, browser.smtp)


def with_cookie(app, cookie: str, smtp) -> SignupActions:
    """A new client whose session cookie is `cookie`."""
    thief = SignupActions(app.test_client(), smtp)
    thief.client.set_cookie("session", cookie)
    return thief


def test_logout_ends_a_copied_session(make_app, smtp):
    """A cookie copied before signing out no longer opens /account afterwards."""
    app = make_app()
    browser = verified_browser(app, smtp)
    thief = copy_of(app, browser)
    assert signed_in_as(thief)
    assert_redirect(browser.post("/logout", {}), "/")
    assert_redirect(browser.client.get("/account"), "/login")
    assert_redirect(thief.client.get("/account"), "/login")
    assert "user_id" not in session_of(thief.client)  # the stale session was cleared


def test_logout_ends_the_other_browsers_sessions(make_app, smtp):
    """Signing out on one device signs out every other session of the user (SPEC 8)."""
    app = make_app()
    laptop = verified_browser(app, smtp)
    phone = SignupActions(app.test_client(), smtp)
    assert_redirect(phone.login(EMAIL), "/account")
    assert_redirect(phone.post("/logout", {}), "/")
    assert_redirect(laptop.client.get("/account"), "/login")
    page = laptop.client.get("/")  # the header no longer offers the account either
    assert 'href="/login"' in page.text and 'href="/account"' not in page.text
    # Signing in again works, and only that new session is signed in.
    assert_redirect(laptop.login(EMAIL), "/account")
    assert signed_in_as(laptop) and not signed_in_as(phone)


def test_a_session_for_a_missing_user_is_signed_out(make_app, smtp):
    """The user row gone (deleted by hand): the session is treated as signed out and cleared."""
    app = make_app()
    browser = verified_browser(app, smtp)
    with app.app_context():
        db.session.execute(text("DELETE FROM users"))
        db.session.commit()
    assert_redirect(browser.client.get("/account"), "/login")
    assert "user_id" not in session_of(browser.client)


def test_a_session_from_before_the_upgrade_is_signed_out(make_app, smtp):
    """A session cookie that carries no version (signed in before the upgrade) is refused."""
    app = make_app()
    browser = verified_browser(app, smtp)
    with browser.client.session_transaction() as session:
        session.pop("session_version", None)
        session.pop("user_since", None)
    assert_redirect(browser.client.get("/account"), "/login")


def test_end_sessions_signs_out_every_session_of_the_user(make_app, smtp):
    """accounts.end_sessions (for flows without HTTP sign-out) ends every existing session."""
    from app import accounts

    app = make_app()
    laptop = verified_browser(app, smtp)
    phone = SignupActions(app.test_client(), smtp)
    assert_redirect(phone.login(EMAIL), "/account")
    with app.test_request_context():
        accounts.end_sessions(accounts.find_user(EMAIL))
    assert not signed_in_as(laptop) and not signed_in_as(phone)
    assert_redirect(phone.login(EMAIL), "/account")  # a new sign-in carries the new version


def test_logout_while_the_database_fails_still_signs_this_browser_out(make_app, smtp,
                                                                    monkeypatch):
    """The version cannot be stored: this browser is signed out and told the others are not."""
    app = make_app()
    browser = verified_browser(app, smtp)
    other = SignupActions(app.test_client(), smtp)
    assert_redirect(other.login(EMAIL), "/account")

    def failing_commit(_session):
        raise OperationalError("COMMIT", {}, sqlite3.OperationalError("database is locked"))

    with monkeypatch.context() as patch:
        patch.setattr(FlaskSession, "commit", failing_commit)
        answer = browser.post("/logout", {})
    assert_redirect(answer, "/")
    page = browser.client.get("/")
    assert "could not sign you out on your other devices" in html.unescape(page.text)
    assert_redirect(browser.client.get("/account"), "/login")
    assert signed_in_as(other)  # said so: the other session still stands
    assert_redirect(browser.login(EMAIL), "/account")  # signing in and out again ends it
    assert_redirect(browser.post("/logout", {}), "/")
    assert not signed_in_as(other)


def old_sqlite_database(path) -> str:
    """A SQLite users database as created before the session version, with one user."""
    connection = sqlite3.connect(path)
    connection.execute(OLD_USERS_TABLE.format(ts="DATETIME"))
    connection.execute(OLD_ROW.format(hash=old_password_hash()))
    connection.commit()
    connection.close()
    return f"sqlite:///{path}"


def old_password_hash() -> str:
    """An argon2id hash of PASSWORD at the test cost."""
    from app.config import TestConfig
    from app.security import Passwords

    values = TestConfig.values
    return Passwords(time_cost=values["ARGON2_TIME_COST"],
                     memory_cost=values["ARGON2_MEMORY_COST"],
                     parallelism=values["ARGON2_PARALLELISM"]).hash(PASSWORD)


def columns(app) -> dict[str, dict]:
    """The users table's columns as the database reports them."""
    with app.app_context():
        return {column["name"]: column for column in inspect(db.engine).get_columns("users")}


def assert_upgraded(app, smtp, version=0):
    """The column is there, the old row kept (at `version`), and its owner can sign in and out."""
    found = columns(app)
    assert "session_version" in found and not found["session_version"]["nullable"]
    with app.app_context():
        rows = db.session.execute(text(
            "SELECT id, email, name, session_version FROM users")).all()
    assert [tuple(row) for row in rows] == [(7, "old@example.com", "Old", version)]
    browser = SignupActions(app.test_client(), smtp)
    assert_redirect(browser.login("old@example.com"), "/account")
    assert signed_in_as(browser, "old@example.com")
    assert_redirect(browser.post("/logout", {}), "/")


def test_start_up_adds_the_session_version_to_an_old_sqlite_database(make_app, smtp, tmp_path):
    """An existing SQLite database gets the column at start-up; no row or value is lost."""
    url = old_sqlite_database(tmp_path / "old.db")
    app = make_app(DATABASE_URL=url, SQLALCHEMY_DATABASE_URI=url)
    assert_upgraded(app, smtp)
    # A second start finds nothing to add (the sign-out above bumped the version).
    assert_upgraded(make_app(DATABASE_URL=url, SQLALCHEMY_DATABASE_URI=url), smtp, version=1)


def downgrade(app) -> None:
    """Put the users table back as an earlier release left it (one user, no session version)."""
    with app.app_context():
        db.drop_all()
        timestamp = "DATETIME" if db.engine.dialect.name == "sqlite" else "TIMESTAMP WITH TIME ZONE"
        db.session.execute(text(OLD_USERS_TABLE.format(ts=timestamp)))
        db.session.execute(text(OLD_ROW.format(hash=old_password_hash())))
        db.session.commit()
    assert "session_version" not in columns(app)


def test_init_db_adds_the_session_version(make_app, smtp):
    """`flask init-db` adds the column to an existing table and says so; a second run adds none."""
    app = make_app()
    downgrade(app)
    result = app.test_cli_runner().invoke(args=["init-db"])
    assert result.exit_code == 0, result.output
    assert "added column users.session_version" in result.output
    assert_upgraded(app, smtp)
    again = app.test_cli_runner().invoke(args=["init-db"])
    assert again.exit_code == 0 and "added column" not in again.output


def test_start_up_adds_the_session_version_to_an_old_postgresql_database(make_app, smtp,
                                                                          postgres):
    """The same upgrade on PostgreSQL: the column added, the row kept, sign-in works."""
    url = postgres.new_url()
    downgrade(make_app(DATABASE_URL=url, SQLALCHEMY_DATABASE_URI=url))
    app = make_app(DATABASE_URL=url, SQLALCHEMY_DATABASE_URI=url)
    assert_upgraded(app, smtp)
    assert_upgraded(make_app(DATABASE_URL=url, SQLALCHEMY_DATABASE_URI=url), smtp, version=1)


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_two_processes_upgrading_at_once_both_start(make_app, smtp, request, database):
    """gunicorn workers start together: the one that adds the column second finds it there."""
    from app.models import add_missing_columns

    overrides = {}
    if database == "postgresql":
        url = request.getfixturevalue("postgres").new_url()
        overrides = {"DATABASE_URL": url, "SQLALCHEMY_DATABASE_URI": url}
    app = make_app(**overrides)
    downgrade(app)
    with app.app_context():
        stale = inspect(db.engine)  # both workers looked before either added the column
        assert "session_version" not in {c["name"] for c in stale.get_columns("users")}
        assert add_missing_columns(db.engine) == ["session_version"]
        # The other worker's ALTER now fails (a duplicate column): it looks again, carries on.
        assert add_missing_columns(db.engine, inspector=stale) == []
    assert_upgraded(app, smtp)


# -- change the password (/account/password) ------------------------------------------------
NEW_PASSWORD = "a brand new long passphrase"
WRONG_CURRENT = "That is not your current password."


def change_password(browser, current=PASSWORD, new=NEW_PASSWORD, confirm=None):
    """Fill in the account page's change-password form."""
    return browser.post("/account/password", {
        "current_password": current, "password": new,
        "confirm": new if confirm is None else confirm}, form_path="/account")


def delete_account(browser, password=PASSWORD):
    """Fill in the account page's delete form."""
    return browser.post("/account/delete", {"password": password}, form_path="/account")


def password_hash(app, email=EMAIL) -> str | None:
    """The stored hash of the user with `email` (None: no such row)."""
    with app.app_context():
        return db.session.execute(text("SELECT password_hash FROM users WHERE email = :e"),
                                  {"e": email}).scalar()


def field_error(page, field_id: str) -> str:
    """The error shown under the field with this id ('' when none)."""
    found = re.search(rf'<p class="error" id="{field_id}-error">(.*?)</p>', page.text, re.S)
    return html.unescape(re.sub(r"<[^>]+>", "", found.group(1))) if found else ""


def test_account_page_offers_both_forms_with_unique_ids(make_app, smtp):
    """/account has the change-password and delete forms, SPEC field names, no repeated id."""
    app = make_app()
    browser = verified_browser(app, smtp)
    page = browser.client.get("/account")
    assert re.search(r'<form method="post" action="/account/password"', page.text)
    assert re.search(r'<form method="post" action="/account/delete"', page.text)
    for name in ("current_password", "password", "confirm"):
        assert f'name="{name}"' in page.text
    ids = re.findall(r'\bid="([^"]+)"', page.text)
    assert len(ids) == len(set(ids)), sorted(i for i in ids if ids.count(i) > 1)


def test_change_password_keeps_this_browser_and_ends_the_others(make_app, smtp):
    """New argon2id hash; this browser stays signed in, every other session ends; an email."""
    app = make_app()
    laptop = verified_browser(app, smtp)
    phone = SignupActions(app.test_client(), smtp)
    assert_redirect(phone.login(EMAIL), "/account")
    copied = copy_of(app, laptop)
    before = password_hash(app)

    answer = change_password(laptop)
    assert_redirect(answer, "/account")
    after = password_hash(app)
    assert after != before and after.startswith("$argon2id$")
    page = laptop.client.get("/account")
    assert page.status_code == 200 and "Your password was changed" in html.unescape(page.text)
    assert not signed_in_as(phone) and not signed_in_as(copied)

    notice = smtp.wait_for(EMAIL, 2)
    assert notice["Subject"] == "Your password was changed"
    body = text_of(notice)
    assert EMAIL in body and "/password/forgot" in body
    assert NEW_PASSWORD not in body and PASSWORD not in body
    assert 'lang="en"' in html_of(notice)

    assert phone.login(EMAIL, PASSWORD).status_code == 400
    assert_redirect(phone.login(EMAIL, NEW_PASSWORD), "/account")


def test_wrong_current_password_changes_nothing(make_app, smtp):
    """A wrong current password: 400 in words by the field; hash, sessions and mailbox as before."""
    app = make_app()
    laptop = verified_browser(app, smtp)
    phone = SignupActions(app.test_client(), smtp)
    assert_redirect(phone.login(EMAIL), "/account")
    before = password_hash(app)
    answer = change_password(laptop, current="not my password at all")
    assert answer.status_code == 400
    assert field_error(answer, "current_password") == "Error: " + WRONG_CURRENT
    assert password_hash(app) == before
    assert signed_in_as(laptop) and signed_in_as(phone)
    assert len(smtp.to(EMAIL)) == 1  # the verification email only


@pytest.mark.parametrize("new, confirm, field_id, message", [
    ("short", None, "new_password", "Use at least 8 characters."),
    ("password123", None, "new_password", "This password is too common"),
    (EMAIL, None, "new_password", "Don't use your email address as your password."),
    ("x" * 129, None, "new_password", "Use at most 128 characters."),
    (NEW_PASSWORD, "something else entirely", "new_confirm", "The two passwords are not the same."),
    ("", None, "new_password", "Choose a password."),
])
def test_new_password_follows_the_signup_rules(make_app, smtp, new, confirm, field_id, message):
    """The signup form's password rules: refused with 400 in words, nothing changed."""
    app = make_app()
    browser = verified_browser(app, smtp)
    before = password_hash(app)
    answer = change_password(browser, new=new, confirm=confirm)
    assert answer.status_code == 400
    assert message in field_error(answer, field_id)
    assert password_hash(app) == before
    assert 'value="' + new not in answer.text if new else True  # passwords never come back
    assert len(smtp.to(EMAIL)) == 1


def test_signed_out_posts_go_to_the_sign_in_page(make_app, smtp):
    """Without a signed-in session both forms redirect to /login and change nothing."""
    app = make_app()
    owner = verified_browser(app, smtp)
    stranger = SignupActions(app.test_client(), smtp)
    before = password_hash(app)
    assert_redirect(stranger.post("/account/password", {
        "current_password": PASSWORD, "password": NEW_PASSWORD, "confirm": NEW_PASSWORD},
        form_path="/login"), "/login")
    assert_redirect(stranger.post("/account/delete", {"password": PASSWORD},
                                  form_path="/login"), "/login")
    assert password_hash(app) == before and signed_in_as(owner)


@pytest.mark.parametrize("path", ["/account/password", "/account/delete"])
def test_account_posts_without_csrf_token_change_nothing(make_app, smtp, path):
    """A missing CSRF token: 400 page in words, the account as it was."""
    app = make_app()
    browser = verified_browser(app, smtp)
    before = password_hash(app)
    answer = browser.client.post(path, data={"current_password": PASSWORD,
                                             "password": NEW_PASSWORD, "confirm": NEW_PASSWORD})
    assert answer.status_code == 400 and "This form has expired" in html.unescape(answer.text)
    assert password_hash(app) == before and signed_in_as(browser)


def test_password_notice_is_sent_inside_the_email_allowance(make_app, smtp):
    """The security notice is not held back by the cooldown the signup email started."""
    app = make_app(RESEND_COOLDOWN_SECONDS=60)
    browser = verified_browser(app, smtp)
    assert_redirect(change_password(browser), "/account")
    assert smtp.wait_for(EMAIL, 2)["Subject"] == "Your password was changed"


def test_change_and_delete_in_turkish(make_app, smtp):
    """A Turkish browser: the page, the errors and both emails in Turkish."""
    app = make_app()
    browser = SignupActions(app.test_client(), smtp)
    browser.client.environ_base["HTTP_ACCEPT_LANGUAGE"] = "tr-TR,tr;q=0.9"
    code, _link = signed_up(browser, EMAIL)
    assert_redirect(browser.verify(EMAIL, code), "/account")
    page = html.unescape(browser.client.get("/account").text)
    assert "Parolanızı değiştirin" in page and "Hesabınızı silin" in page
    wrong = change_password(browser, current="yanlış bir parola bu")
    assert wrong.status_code == 400 and "Bu, şu anki parolanız değil." in html.unescape(wrong.text)
    assert_redirect(change_password(browser), "/account")
    notice = smtp.wait_for(EMAIL, 2)
    assert notice["Subject"] == "Parolanız değiştirildi"
    assert 'lang="tr"' in html_of(notice)
    assert_redirect(delete_account(browser, NEW_PASSWORD), "/")
    goodbye = smtp.wait_for(EMAIL, 3)
    assert goodbye["Subject"] == "Hesabınız silindi"
    assert "yeniden kaydolabilirsiniz" in text_of(goodbye)


# -- delete the account (/account/delete) -------------------------------------------------
def metric(app, name: str) -> float:
    """A sample's value from /metrics (0 when absent)."""
    found = re.search(rf"^{name} (\S+)$", app.test_client().get("/metrics").text, re.M)
    return float(found.group(1)) if found else 0.0


def test_wrong_password_deletes_nothing(make_app, smtp):
    """Delete with a wrong password: 400 in words, the row and the sessions stay."""
    app = make_app()
    browser = verified_browser(app, smtp)
    answer = delete_account(browser, "not my password at all")
    assert answer.status_code == 400
    assert field_error(answer, "delete_password") == "Error: That is not your password."
    assert password_hash(app) is not None and signed_in_as(browser)
    assert len(smtp.to(EMAIL)) == 1


def test_delete_ends_every_session_and_frees_the_address(make_app, smtp):
    """The row is deleted, every session ends, a goodbye email; then a whole new signup works
    and no session of the deleted account opens the new one (even with the same user id)."""
    app = make_app()
    laptop = verified_browser(app, smtp)
    phone = SignupActions(app.test_client(), smtp)
    assert_redirect(phone.login(EMAIL), "/account")
    stolen = laptop.client.get_cookie("session").value
    copied = with_cookie(app, stolen, smtp)
    with app.app_context():
        old_id = db.session.execute(text("SELECT id FROM users")).scalar()
    deleted_before = metric(app, "signup_accounts_deleted_total")

    assert_redirect(delete_account(laptop), "/")
    assert password_hash(app) is None
    for browser in (laptop, phone, copied):
        assert_redirect(browser.client.get("/account"), "/login")
    goodbye = smtp.wait_for(EMAIL, 2)
    assert goodbye["Subject"] == "Your account was deleted"
    assert "/signup" in text_of(goodbye)
    assert metric(app, "signup_accounts_deleted_total") == deleted_before + 1
    assert phone.login(EMAIL).status_code == 400

    again = SignupActions(app.test_client(), smtp)
    code, _link = signed_up(again, EMAIL, password=NEW_PASSWORD)
    assert_redirect(again.verify(EMAIL, code), "/account")
    assert signed_in_as(again)
    with app.app_context():
        new_id = db.session.execute(text("SELECT id FROM users")).scalar()
    assert new_id == old_id  # SQLite hands the id out again: the sessions must still not open
    for browser in (laptop, phone, with_cookie(app, stolen, smtp)):
        assert not signed_in_as(browser)
    assert_redirect(SignupActions(app.test_client(), smtp).login(EMAIL, NEW_PASSWORD),
                    "/account")


# -- rate limit ---------------------------------------------------------------------------
def test_account_forms_share_the_sign_in_limit(make_app, smtp):
    """Wrong passwords on /account/password, /account/delete and /login draw on one per-IP
    allowance (RATELIMIT_LOGIN); past it the account page answers 429 in words."""
    app = make_app(RATELIMIT_ENABLED=True, RATELIMIT_LOGIN="3/minute")
    browser = verified_browser(app, smtp)
    assert change_password(browser, current="wrong password one").status_code == 400
    assert delete_account(browser, "wrong password two").status_code == 400
    assert browser.login(EMAIL, "wrong password three").status_code == 400
    refused = change_password(browser)
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) > 0
    assert "Too many attempts from your network" in html.unescape(refused.text)
    assert "Your account" in refused.text  # the account page again, not a bare error
    assert delete_account(browser).status_code == 429
    assert password_hash(app) is not None


# -- the operators' command ---------------------------------------------------------------
def test_users_delete_command(make_app, smtp):
    """`users delete EMAIL`: the row goes, its sessions end, a goodbye email; exit 0."""
    app = make_app()
    browser = verified_browser(app, smtp)
    result = app.test_cli_runner().invoke(args=["users", "delete", "ADA@example.com"])
    assert result.exit_code == 0, result.output
    assert f"deleted the account of {EMAIL}" in result.output
    assert password_hash(app) is None
    assert_redirect(browser.client.get("/account"), "/login")
    assert smtp.wait_for(EMAIL, 2)["Subject"] == "Your account was deleted"
    again = SignupActions(app.test_client(), smtp)
    code, _link = signed_up(again, EMAIL)
    assert_redirect(again.verify(EMAIL, code), "/account")


@pytest.mark.parametrize("address, message", [
    ("nobody@example.com", "no account uses nobody@example.com"),
    ("not an address", "is not a valid email address"),
])
def test_users_delete_refuses_an_unknown_address(make_app, smtp, address, message):
    """An address without an account (or no address at all): a message and exit 1."""
    app = make_app()
    verified_browser(app, smtp)
    result = app.test_cli_runner().invoke(args=["users", "delete", address])
    assert result.exit_code == 1
    assert message in result.output
    assert password_hash(app) is not None
    assert len(smtp.to(EMAIL)) == 1


# -- sign in and out, and a new session at each sign-in -------------------------------------
def test_login_with_wrong_password(flow_app, browser, other):
    """Wrong password (or unknown address) at /login: 400, not signed in."""
    code, _ = signed_up(browser)
    assert_redirect(browser.verify(EMAIL, code), "/account")
    response = other.login(EMAIL, OTHER_PASSWORD)
    assert response.status_code == 400
    assert "do not match an account" in page_text(response)
    assert other.login("nobody@example.com", PASSWORD).status_code == 400
    assert_redirect(other.client.get("/account"), "/login")


def test_logout_get_shows_button_post_signs_out(flow_app, browser):
    """GET /logout shows a button and keeps the session; POST signs out; /account then redirects."""
    code, _ = signed_up(browser)
    assert_redirect(browser.verify(EMAIL, code), "/account")
    page = browser.client.get("/logout")
    assert page.status_code == 200
    assert re.search(r'<form method="post" action="/logout">', page.text)
    assert "<button" in page.text
    assert signed_in_as(browser)
    response = browser.post("/logout", {})
    assert response.status_code in (302, 303)
    assert_redirect(browser.client.get("/account"), "/login")


def test_login_normalises_the_address(flow_app, browser, other):
    """Sign-in with the address in another case works."""
    code, _ = signed_up(browser)
    assert_redirect(browser.verify(EMAIL, code), "/account")
    assert_redirect(other.login("ADA@EXAMPLE.com"), "/account")
    assert signed_in_as(other)


def test_verification_starts_a_new_session(make_app, smtp):
    """Signing in by code replaces the session: new cookie, no signup_email, new CSRF token."""
    app = make_app()
    browser = SignupActions(app.test_client(), smtp)
    code, _ = signed_up(browser)
    before = session_of(browser.client)
    assert before.get("signup_email") == EMAIL and before.get("csrf_token")
    cookie_before = browser.client.get_cookie("session").value
    response = browser.verify(EMAIL, code)
    assert_redirect(response, "/account")
    cookie_after = browser.client.get_cookie("session").value
    assert cookie_after != cookie_before
    after = session_of(browser.client)
    assert "signup_email" not in after and "last_email" not in after
    assert after.get("csrf_token") != before["csrf_token"]
    assert isinstance(after.get("user_id"), int)


def test_login_starts_a_new_session(make_app, smtp):
    """Signing in with a password replaces the session: nothing from before sign-in is kept."""
    app = make_app()
    verified(SignupActions(app.test_client(), smtp))
    browser = SignupActions(app.test_client(), smtp)
    assert_redirect(browser.resend(OTHER_EMAIL), "/verify")  # leaves last_email in the session
    before = session_of(browser.client)
    assert before.get("last_email") == OTHER_EMAIL
    assert_redirect(browser.login(EMAIL), "/account")
    after = session_of(browser.client)
    assert "last_email" not in after
    assert after.get("csrf_token") != before.get("csrf_token")
    assert isinstance(after.get("user_id"), int)


def test_link_verification_starts_a_new_session(make_app, smtp):
    """Signing in by link also replaces the session."""
    app = make_app()
    browser = SignupActions(app.test_client(), smtp)
    _, link = signed_up(browser)
    before = session_of(browser.client)
    assert_redirect(browser.confirm_link(link), "/account")
    after = session_of(browser.client)
    assert "signup_email" not in after and after.get("csrf_token") != before["csrf_token"]
