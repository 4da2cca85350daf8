"""No secrets in logs: codes, link tokens, verification URLs and passwords never reach the app's
log or gunicorn's access log.
"""

from __future__ import annotations

import datetime
import logging
import re
import runpy
import sqlite3
from types import SimpleNamespace

import pytest
from flask_sqlalchemy.session import Session as FlaskSession
from sqlalchemy.exc import OperationalError

from app import accounts
from app.redaction import REDACTED, redact
from app.security import new_link_token

from .helpers import (EMAIL, OTHER_EMAIL, OTHER_PASSWORD, PASSWORD, ROOT, SignupActions,
                      WRONG_PASSWORD, assert_redirect, code_from, free_port, link_from, path_of,
                      wrong)


class Capture(logging.Handler):
    """Keep every record that reaches it (once, though attached to several loggers)."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))

    def emit(self, record):
        if all(record is not seen for seen in self.records):
            self.records.append(record)

    def lines(self) -> list[str]:
        """Every record as formatted for a log file (tracebacks included)."""
        return [self.format(record) for record in self.records]


@pytest.fixture
def captured_logs():
    """A Capture on the "app" logger tree (at DEBUG) and on the root logger."""
    handler = Capture()
    app_logger, root = logging.getLogger("app"), logging.getLogger()
    app_level = app_logger.level
    app_logger.addHandler(handler)
    root.addHandler(handler)
    yield handler, app_logger
    app_logger.removeHandler(handler)
    root.removeHandler(handler)
    app_logger.setLevel(app_level)


def test_logs_hold_no_codes_tokens_links_or_passwords(make_app, smtp, captured_logs,
                                                      monkeypatch):
    """A whole run with failures logs no code, link token, link URL or password."""
    handler, app_logger = captured_logs
    app = make_app()
    app_logger.setLevel(logging.DEBUG)  # after create_app, which sets INFO
    generated_codes, generated_tokens = [], []
    real_code, real_token = accounts.new_code, accounts.new_link_token
    monkeypatch.setattr(accounts, "new_code",
                        lambda: generated_codes.append(real_code()) or generated_codes[-1])
    monkeypatch.setattr(accounts, "new_link_token", lambda address_id: generated_tokens.append(
        real_token(address_id)) or generated_tokens[-1])
    browser = SignupActions(app.test_client(), smtp)
    other = SignupActions(app.test_client(), smtp)
    received = []

    def newest(address, count):
        message = smtp.wait_for(address, count)
        received.append((code_from(message), link_from(message)))
        return received[-1]

    # Signup, a wrong code, resend, verify by code.
    assert_redirect(browser.signup(EMAIL), "/verify")
    code, _ = newest(EMAIL, 1)
    assert browser.verify(EMAIL, wrong(code)).status_code == 400
    assert_redirect(browser.resend(EMAIL), "/verify")
    code, _ = newest(EMAIL, 2)
    assert_redirect(browser.verify(EMAIL, code), "/account")
    # A second signup (twice: the second replaces), the old link, the new link GET + POST.
    assert_redirect(other.signup(OTHER_EMAIL), "/verify")
    _, old_link = newest(OTHER_EMAIL, 1)
    assert_redirect(other.signup(OTHER_EMAIL, password=OTHER_PASSWORD), "/verify")
    _, link = newest(OTHER_EMAIL, 2)
    assert other.open_link(old_link).status_code == 404
    third = SignupActions(app.test_client(), smtp)
    assert third.open_link(link).status_code == 200
    assert third.confirm_link(link, password=WRONG_PASSWORD).status_code == 400
    assert_redirect(third.confirm_link(link, password=OTHER_PASSWORD), "/account")
    # Sign-in, right and wrong.
    assert SignupActions(app.test_client(), smtp).login(EMAIL, WRONG_PASSWORD).status_code == 400
    assert_redirect(SignupActions(app.test_client(), smtp).login(EMAIL), "/account")
    # A failed SMTP send, then a database error at promotion.
    mail_state = app.extensions["mail"]
    smtp_port = mail_state.port
    mail_state.port = free_port()
    carol = SignupActions(app.test_client(), smtp)
    try:
        assert_redirect(carol.signup("carol@example.com"), "/verify")
    finally:
        mail_state.port = smtp_port
    assert_redirect(carol.resend("carol@example.com"), "/verify")
    code, _ = newest("carol@example.com", 1)
    original_commit = FlaskSession.commit

    def commit_failing(session):
        raise OperationalError("INSERT INTO users (email, password_hash) VALUES (?, ?)",
                               ("carol@example.com", "$argon2id$..."),
                               sqlite3.OperationalError("database is locked"))

    monkeypatch.setattr(FlaskSession, "commit", commit_failing)
    assert carol.verify("carol@example.com", code).status_code == 503
    monkeypatch.setattr(FlaskSession, "commit", original_commit)
    assert_redirect(carol.verify("carol@example.com", code), "/account")

    lines = handler.lines()
    names = {record.name for record in handler.records}
    assert any("sending a verification email failed" in line for line in lines), lines
    assert any("promotion failed" in line for line in lines), lines
    assert "app.mail.devlog" not in names
    codes = set(generated_codes) | {c for c, _ in received}
    tokens = set(generated_tokens) | {link.rsplit("/", 1)[1] for _, link in received}
    links = {link for _, link in received} | {path_of(link) for _, link in received}
    assert len(codes) >= 6 and len(tokens) >= 6
    assert {link.rsplit("/", 1)[1] for _, link in received} <= set(generated_tokens)
    blob = "\n".join(lines)
    for secret in tokens | links | {PASSWORD, OTHER_PASSWORD, WRONG_PASSWORD}:
        assert secret not in blob, secret
    for secret in codes:
        assert not re.search(rf"(?<!\d){secret}(?!\d)", blob), secret


def test_redact_rewrites_verify_paths():
    """redact() turns /verify/<token> into /verify/… in URLs, paths and request lines."""
    token = "p2fQE1CfdB30WWmYIUAFI3dwJ-1A5PjEXrB5B1b81oY"
    line = (f'127.0.0.1 - - [25/Nov/2026:20:16:10 +0000] "POST /verify/{token} HTTP/1.1" 303 0 '
            f'"https://signup.example.org/verify/{token}?x=1" "Mozilla/5.0"')
    cleaned = redact(line)
    assert token not in cleaned
    assert cleaned.count(REDACTED) == 2
    assert '"POST /verify/… HTTP/1.1"' in cleaned
    assert redact("GET /verify HTTP/1.1") == "GET /verify HTTP/1.1"


def test_redact_rewrites_links_that_carry_the_address_id():
    """Today's tokens (`<address id>-<secret>`) are redacted whole, id included."""
    token = new_link_token("0123456789abcdef0123456789abcdef")
    line = (f'127.0.0.1 - - [25/Nov/2026:20:16:10 +0000] "GET /verify/{token} HTTP/1.1" 200 0 '
            f'"https://signup.example.org/verify/{token}" "Mozilla/5.0"')
    cleaned = redact(line)
    assert token not in cleaned and token[:32] not in cleaned and token[33:] not in cleaned
    assert cleaned.count(REDACTED) == 2
    assert '"GET /verify/… HTTP/1.1"' in cleaned


