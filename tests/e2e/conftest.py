"""E2E fixtures: the app under gunicorn on our redis-server and SMTP server, and a Browser."""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import signal
import sqlite3
import subprocess
import time
import uuid
from pathlib import Path

import pytest
import requests
from urllib3.util.retry import Retry

from ..helpers import PASSWORD
from ..helpers import code_from, csrf_token, free_port, link_from, wait_for_port

ROOT = Path(__file__).resolve().parents[2]
GUNICORN = ROOT / ".venv" / "bin" / "gunicorn"
HTTP_TIMEOUT = 30
# Access log with the worker's pid (written "<pid>") and the step a test names in the
# X-E2E-Step header, so a test can see which worker served which request.
PID_ACCESS_LOG_FORMAT = '%(p)s %(s)s "%(r)s" step=%({x-e2e-step}i)s'
# For a server whose workers a test pauses (GunicornServer.only_worker): the master must not
# take a paused worker for a hung one and replace it (gunicorn.conf.py's timeout is 30 s).
PAUSE_SAFE_ARGS = ("--timeout", "600")
# Servers running now: their new log output is checked after every test.
RUNNING: list["GunicornServer"] = []

class GunicornServer:
    """`gunicorn wsgi:app` as a subprocess, its stdout and stderr captured in files."""

    def __init__(self, directory: Path, redis_url: str, smtp_port: int, *, workers: int = 2,
                 extra_env: dict | None = None, access_log_format: str | None = None,
                 extra_args: tuple[str, ...] = ()):
        self.directory = Path(directory)
        self.port = free_port()
        self.workers = workers
        self.database = self.directory / "users.db"
        self.stdout_path = self.directory / "gunicorn.stdout"
        self.stderr_path = self.directory / "gunicorn.stderr"
        self.access_log_format = access_log_format
        self.extra_args = list(extra_args)
        self.env = {
            **os.environ,
            "APP_ENV": "development",
            "REDIS_URL": redis_url,
            "DATABASE_URL": f"sqlite:///{self.database}",
            "MAIL_SERVER": "127.0.0.1",
            "MAIL_PORT": str(smtp_port),
            "SECRET_KEY": secrets.token_urlsafe(48),
            "APP_BASE_URL": self.base_url,
            # As `make run` exports it: where links point when APP_BASE_URL is unset.
            "PORT": str(self.port),
            "RESEND_COOLDOWN_SECONDS": "0",
            "RESEND_MAX_PER_HOUR": "1000",
            "RATELIMIT_ENABLED": "off",
            "HEALTH_TOKEN": "",
            **(extra_env or {}),
        }
        self.process: subprocess.Popen | None = None
        self._checked = {self.stdout_path: 0, self.stderr_path: 0}

    @property
    def base_url(self) -> str:
        """http://127.0.0.1:<port>"""
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> "GunicornServer":
        """Start gunicorn (again, on the same port, after a crash) and wait until a worker
        answers."""
        args = [str(GUNICORN), "--no-control-socket", "-c", "gunicorn.conf.py",
                "--bind", f"127.0.0.1:{self.port}", "--workers", str(self.workers)]
        if self.access_log_format:
            args += ["--access-logformat", self.access_log_format]
        args += [*self.extra_args, "wsgi:app"]
        # Appended to: a server started again after a crash keeps one log.
        with open(self.stdout_path, "ab") as out, open(self.stderr_path, "ab") as err:
            self.process = subprocess.Popen(args, cwd=ROOT, env=self.env, stdout=out, stderr=err)
        if self not in RUNNING:
            RUNNING.append(self)
        deadline = time.monotonic() + timeout
        wait_for_port(self.port, timeout)
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            try:
                requests.get(f"{self.base_url}/", timeout=5)
                return self
            except requests.RequestException:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"gunicorn did not start:\n{self.output()}")

    def worker_pids(self, timeout: float = 30.0) -> list[int]:
        """The pids of the master's worker processes (Linux /proc), once all of them run."""
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        deadline = time.monotonic() + timeout
        while True:
            pids = sorted(int(pid) for pid in children.read_text().split())
            if len(pids) == self.workers:
                return pids
            if time.monotonic() > deadline:
                raise RuntimeError(f"{len(pids)} of {self.workers} gunicorn workers run: {pids}")
            time.sleep(0.05)

    @contextlib.contextmanager
    def only_worker(self, pid: int):
        """Pause (SIGSTOP) every other worker, so that new connections can reach only `pid`.

        Which worker accepts a connection is the kernel's choice; a paused worker cannot call
        accept(), so the one left running takes every new connection, on every run. Use it
        with `Browser(new_connection_per_request=True)`: a kept-alive connection to a paused
        worker would wait. Start the server with a long `--timeout` (PAUSE_SAFE_ARGS), or the
        master kills a worker paused longer than gunicorn's heartbeat timeout.
        """
        others = [other for other in self.worker_pids() if other != pid]
        for other in others:
            os.kill(other, signal.SIGSTOP)
        try:
            yield
        finally:
            for other in others:
                os.kill(other, signal.SIGCONT)

    def output(self) -> str:
        """Everything gunicorn and the app wrote so far (stdout, then stderr)."""
        return "".join(path.read_text(errors="replace")
                       for path in (self.stdout_path, self.stderr_path) if path.exists())

    def access_log(self) -> str:
        """The access log (gunicorn writes it to stdout)."""
        return self.stdout_path.read_text(errors="replace")

    def new_output(self) -> str:
        """What was written since the last call."""
        parts = []
        for path, offset in self._checked.items():
            data = path.read_bytes() if path.exists() else b""
            parts.append(data[offset:].decode(errors="replace"))
            self._checked[path] = len(data)
        return "".join(parts)

    @staticmethod
    def problems(text: str) -> list[str]:
        """Lines that show a server error: a traceback or a 500 in the access log."""
        return [line for line in text.splitlines() if "Traceback" in line or " 500 " in line]

    def stop(self) -> None:
        """SIGTERM (graceful), then SIGKILL if it does not end."""
        if self in RUNNING:
            RUNNING.remove(self)
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


