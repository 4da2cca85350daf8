"""What more than one test file uses: real parts (a redis-server on a free port, an in-process
SMTP server, PostgreSQL), a browser through the Flask test client (SignupActions), and the
readers of pages, emails and stored state that the tests share.

A helper used by one file only stays in that file; a second user moves it here, so no helper is
defined twice.
"""

from __future__ import annotations

import email
import email.policy
import html
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import redis
import sqlalchemy
from prometheus_client.parser import text_string_to_metric_families

from app.extensions import db

PG_HOST, PG_PORT = "127.0.0.1", 5432  # the PostgreSQL service (trust, database `test`)
CODE_RE = re.compile(r"^\s{4}(\d{6})\s*$", re.MULTILINE)
LINK_RE = re.compile(r"(https?://\S+/verify/[A-Za-z0-9_\-]+)")

EMAIL = "ada@example.com"
OTHER_EMAIL = "bob@example.com"
UNKNOWN_EMAIL = "nobody@example.com"
PASSWORD = "correct horse battery staple"
OTHER_PASSWORD = "a different long passphrase"
WRONG_PASSWORD = "not the password at all"


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def require(flag: str, reason: str):
    """Skip with a visible reason on a laptop; fail when CI sets the REQUIRE_* flag."""
    if os.environ.get(flag, "").lower() in ("1", "true", "yes", "on"):
        pytest.fail(f"{reason} ({flag}=1 makes this a failure)")
    pytest.skip(reason)


def csrf_token(html: str) -> str:
    """The CSRF token of the page's first form in <main>, the one a person submits.

    Not the header's language switcher: a page whose switcher carried a valid token but whose
    form did not would otherwise pass every test that reads the token and fail every browser.
    A page without a form in <main> gives the switcher's.
    """
    match = None
    for part in (html[html.find("<main"):] if "<main" in html else "", html):
        match = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', part) or re.search(
            r'value="([^"]+)"[^>]*name="csrf_token"', part)
        if match:
            break
    assert match, "no csrf_token on the page"
    return match.group(1)


class RedisServer:
    """A redis-server process the tests own: start, stop, kill and restart it."""

    def __init__(self, port: int | None = None, extra_args=(), directory: str | None = None):
        self.binary = shutil.which("redis-server")
        self.port = port or free_port()
        self.dir = directory or tempfile.mkdtemp(prefix="redis-test-")
        self.extra_args = list(extra_args)
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        """redis:// URL of this server."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> "RedisServer":
        """Start the server and wait until it answers PING."""
        args = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", self.dir,
                "--save", "", "--daemonize", "no", "--protected-mode", "no",
                *self.extra_args]
        if not any(a == "--appendonly" for a in self.extra_args):
            args += ["--appendonly", "no"]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server on port {self.port} exited (port taken?)")
            try:
                # The answer must come from our process, not from one that took the port first.
                if self.client().info("server")["process_id"] == self.process.pid:
                    return self
            except redis.exceptions.RedisError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"redis-server on port {self.port} did not start")

    def client(self) -> redis.Redis:
        """A plain client to inspect the server from the test."""
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=2,
                           socket_connect_timeout=2)

    def stop(self) -> None:
        """Stop gracefully (SIGTERM) and wait."""
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)

    def kill(self) -> None:
        """SIGKILL: no chance to save anything."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def cleanup(self) -> None:
        """Stop and remove the data directory."""
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def destroy(self) -> None:
        """SIGKILL whatever still runs (never raising: teardown must end every server), then
        remove the data directory."""
        try:
            self.kill()
        except Exception:  # noqa: BLE001
            if self.process:
                self.process.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


class SmtpServer:
    """aiosmtpd in a thread: every received message is kept for the test to read."""

    def __init__(self):
        from aiosmtpd.controller import Controller

        self.messages: list[email.message.EmailMessage] = []
        self.lock = threading.Lock()
        self.port = free_port()
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's name)
        """Keep the message."""
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        message["X-Envelope-To"] = ",".join(envelope.rcpt_tos)
        with self.lock:
            self.messages.append(message)
        return "250 OK"

    def start(self) -> "SmtpServer":
        """Start listening."""
        self.controller.start()
        return self

    def stop(self) -> None:
        """Stop listening."""
        self.controller.stop()

    def clear(self) -> None:
        """Forget the messages received so far."""
        with self.lock:
            self.messages.clear()

    def to(self, address: str) -> list:
        """Messages sent to `address`, oldest first."""
        with self.lock:
            return [m for m in self.messages if address in m["X-Envelope-To"].split(",")]

    def wait_for(self, address: str, count: int = 1, timeout: float = 10.0):
        """Wait until `count` messages reached `address`; return the newest."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.to(address)
            if len(found) >= count:
                return found[-1]
            time.sleep(0.02)
        raise AssertionError(f"no email #{count} to {address} within {timeout}s")


def text_of(message) -> str:
    """The plain-text part of a message."""
    part = message.get_body(preferencelist=("plain",))
    return part.get_content()


def html_of(message) -> str:
    """The HTML part of a message."""
    part = message.get_body(preferencelist=("html",))
    return part.get_content()


def code_from(message) -> str:
    """The 6-digit code in a verification email."""
    match = CODE_RE.search(text_of(message))
    assert match, "no code in the email"
    return match.group(1)


def link_from(message) -> str:
    """The verification link in a verification email."""
    match = LINK_RE.search(text_of(message))
    assert match, "no link in the email"
    return match.group(1)


def path_of(url: str) -> str:
    """The path of a URL (test clients take paths)."""
    return "/" + url.split("://", 1)[1].split("/", 1)[1]


def wait_for_port(port: int, timeout: float = 20.0) -> None:
    """Wait until something listens on 127.0.0.1:port."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port}")