@pytest.mark.parametrize("path", ["/verify/", "/password/reset/"])
def test_gunicorn_access_log_redacts_link_tokens(path):
    """gunicorn.conf.py's RedactingLogger writes <path><token> as <path>… in the access log
    (request line, path, referer)."""
    from gunicorn.config import Config

    settings = runpy.run_path(str(ROOT / "gunicorn.conf.py"))
    assert settings["logger_class"] is settings["RedactingLogger"]
    config = Config()
    config.set("accesslog", "-")
    config.set("access_log_format", '%(h)s "%(r)s" %(s)s "%(f)s" %(U)s %(q)s {referer}i')
    logger = settings["RedactingLogger"](config)
    lines = Capture()
    logger.access_log.addHandler(lines)
    token = "qXRwxlUDflG4FU_PZRJYuv35s1yFQVRI27byTz2gpPk"
    referer = f"https://signup.example.org{path}{token}"
    environ = {"REQUEST_METHOD": "GET", "RAW_URI": f"{path}{token}?lang=en",
               "SERVER_PROTOCOL": "HTTP/1.1", "PATH_INFO": f"{path}{token}",
               "QUERY_STRING": "lang=en", "REMOTE_ADDR": "203.0.113.7", "HTTP_REFERER": referer}
    response = SimpleNamespace(status="200 OK", headers=[("Content-Type", "text/html")], sent=10)
    request = SimpleNamespace(headers=[("HOST", "signup.example.org"), ("REFERER", referer)])
    try:
        logger.access(response, request, environ, datetime.timedelta(milliseconds=3))
    finally:
        logger.access_log.removeHandler(lines)
    assert len(lines.records) == 1
    line = lines.records[0].getMessage()
    assert token not in line
    assert f'"GET {path}…?lang=en HTTP/1.1" 200' in line
    assert line.count(f"{path}…") >= 3