@pytest.fixture(autouse=True)
def no_server_errors():
    """After each test: no running gunicorn logged a traceback or answered 500 during it."""
    for server in RUNNING:
        server.new_output()
    yield
    found = {server.base_url: server.problems(server.new_output()) for server in RUNNING}
    found = {url: lines for url, lines in found.items() if lines}
    assert not found, f"server errors during the test: {found}"


@pytest.fixture
def fresh_redis(redis_url):
    """An empty redis-server for each test of a file that marks itself
    `pytest.mark.usefixtures("fresh_redis")` (users persist: its tests use new addresses)."""
    return redis_url


def start_gunicorn(tmp_path_factory, redis_server, smtp_server, name, *, db=0, **options):
    """Start one gunicorn for a fixture; yield it; on teardown stop it and check its logs.

    A start that fails is stopped too, and one that lost its free port to another process
    (gunicorn: "Connection in use") is tried once more on a new port.
    """
    redis_url = f"redis://127.0.0.1:{redis_server.port}/{db}"
    for attempt in range(2):
        server = GunicornServer(tmp_path_factory.mktemp(name), redis_url, smtp_server.port,
                                **options)
        try:
            server.start()
            break
        except RuntimeError:
            server.stop()
            if attempt or "Connection in use" not in server.output():
                raise RuntimeError(f"gunicorn did not start:\n{server.output()}") from None
    try:
        yield server
    finally:
        server.stop()
        output = server.output()
        assert "Traceback" not in output, f"gunicorn output has a traceback:\n{output}"
        assert " 500 " not in server.access_log(), f"a request answered 500:\n{output}"


@pytest.fixture(scope="module")
def live_server(tmp_path_factory, redis_server, smtp_server):
    """The app under gunicorn (2 workers) with the default caps."""
    yield from start_gunicorn(tmp_path_factory, redis_server, smtp_server, "gunicorn-main")