ROOT = Path(__file__).resolve().parent.parent


class Postgres:
    """A superuser connection to the PostgreSQL service; creates and drops test databases."""

    def __init__(self, connection, user: str):
        self.connection = connection
        self.user = user
        self.created: list[str] = []

    def execute(self, sql: str, params=()):
        """Run one statement on the maintenance connection (autocommit)."""
        with self.connection.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchall() if cursor.description else None

    def create(self) -> str:
        """A fresh, empty database; its name."""
        name = f"signup_test_{secrets.token_hex(6)}"
        self.execute(f'CREATE DATABASE "{name}"')
        self.created.append(name)
        return name

    def url(self, name: str) -> str:
        """The app's DATABASE_URL for a database."""
        return f"postgresql+psycopg2://{self.user}@{PG_HOST}:{PG_PORT}/{name}"

    def new_url(self) -> str:
        """The URL of a fresh, empty database."""
        return self.url(self.create())

    def drop_connections(self, name: str) -> int:
        """Terminate every session on a database (what a failover does to the app's pool)."""
        rows = self.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                            "WHERE datname = %s AND pid <> pg_backend_pid()", (name,))
        return len(rows)

    def query(self, name: str, sql: str, params=()) -> list[tuple]:
        """Rows of one query on database `name` (a connection of its own, closed after)."""
        import psycopg2

        connection = psycopg2.connect(host=PG_HOST, port=PG_PORT, user=self.user, dbname=name)
        try:
            with connection, connection.cursor() as cursor:
                cursor.execute(sql, params)
                return cursor.fetchall()
        finally:
            connection.close()

    def user_count(self, name: str, email: str) -> int:
        """Rows of the users table with this address."""
        [(count,)] = self.query(name, "SELECT count(*) FROM users WHERE email = %s", (email,))
        return count

    def user_emails(self, name: str) -> list[str]:
        """The address of every row of the users table (twice if a row were duplicated)."""
        return [email for (email,) in self.query(name, "SELECT email FROM users")]

    def drop_all(self) -> None:
        """Drop every database this object created."""
        for name in self.created:
            self.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self.created.clear()


def wait_until(predicate, timeout: float, interval: float = 0.05, what: str = "condition"):
    """Poll `predicate` until it returns something true; that value, or AssertionError."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout} s")
        time.sleep(interval)


# -- the memory store, a redis-server and the Redis Cluster ------------------------------------
@pytest.fixture(name="backend", params=[
    pytest.param("memory", id="memory"),
    pytest.param("redis", id="redis", marks=pytest.mark.redis),
    pytest.param("cluster", id="cluster", marks=pytest.mark.redis)])
def backend_with_cluster(request):
    """The `backend` fixture with the test Redis Cluster as a third value: a test file that
    imports it runs its `build`, `flow_app`, `browser` and `other` tests on all three."""
    return request.param


# -- a browser ----------------------------------------------------------------------------------
class SignupActions:
    """What a person does, through a test client, reading CSRF tokens from the pages."""

    def __init__(self, client, smtp):
        self.client = client
        self.smtp = smtp

    def post(self, path, data, form_path=None):
        """GET the form page for its CSRF token, then POST."""
        page = self.client.get(form_path or path)
        return self.client.post(path, data={**data, "csrf_token": csrf_token(page.text)})

    def signup(self, email, password=PASSWORD, confirm=None, name=""):
        """Fill in the signup form."""
        return self.post("/signup", {"email": email, "password": password,
                                     "confirm": password if confirm is None else confirm,
                                     "name": name})

    def verify(self, email, code, password=None):
        """Fill in the code form."""
        data = {"email": email, "code": code}
        if password is not None:
            data["password"] = password
        return self.post("/verify", data)

    def resend(self, email):
        """Ask for a new code."""
        return self.post("/resend", {"email": email})

    def open_link(self, link):
        """GET the emailed link (what a mail scanner does too)."""
        return self.client.get(path_of(link))

    def confirm_link(self, link, password=None):
        """Press the confirm button on the link page."""
        data = {} if password is None else {"password": password}
        return self.post(path_of(link), data)

    def login(self, email, password=PASSWORD):
        """Sign in."""
        return self.post("/login", {"email": email, "password": password})

    def email_to(self, address, count=1):
        """The newest email to `address`, waiting for the `count`-th."""
        return self.smtp.wait_for(address, count)

    def code_for(self, address, count=1):
        """The code in the newest email to `address`."""
        return code_from(self.email_to(address, count))

    def link_for(self, address, count=1):
        """The link in the newest email to `address`."""
        return link_from(self.email_to(address, count))


def signed_up(actions, email=EMAIL, password=PASSWORD, **kwargs):
    """Sign up (other form fields in `kwargs`) and return (code, link) from the email received."""
    count = len(actions.smtp.to(email)) + 1
    assert_redirect(actions.signup(email, password=password, **kwargs), "/verify")
    message = actions.email_to(email, count)
    return code_from(message), link_from(message)


def verified(actions, email=EMAIL, password=PASSWORD):
    """Sign up and verify by code in this browser; the user exists afterwards."""
    code, _ = signed_up(actions, email, password)
    assert_redirect(actions.verify(email, code), "/account")


def complete(actions, how: str, email=EMAIL, count=1, password=None):
    """Finish with the code or the link of the `count`-th email."""
    if how == "code":
        return actions.verify(email, actions.code_for(email, count), password=password)
    return actions.confirm_link(actions.link_for(email, count), password=password)


def signed_in_as(actions, email=EMAIL) -> bool:
    """True when the browser's /account page shows `email`."""
    page = actions.client.get("/account")
    return page.status_code == 200 and email in page.text


