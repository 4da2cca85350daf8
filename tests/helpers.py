"""Real parts for tests: a redis-server on a free port, an in-process SMTP server, parsers."""

from __future__ import annotations

import email
import email.policy
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

import pytest
import redis

PG_HOST, PG_PORT = "127.0.0.1", 5432  # the PostgreSQL service (trust, database `test`)
CODE_RE = re.compile(r"^\s{4}(\d{6})\s*$", re.MULTILINE)
LINK_RE = re.compile(r"(https?://\S+/verify/[A-Za-z0-9_\-]+)")


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