@pytest.fixture(scope="module")
def capped_server(tmp_path_factory, redis_server, smtp_server):
    """The app under gunicorn with CODE_MAX_ATTEMPTS=2 and REGISTRATION_MAX_ATTEMPTS=3."""
    yield from start_gunicorn(
        tmp_path_factory, redis_server, smtp_server, "gunicorn-capped", db=1,
        extra_env={"CODE_MAX_ATTEMPTS": "2", "REGISTRATION_MAX_ATTEMPTS": "3"})


@pytest.fixture(scope="module")
def three_worker_server(tmp_path_factory, redis_server, smtp_server):
    """The app under gunicorn with 3 workers, logging which worker served each request; a test
    may pause workers (GunicornServer.only_worker)."""
    yield from start_gunicorn(tmp_path_factory, redis_server, smtp_server, "gunicorn-three",
                              db=2, workers=3, access_log_format=PID_ACCESS_LOG_FORMAT,
                              extra_args=PAUSE_SAFE_ARGS)


@pytest.fixture(scope="module")
def proxied_server(tmp_path_factory, redis_server, smtp_server):
    """The app under gunicorn without APP_BASE_URL, trusting one proxy (TRUSTED_PROXIES=1)."""
    yield from start_gunicorn(tmp_path_factory, redis_server, smtp_server, "gunicorn-proxied",
                              db=3, workers=1,
                              extra_env={"APP_BASE_URL": "", "TRUSTED_PROXIES": "1"})


class Browser:
    """One browser: a requests.Session (its cookies), reading CSRF tokens from each form page."""

    def __init__(self, base_url: str, *, new_connection_per_request: bool = False):
        self.base_url = base_url
        self.session = requests.Session()
        # gunicorn closes an idle kept-alive connection after `keepalive` (2 s): a GET sent on
        # it just as the server closes it gets a reset. A browser sends such a request again on
        # a new connection; so does this one, for GETs only (they change nothing). A POST is
        # never sent twice.
        self.session.mount("http://", requests.adapters.HTTPAdapter(max_retries=Retry(
            total=2, connect=2, read=2, status=0, redirect=0, allowed_methods={"GET", "HEAD"},
            raise_on_status=False)))
        if new_connection_per_request:
            # No keep-alive: each request is a new connection any worker may accept.
            self.session.headers["Connection"] = "close"

    def url(self, path_or_url: str) -> str:
        """Absolute URL on this server (emailed links are absolute already)."""
        if path_or_url.startswith("http"):
            assert path_or_url.startswith(self.base_url + "/"), path_or_url
            return path_or_url
        return self.base_url + path_or_url

    def get(self, path: str, **kwargs) -> requests.Response:
        """GET without following redirects."""
        return self.session.get(self.url(path), allow_redirects=False, timeout=HTTP_TIMEOUT,
                                **kwargs)

    def post(self, path: str, data: dict, **kwargs) -> requests.Response:
        """POST a form without following redirects."""
        return self.session.post(self.url(path), data=data, allow_redirects=False,
                                 timeout=HTTP_TIMEOUT, **kwargs)

    def get_form(self, path: str, **kwargs) -> str:
        """GET a form page (200) and return its CSRF token."""
        page = self.get(path, **kwargs)
        assert page.status_code == 200, (path, page.status_code, page.text[:500])
        return csrf_token(page.text)

    def post_form(self, path: str, data: dict, *, form_path: str | None = None,
                  **kwargs) -> requests.Response:
        """Fill in the form at `form_path` (default: `path`) and submit it, as a person would."""
        token = self.get_form(form_path or path, **kwargs)
        return self.post(path, {**data, "csrf_token": token}, **kwargs)

    def signup(self, email: str, password: str = PASSWORD, name: str = "", **kwargs):
        """Fill in the signup form."""
        return self.post_form("/signup", {"email": email, "password": password,
                                          "confirm": password, "name": name}, **kwargs)

    def verify(self, email: str, code: str, password: str | None = None, **kwargs):
        """Fill in the code form."""
        data = {"email": email, "code": code}
        if password is not None:
            data["password"] = password
        return self.post_form("/verify", data, **kwargs)

    def resend(self, email: str):
        """Ask for a new code."""
        return self.post_form("/resend", {"email": email})

    def open_link(self, link: str):
        """GET the emailed link (what a mail scanner does too)."""
        return self.get(link)

    def confirm_link(self, link: str, password: str | None = None):
        """Press the confirm button on the link page."""
        return self.post_form(link, {} if password is None else {"password": password})

    def login(self, email: str, password: str = PASSWORD):
        """Sign in."""
        return self.post_form("/login", {"email": email, "password": password})


