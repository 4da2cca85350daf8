"""Signed-in sessions: the server-side session version, and the users-table upgrade it needs.

Driven through the Flask test client (a copied cookie is replayed in another client); the same
behaviour over HTTP against gunicorn is in tests/e2e/test_account_http.py.
"""

from __future__ import annotations

import html
import sqlite3

import pytest
from flask_sqlalchemy.session import Session as FlaskSession
from sqlalchemy import inspect, text
from sqlalchemy.exc import OperationalError

from app.extensions import db

from .conftest import PASSWORD, SignupActions
from .test_flow import assert_redirect, signed_in_as, signed_up

EMAIL = "ada@example.com"
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
    thief = SignupActions(app.test_client(), browser.smtp)
    thief.client.set_cookie("session", browser.client.get_cookie("session").value)
    return thief


def session_of(client) -> dict:
    """What the client's session cookie holds."""
    with client.session_transaction() as session:
        return dict(session)


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