def post_form(client, path, data, form_path=None, **request_kwargs):
    """GET the form page for its CSRF token, then POST, both with the same request options."""
    page = client.get(form_path or path, **request_kwargs)
    return client.post(path, data={**data, "csrf_token": csrf_token(page.text)}, **request_kwargs)


def wrong(code: str) -> str:
    """A 6-digit code that is not `code`."""
    return f"{(int(code) + 1) % 10**6:06d}"


def signup_and_verify(app, smtp, email: str) -> None:
    """Sign up and verify by code: the address becomes a user."""
    browser = SignupActions(app.test_client(), smtp)
    assert browser.signup(email).status_code == 303
    response = browser.verify(email, browser.code_for(email))
    assert response.status_code in (302, 303)
    assert response.headers["Location"].endswith("/account")


# -- what a response says -------------------------------------------------------------------------
def location(response) -> str:
    """The path a redirect points at ("" when the answer has no Location)."""
    return urlsplit(response.headers.get("Location", "")).path


def assert_redirect(response, path: str) -> None:
    """A POST/redirect/GET answer to `path`."""
    assert response.status_code in (302, 303), (response.status_code, response.text[:500])
    assert location(response) == path


def assert_see_other(response, path: str) -> None:
    """A POST/redirect/GET answer from gunicorn: exactly 303 to `path`."""
    assert response.status_code == 303, (response.status_code, response.text[:800])
    assert location(response) == path, response.headers.get("Location")


def page_text(page) -> str:
    """The page with HTML entities decoded."""
    return html.unescape(page.text)


def input_value(page, name: str):
    """The value attribute of the input named `name` (None when it has none)."""
    tag = re.search(rf'<input[^>]*\bname="{name}"[^>]*>', page.text)
    assert tag, f"no input named {name}"
    value = re.search(r'\bvalue="([^"]*)"', tag.group(0))
    return html.unescape(value.group(1)) if value else None


def field_errors(page, field: str) -> list[str]:
    """The error messages shown next to one form field."""
    found = re.findall(rf'<p class="error" id="{field}-error">(.*?)</p>', page.text, re.S)
    return [html.unescape(message) for message in found]


def session_cookie(response):
    """The Set-Cookie header of the session cookie (None when the response sets none)."""
    for header in response.headers.getlist("Set-Cookie"):
        if header.startswith("session="):
            return header
    return None


def cookie_flags(header: str) -> set[str]:
    """The attributes of a Set-Cookie header, lower-cased (`samesite=lax`, `httponly`, ...)."""
    return {part.strip().lower() for part in header.split(";")[1:]}


def session_of(client) -> dict:
    """What the client's session cookie holds."""
    with client.session_transaction() as session:
        return dict(session)


# -- what is stored ---------------------------------------------------------------------------
def pending(app, email=EMAIL):
    """The pending registration for `email`, or None."""
    with app.app_context():
        return app.extensions["pending"].get_registration(email)


def users(app) -> list[tuple[str, str]]:
    """(email, password_hash) of every users row."""
    with app.app_context():
        return [tuple(row) for row in db.session.execute(
            sqlalchemy.text("SELECT email, password_hash FROM users ORDER BY id")).all()]


def user_emails(app) -> list[str]:
    """The address of every users row."""
    return [email for email, _ in users(app)]


# -- /metrics -----------------------------------------------------------------------------------
def samples(text: str) -> dict:
    """{(name, frozenset(labels)): value} from a text exposition."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return found


def value(found: dict, name: str, **labels) -> float:
    """One sample's value (0 when absent)."""
    return found.get((name, frozenset(labels.items())), 0.0)


# -- backups ----------------------------------------------------------------------------------
def only_backup(directory: Path) -> Path:
    """The one signup-backup-* folder in `directory`."""
    folders = list(directory.glob("signup-backup-*"))
    assert len(folders) == 1, folders
    return folders[0]