def new_address(label: str) -> str:
    """An address no other test (or earlier run against the same database) uses."""
    return f"{label}-{uuid.uuid4().hex[:12]}@example.com"


def code_and_link(smtp_server, address: str, count: int = 1) -> tuple[str, str]:
    """The code and link of the `count`-th email to `address`, waiting for it."""
    message = smtp_server.wait_for(address, count)
    return code_from(message), link_from(message)


def wrong_code(code: str) -> str:
    """A 6-digit code that is not `code`."""
    return f"{(int(code) + 1) % 1_000_000:06d}"


def dump_redis(client) -> dict[str, tuple[str, object, int]]:
    """Every key (found with SCAN) -> (type, value read by type, TTL in seconds)."""
    readers = {
        "string": client.get,
        "hash": client.hgetall,
        "list": lambda k: client.lrange(k, 0, -1),
        "set": client.smembers,
        "zset": lambda k: client.zrange(k, 0, -1, withscores=True),
        "stream": lambda k: client.xrange(k),
    }
    dump = {}
    for raw_key in client.scan_iter(count=500):
        key = raw_key.decode()
        kind = client.type(raw_key).decode()
        value = readers[kind](raw_key) if kind in readers else None
        dump[key] = (kind, value, client.ttl(raw_key))
    return dump


def assert_unchanged(before: dict, after: dict) -> None:
    """Two dumps of dump_redis hold the same keys, types and values, and no TTL was extended.

    TTLs are whole seconds that keep falling between the two reads (one second boundary or
    several on a loaded machine), so a TTL may be lower afterwards, never higher: a write that
    refreshed an expiry shows as a higher one.
    """
    assert {key: entry[:2] for key, entry in after.items()} == \
        {key: entry[:2] for key, entry in before.items()}
    for key, (_kind, _value, ttl) in after.items():
        was = before[key][2]
        assert (ttl == was) if was < 0 else (0 <= ttl <= was), (key, was, ttl)


def redis_text(dump: dict) -> str:
    """Every key name and value of a dump as one searchable text."""
    def flat(value):
        if isinstance(value, bytes):
            return value.decode(errors="replace")
        if isinstance(value, dict):
            return " ".join(f"{flat(k)} {flat(v)}" for k, v in value.items())
        if isinstance(value, (list, tuple, set)):
            return " ".join(flat(v) for v in value)
        return str(value)

    return "\n".join(f"{key} {flat(value)}" for key, (_kind, value, _ttl) in dump.items())


def user_rows(database: Path, email: str | None = None) -> list[sqlite3.Row]:
    """Rows of the users table (all, or those with `email`), read with sqlite3."""
    connection = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    connection.row_factory = sqlite3.Row
    try:
        if email is None:
            return connection.execute("SELECT * FROM users").fetchall()
        return connection.execute("SELECT * FROM users WHERE email = ?", (email,)).fetchall()
    finally:
        connection.close()


def contains_code(text: str, code: str) -> bool:
    """True when `code` appears as a number of its own (not inside a longer run of digits)."""
    return re.search(rf"(?<!\d){re.escape(code)}(?!\d)", text) is not None
