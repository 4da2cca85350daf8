"""Two app hosts behind HAProxy, as production runs them: each its own gunicorn master with two
workers, both on one redis-server and one PostgreSQL database, HAProxy running
deploy/haproxy.cfg (only its addresses replaced) with health checks on /health.

A person is a browser with an address of its own on the loopback network (127.x.y.z), so
HAProxy's `option forwardfor` tells the app who it is. A step is sent to one chosen instance
either through HAProxy, with the other instance put in maintenance on HAProxy's admin socket, or
straight to the instance's port with the X-Forwarded-For HAProxy would add. With both instances
in service, no assertion depends on which instance HAProxy picks. A third backend server, an
HTTP server in the test that keeps each request's headers, shows what HAProxy forwards; it is in
maintenance unless a test routes to it.

The last test SIGKILLs one instance mid-traffic, adds its figures to the fault report
(docs/reliability.md), and starts the instance again.
"""

from __future__ import annotations

import csv
import itertools
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
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests
from requests_toolbelt.adapters.source import SourceAddressAdapter

from tests.e2e.conftest import (  # noqa: F401 (no_server_errors: autouse, checks gunicorn logs)
    Browser,
    code_and_link,
    new_address,
    no_server_errors,
    start_gunicorn,
    wrong_code,
)
from tests.helpers import (
    PASSWORD,
    ROOT,
    RedisServer,
    csrf_token,
    path_of,
    require,
    wait_for_port,
)

from tests.helpers import assert_see_other as assert_redirect

from .test_db_smtp_faults import pending_emails
from .test_redis_faults import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.redis]

TEMPLATE = ROOT / "deploy" / "haproxy.cfg"
BACKEND = "signup_web"
# Each instance's access log shows the forwarding headers it received (they are not secret).
ACCESS_LOG_FORMAT = ('%(p)s %(s)s "%(r)s" xff=%({x-forwarded-for}i)s '
                     'xfp=%({x-forwarded-proto}i)s xfh=%({x-forwarded-host}i)s')
NOT_RIGHT = "That code is not right (or has expired)."
DEAD_CODE = "tried too many times"
LOCKED = "Too many wrong codes for this address"
# Small limits, so that the tests reach them in a few requests; every person has an address of
# its own, so the per-IP limits of one test never touch another's.
# (Flask-Limiter's fixed window starts at a client's first POST: an hour is far more than a test
# takes, so no window ends in the middle of one.)
SITE_ENV = {
    "RATELIMIT_SIGNUP": "3/hour",
    "RESEND_COOLDOWN_SECONDS": "0",
    "RESEND_MAX_PER_HOUR": "2",
    "CODE_MAX_ATTEMPTS": "2",
    "REGISTRATION_MAX_ATTEMPTS": "3",
}
# Numbers the people of this run (itertools.count: safe to share between threads).
_PEOPLE = itertools.count()


def haproxy_binary() -> str:
    """Debian's haproxy (in /usr/sbin, off a normal user's PATH); skip or fail without it."""
    found = shutil.which("haproxy") or shutil.which("haproxy", path="/usr/sbin:/usr/local/sbin")
    if not found:
        require("REQUIRE_HAPROXY", "haproxy is not installed (apt-get install haproxy)")
    return found


def haproxy_config(template: str, port: int, servers: dict[str, int], admin_socket: Path,
                   disabled=()) -> str:
    """deploy/haproxy.cfg with its compose addresses replaced: the frontend's `bind` by
    127.0.0.1:`port`, the `server-template` by one `server` line per server (those named in
    `disabled` start in maintenance), and an admin socket added to `global`. Each replaced line
    must be found exactly once."""
    lines, replaced = [], {"bind": 0, "server-template": 0, "global": 0}
    for line in template.splitlines():
        words = line.split()
        indent = line[:len(line) - len(line.lstrip())]
        if words[:1] == ["bind"]:
            replaced["bind"] += 1
            lines.append(f"{indent}bind 127.0.0.1:{port}")
        elif words[:1] == ["server-template"]:
            replaced["server-template"] += 1
            lines += [f"{indent}server {name} 127.0.0.1:{server_port}"
                      + (" disabled" if name in disabled else "")
                      for name, server_port in servers.items()]
        elif words == ["global"]:
            replaced["global"] += 1
            lines += [line, f"    stats socket {admin_socket} mode 600 level admin"]
        else:
            lines.append(line)
    assert all(count == 1 for count in replaced.values()), replaced
    return "\n".join(lines) + "\n"


@contextmanager
def reserved_port():
    """A free port that stays bound (not listening) until the block ends, so that no server
    started meanwhile is given it. Both this socket and HAProxy's listener set SO_REUSEADDR, so
    HAProxy can bind the port while it is held."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


class HAProxy:
    """haproxy in the foreground on a generated config; its log in a file; its admin socket."""

    def __init__(self, directory: Path, port: int, servers: dict[str, int], disabled=()):
        self.binary = haproxy_binary()
        self.port = port
        self.servers = servers
        self.disabled = set(disabled)
        self.socket_path = directory / "admin.sock"
        self.config_path = directory / "haproxy.cfg"
        self.log_path = directory / "haproxy.log"
        self.config_path.write_text(haproxy_config(TEMPLATE.read_text(), self.port, servers,
                                                   self.socket_path, disabled))
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        """http://127.0.0.1:<port>: the site as its visitors reach it."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "HAProxy":
        """Check the config, start haproxy, and wait until every server passed its checks."""
        check = subprocess.run([self.binary, "-c", "-f", str(self.config_path)],
                               capture_output=True, text=True, timeout=30)
        assert check.returncode == 0, check.stdout + check.stderr
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen([self.binary, "-db", "-f", str(self.config_path)],
                                            stdout=log, stderr=subprocess.STDOUT)
        # Ready when its own admin socket exists: a TCP connect to the public port alone can be
        # answered by something else (or by the connecting socket itself).
        wait_until(self.listening, 15, 0.02, "HAProxy: admin socket")
        wait_for_port(self.port, 15)
        for name in self.servers:
            self.wait_for(name, "MAINT" if name in self.disabled else "UP", 15)
        return self

    def listening(self) -> bool:
        """Whether haproxy has made its admin socket; fails with its log if it has exited."""
        code = self.process.poll()
        assert code is None, f"haproxy exited with {code}:\n{self.log()}"
        return self.socket_path.exists()

    def command(self, line: str) -> str:
        """One command on the admin socket; its answer."""
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(5)
            sock.connect(str(self.socket_path))
            sock.sendall(line.encode() + b"\n")
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks).decode()

    def stats(self) -> dict[str, dict]:
        """Each server's row of `show stat` (status, check_status, check_code, ...)."""
        text = self.command("show stat").lstrip("# ")
        return {row["svname"]: row for row in csv.DictReader(text.splitlines())
                if row["pxname"] == BACKEND and row["svname"] in self.servers}

    def status(self) -> dict[str, str]:
        """Each server's state as HAProxy sees it: UP, DOWN, MAINT, "DOWN 1/2", ..."""
        return {name: row["status"] for name, row in self.stats().items()}

    def wait_for(self, name: str, state: str, timeout: float) -> float:
        """Wait until server `name` is in `state`; the seconds it took."""
        started = time.monotonic()
        wait_until(lambda: self.status()[name] == state, timeout, 0.02,
                   f"HAProxy: {name} {state}")
        return time.monotonic() - started

    def set_state(self, name: str, state: str) -> None:
        """Put server `name` in maintenance ("maint") or back in service ("ready")."""
        self.command(f"set server {BACKEND}/{name} state {state}")

    @contextmanager
    def only(self, name: str):
        """Route every request to server `name`: the others in maintenance; afterwards each
        server back in the state it was in."""
        before = self.status()
        for other in self.servers:
            if other != name:
                self.set_state(other, "maint")
        self.set_state(name, "ready")
        try:
            self.wait_for(name, "UP", 10)
            yield
        finally:
            for server, state in before.items():
                self.set_state(server, "maint" if state == "MAINT" else "ready")
            for server, state in before.items():
                if state == "UP":
                    self.wait_for(server, "UP", 10)

    def log(self) -> str:
        """HAProxy's log so far (access log and server state changes)."""
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        """Stop haproxy."""
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)


class HeaderEcho:
    """An HTTP server that answers 200 to everything and keeps the headers of each request: a
    backend server that shows exactly what HAProxy forwards."""

    def __init__(self):
        received = self.received = []

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server's name)
                received.append(self.headers)
                body = b"ok"
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> "HeaderEcho":
        """Serve in a thread."""
        self.thread.start()
        return self

    def stop(self) -> None:
        """Stop serving."""
        self.server.shutdown()
        self.server.server_close()


@dataclass
class Site:
    """The running topology: instances by name, HAProxy, Redis, the PostgreSQL database, and
    the header echo (a third server in HAProxy's backend, in maintenance unless a test routes
    to it)."""

    instances: dict
    haproxy: HAProxy
    redis: RedisServer
    database: str
    echo: HeaderEcho

    @property
    def url(self) -> str:
        """The site's public URL (HAProxy)."""
        return self.haproxy.url


@pytest.fixture(scope="module")
def site(tmp_path_factory, smtp_server, postgres):
    """Redis, a fresh PostgreSQL database, two gunicorn masters (2 workers each) and HAProxy,
    configured as production is (one SECRET_KEY, APP_BASE_URL the HAProxy URL, TRUSTED_PROXIES=1,
    HEALTH_TOKEN set) with the small limits of SITE_ENV; everything stopped and removed after."""
    haproxy_binary()  # skip (or fail in CI) before starting anything
    with ExitStack() as stack:
        redis_server = RedisServer().start()
        stack.callback(redis_server.cleanup)
        database = postgres.create()
        # Held until HAProxy listens on it, so that no instance started meanwhile is given it.
        public_port = stack.enter_context(reserved_port())
        shared = {
            "APP_ENV": "production",
            "SECRET_KEY": secrets.token_urlsafe(48),
            "APP_BASE_URL": f"http://127.0.0.1:{public_port}",
            "DATABASE_URL": postgres.url(database),
            "MAIL_DEFAULT_SENDER": "signup@example.com",
            "HEALTH_TOKEN": secrets.token_urlsafe(24),
            "TRUSTED_PROXIES": "1",
            "RATELIMIT_ENABLED": "on",
            # Plain HTTP between the test and HAProxy; production terminates TLS there.
            "SESSION_COOKIE_SECURE": "off",
            **SITE_ENV,
        }
        instances = {}
        for name in ("app1", "app2"):
            instances[name] = stack.enter_context(contextmanager(start_gunicorn)(
                tmp_path_factory, redis_server, smtp_server, f"lb-{name}", workers=2,
                extra_env=shared, access_log_format=ACCESS_LOG_FORMAT))
        echo = HeaderEcho().start()
        stack.callback(echo.stop)
        servers = {name: server.port for name, server in instances.items()}
        haproxy = HAProxy(tmp_path_factory.mktemp("lb-haproxy"), public_port,
                          {**servers, "echo": echo.port}, disabled={"echo"})
        stack.callback(haproxy.stop)
        haproxy.start()
        yield Site(instances, haproxy, redis_server, database, echo)


class Person(Browser):
    """A browser at an address of its own, using the site through HAProxy; `at(instance)` sends
    its requests straight to one instance instead, with the X-Forwarded-For HAProxy would add."""

    def __init__(self, site: Site):
        super().__init__(site.url)
        self.public_url = site.url
        n = next(_PEOPLE)
        self.ip = f"127.0.{n // 250 + 1}.{n % 250 + 1}"  # 127.0.1.1, 127.0.1.2, ...
        self.session.mount("http://", SourceAddressAdapter(self.ip))

    @contextmanager
    def at(self, instance):
        """Requests inside go to `instance`'s own port."""
        self.base_url = instance.base_url
        self.session.headers["X-Forwarded-For"] = self.ip
        try:
            yield self
        finally:
            self.base_url = self.public_url
            del self.session.headers["X-Forwarded-For"]


def served(instance, method: str, path: str, ip: str) -> list[str]:
    """The access-log lines of `instance` for `method path` from client `ip`."""
    request = f'"{method} {path} HTTP/1.1"'
    return [line for line in instance.access_log().splitlines()
            if request in line and f"xff={ip} " in line]


# -- the configuration -------------------------------------------------------------------------
def test_deploy_haproxy_cfg_is_valid_as_compose_runs_it():
    """deploy/haproxy.cfg, unmodified (as the compose service mounts it), passes `haproxy -c`."""
    check = subprocess.run([haproxy_binary(), "-c", "-f", str(TEMPLATE)], capture_output=True,
                           text=True, timeout=30)
    assert check.returncode == 0, check.stdout + check.stderr


def test_haproxy_replaces_the_forwarding_headers_a_client_sends(site):
    """A client's own X-Forwarded-*/Forwarded headers never reach a backend: it receives one
    X-Forwarded-For, the address the connection came from, and X-Forwarded-Proto http."""
    person = Person(site)
    made_up = {"X-Forwarded-For": "10.6.6.6, 10.7.7.7", "X-Forwarded-Proto": "https",
               "X-Forwarded-Host": "evil.example", "X-Forwarded-Port": "443",
               "X-Forwarded-Prefix": "/evil", "Forwarded": "for=10.6.6.6;proto=https"}
    with site.haproxy.only("echo"):
        assert person.get("/signup", headers=made_up).text == "ok"
    headers = site.echo.received[-1]
    assert headers.get_all("X-Forwarded-For") == [person.ip]
    assert headers.get_all("X-Forwarded-Proto") == ["http"]
    for name in ("X-Forwarded-Host", "X-Forwarded-Port", "X-Forwarded-Prefix", "Forwarded"):
        assert headers.get_all(name) is None, name


def test_health_checks_ask_each_instance_for_health(site):
    """HAProxy's checks are GET /health answered 200 by each instance (a layer-7 check, not a
    port probe: an instance whose /health says 503 is taken out although its port answers)."""
    stats = site.haproxy.stats()
    for name, instance in site.instances.items():
        assert (stats[name]["check_status"], stats[name]["check_code"]) == ("L7OK", "200")
        assert re.search(r' 200 "GET /health HTTP/1.1" xff=- ', instance.access_log())


# -- one person, two instances -----------------------------------------------------------------
def test_sign_up_on_one_instance_and_verify_on_the_other(site, smtp_server, postgres):
    """Signup answered by app1, the code (straight to the instances) or the link (through
    HAProxy) accepted by app2; the session and CSRF token made by one instance work on the
    other."""
    app1, app2 = site.instances["app1"], site.instances["app2"]

    by_code, address = Person(site), new_address("lb-code")
    with by_code.at(app1):
        assert_redirect(by_code.signup(address, name="Ada"), "/verify")
    code, _link = code_and_link(smtp_server, address)
    with by_code.at(app2):
        assert "@example.com" in by_code.get("/verify").text
        assert_redirect(by_code.verify(address, code), "/account")
        assert address in by_code.get("/account").text
    with by_code.at(app1):
        assert address in by_code.get("/account").text
    assert served(app1, "POST", "/signup", by_code.ip) and not served(app2, "POST", "/signup",
                                                                        by_code.ip)
    assert served(app2, "POST", "/verify", by_code.ip)

    by_link, other = Person(site), new_address("lb-link")
    with site.haproxy.only("app1"):
        assert_redirect(by_link.signup(other), "/verify")
    _code, link = code_and_link(smtp_server, other)
    assert link.startswith(site.url + "/verify/")
    with site.haproxy.only("app2"):
        assert by_link.open_link(link).status_code == 200
        assert_redirect(by_link.confirm_link(link), "/account")
        assert other in by_link.get("/account").text
    assert served(app1, "POST", "/signup", by_link.ip)
    assert served(app2, "POST", "/verify/…", by_link.ip)
    assert not served(app2, "POST", "/signup", by_link.ip)

    assert sorted(e for e in postgres.user_emails(site.database) if e in (address, other)) == \
        sorted([address, other])
    assert address not in pending_emails(site.redis.client())
    # HAProxy's access log, like the app's, writes the link without its token.
    token = path_of(link).rsplit("/", 1)[1]
    assert token not in site.haproxy.log()
    assert re.search(r" POST /verify/…$", site.haproxy.log(), re.M)


# -- limits shared by both instances ---------------------------------------------------------
def test_signup_rate_limit_is_shared_and_keyed_by_the_address_haproxy_saw(site):
    """RATELIMIT_SIGNUP=3/hour per client: two signups answered by app1 and one by app2 use it
    up, and the fourth is refused by either, whatever X-Forwarded-For the client sends (HAProxy
    replaces it). A person at another address still signs up: the app does not see everyone as
    HAProxy."""
    app1, app2 = site.instances["app1"], site.instances["app2"]
    person = Person(site)
    spoofed = []

    def signup():
        fake = f"10.{secrets.randbelow(250)}.{secrets.randbelow(250)}.{len(spoofed) + 1}"
        spoofed.append(fake)
        headers = {"X-Forwarded-For": fake, "X-Forwarded-Host": "evil.example",
                   "X-Forwarded-Proto": "https", "Forwarded": f"for={fake}"}
        return person.signup(new_address("lb-limit"), headers=headers)

    with site.haproxy.only("app1"):
        for _ in range(2):
            assert_redirect(signup(), "/verify")
    with site.haproxy.only("app2"):
        assert_redirect(signup(), "/verify")
        refused = signup()
        assert refused.status_code == 429 and int(refused.headers["Retry-After"]) > 0
    with site.haproxy.only("app1"):
        assert signup().status_code == 429

    assert len(served(app1, "POST", "/signup", person.ip)) == 3
    assert len(served(app2, "POST", "/signup", person.ip)) == 2
    # Each instance saw the client's real address and none of the forwarding headers the client
    # made up (exactly what reaches a backend: the echo test above).
    for instance in (app1, app2):
        lines = [line for line in instance.access_log().splitlines() if "xff=" in line]
        mine = [line for line in lines if f"xff={person.ip} " in line]
        assert mine and all(line.endswith(f"xff={person.ip} xfp=http xfh=-") for line in mine)
        assert not any(fake in line for line in lines for fake in spoofed)
    counters = [key.decode() for key in site.redis.client().scan_iter(
        match="signup:ratelimit*", count=500)]
    assert any(person.ip in key for key in counters), counters
    assert not any(fake in key for key in counters for fake in spoofed)

    # Through HAProxy with both instances in service: another address has its own allowance,
    # and it holds however HAProxy spreads the POSTs: 3 accepted, then refused.
    neighbour = Person(site)
    answers = [neighbour.signup(new_address("lb-limit")).status_code for _ in range(5)]
    assert answers == [303, 303, 303, 429, 429]


def test_email_allowance_is_shared(site, smtp_server):
    """RESEND_MAX_PER_HOUR=2 per address: the signup's email (app1) and a resend (app2) use it
    up; a resend through app1 is refused, and so is a new signup's email (app2)."""
    person, address = Person(site), new_address("lb-allowance")
    with site.haproxy.only("app1"):
        assert_redirect(person.signup(address), "/verify")
    with site.haproxy.only("app2"):
        assert_redirect(person.resend(address), "/verify")
    smtp_server.wait_for(address, 2)
    with site.haproxy.only("app1"):
        refused = person.resend(address)
        assert refused.status_code == 429 and int(refused.headers["Retry-After"]) > 0
    with site.haproxy.only("app2"):
        assert_redirect(person.signup(address), "/verify")  # replaced, but not emailed
    # Each answer came after its email was handed over (or not) to the SMTP server.
    assert len(smtp_server.to(address)) == 2


def test_code_caps_are_shared(site, smtp_server, postgres):
    """CODE_MAX_ATTEMPTS=2: one wrong code on each instance kills the code on both;
    REGISTRATION_MAX_ATTEMPTS=3: the refused right code was the third, so a fresh code sent by
    the other instance is refused too (429)."""
    app1, app2 = site.instances["app1"], site.instances["app2"]
    person, address = Person(site), new_address("lb-caps")
    with person.at(app1):
        assert_redirect(person.signup(address), "/verify")
    code, _link = code_and_link(smtp_server, address)
    for instance in (app1, app2):
        with person.at(instance):
            wrong = person.verify(address, wrong_code(code))
            assert wrong.status_code == 400 and NOT_RIGHT in wrong.text
    with person.at(app1):
        dead = person.verify(address, code)
        assert dead.status_code == 400 and DEAD_CODE in dead.text
    with person.at(app2):
        assert_redirect(person.resend(address), "/verify")
    fresh, _link = code_and_link(smtp_server, address, count=2)
    with person.at(app1):
        locked = person.verify(address, fresh)
        assert locked.status_code == 429 and LOCKED in locked.text
        assert 0 < int(locked.headers["Retry-After"]) <= 86400
    assert postgres.user_count(site.database, address) == 0


# -- one instance killed mid-traffic -----------------------------------------------------------
KILL_CLIENTS = 4  # people signing up at the same time
KILL_BEFORE = 6  # registrations answered (both instances in service) before the kill
KILL_AFTER = 8  # signups started after HAProxy marked the instance down, to see them served
KILL_MAX_SIGNUPS = 120  # the traffic's bound in count; every wait below is bounded in time


def child_pids(pid: int) -> list[int]:
    """The processes whose parent is `pid` (a gunicorn master's workers), read from /proc."""
    children = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                children.append(int(entry.name))
    return children


def alive(pid: int) -> bool:
    """True while `pid` runs (a zombie waiting to be reaped counts as gone)."""
    try:
        return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def kill_instance(server) -> int:
    """SIGKILL a gunicorn master and its workers at once (a host losing power); how many."""
    master = server.process.pid
    pids = [master, *child_pids(master)]
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    server.process.wait(10)
    wait_until(lambda: not any(alive(pid) for pid in pids), 10, what="killed workers gone")
    # What gunicorn.conf.py's on_exit would have removed.
    shutil.rmtree(Path(tempfile.gettempdir()) / f"signup-metrics-{master}", ignore_errors=True)
    return len(pids)


@dataclass
class Attempt:
    """One person's signup through HAProxy, and what came of it."""

    person: Person
    address: str
    started: float
    status: int | None = None  # the POST /signup's answer; None: no answer
    answered: bool = False  # 303 to /verify: "check your email"
    verify_status: int | None = None
    no_answer: bool = False  # the connection was closed without an answer


def test_killed_instance_is_taken_out_by_health_checks_and_no_registration_is_lost(
        site, smtp_server, postgres, fault_report):
    """Four people at a time sign up (and every other one verifies) through HAProxy while app1's
    master and workers are SIGKILLed. HAProxy's /health checks mark it DOWN; every signup
    started after that is answered by app2; every signup answered "check your email" is a user
    or still pending; registrations app1 made before dying verify through app2."""
    row = fault_report.row(
        "one of two app hosts killed behind HAProxy",
        f"SIGKILL to app1's gunicorn master and its 2 workers while {KILL_CLIENTS} browsers (each "
        "its own client address) sign up and verify through HAProxy; app2 the same (2 workers); "
        "one Redis, one PostgreSQL database; HAProxy checks GET /health every 1 s, fall 2")
    lock = threading.Lock()

    def tally(response):
        with lock:
            row.count(response.status_code)
        return response

    app1 = site.instances["app1"]
    # Registrations made by the instance that will die (routed there, not left to chance).
    made_on_app1 = []
    with site.haproxy.only("app1"):
        for _ in range(3):
            person, address = Person(site), new_address("lb-on-app1")
            assert_redirect(tally(person.signup(address)), "/verify")
            made_on_app1.append((person, address))

    attempts: list[Attempt] = []
    stop = threading.Event()

    def sign_up(attempt: Attempt, verify: bool) -> None:
        person = attempt.person
        page = tally(person.get("/signup"))
        if page.status_code != 200:  # the form page failed: nothing was sent
            attempt.status = page.status_code
            return
        response = tally(person.post("/signup", {
            "email": attempt.address, "password": PASSWORD, "confirm": PASSWORD,
            "name": "", "csrf_token": csrf_token(page.text)}))
        attempt.status = response.status_code
        attempt.answered = (response.status_code == 303
                            and response.headers["Location"].endswith("/verify"))
        if attempt.answered and verify:
            code, _link = code_and_link(smtp_server, attempt.address)
            attempt.verify_status = tally(person.verify(attempt.address, code)).status_code

    failures = []

    def traffic() -> None:
        while not stop.is_set():
            with lock:
                if len(attempts) >= KILL_MAX_SIGNUPS:
                    return
                attempt = Attempt(Person(site), new_address("lb-kill"), time.monotonic())
                attempts.append(attempt)
                verify = len(attempts) % 2 == 0
            try:
                sign_up(attempt, verify)
            except requests.ConnectionError:
                # A request in flight on app1 when it died, sent on a connection HAProxy
                # had used before: HAProxy closes the client's connection without an answer
                # (and without a log line), the HTTP/1.1 way of saying "not processed, send
                # it again" that browsers act on. requests does not resend a POST.
                attempt.no_answer = True
            except Exception as exc:  # anything else fails the test
                failures.append(repr(exc))
                return

    def answered(since: float = 0.0) -> int:
        with lock:
            return sum(a.answered for a in attempts if a.started > since)

    threads = [threading.Thread(target=traffic, name=f"person-{n}", daemon=True)
               for n in range(KILL_CLIENTS)]
    for thread in threads:
        thread.start()
    try:
        wait_until(lambda: answered() >= KILL_BEFORE, 60, what="signups before the kill")
        killed_at = time.monotonic()
        processes = kill_instance(app1)
        down_after = site.haproxy.wait_for("app1", "DOWN", 15)
        down_at = killed_at + down_after
        wait_until(lambda: answered(since=down_at) >= KILL_AFTER, 60,
                   what="signups after HAProxy marked app1 down")
    finally:
        stop.set()
        for thread in threads:
            thread.join(60)
    assert not any(thread.is_alive() for thread in threads)

    # Every registration app1 made before dying verifies now (only app2 is left).
    for person, address in made_on_app1:
        code, _link = code_and_link(smtp_server, address)
        assert_redirect(tally(person.verify(address, code)), "/account")

    ok = [a for a in attempts if a.answered]
    emails = {a.address for a in ok} | {address for _person, address in made_on_app1}
    users = postgres.user_emails(site.database)
    pending = set(pending_emails(site.redis.client()))
    lost = sorted(emails - set(users) - pending)
    after_down = [a for a in attempts if a.started > down_at]
    verified = [a for a in attempts if a.verify_status == 303]

    row.registrations_lost = len(lost)
    row.duplicate_users = len(users) - len(set(users))
    row.time_to_recover_s = round(down_after, 2)
    unanswered = [a for a in attempts if not a.answered]
    closed = sum(a.no_answer for a in attempts)
    row.notes = (
        f"{len(attempts)} signups sent through HAProxy, {len(ok)} answered 'check your "
        f"email', {len(unanswered)} not (statuses {[a.status for a in unanswered]}), "
        f"{closed} requests (signups or verifications) closed without an answer (in flight on "
        f"app1 when it died; HAProxy closes a reused client connection so that the browser "
        f"resends); app1's master "
        f"and workers ({processes} processes) killed after {KILL_BEFORE} answered signups, "
        f"marked DOWN by HAProxy {down_after:.1f} s later (time to recover); "
        f"{len(after_down)} signups started after that, all answered (by app2); "
        f"{len(verified)} verified during the run, and the {len(made_on_app1)} registrations "
        "made on app1 before the run verified through app2 afterwards; 303 redirects "
        "counted as 2xx")
    assert failures == [], failures
    assert lost == [], lost
    assert row.duplicate_users == 0
    assert after_down and all(a.answered for a in after_down), \
        [a.status for a in after_down]
    assert all(a.verify_status in (None, 303) for a in attempts if not a.no_answer), \
        [a.verify_status for a in attempts]
    assert site.haproxy.status()["app1"] == "DOWN"
    assert re.search(r"Server signup_web/app1 is DOWN", site.haproxy.log())

    # The host comes back: the same instance started again on its port is put back into service
    # by the health checks (rise 2), and serves.
    restarted_at = time.monotonic()
    app1.start()
    up_after = site.haproxy.wait_for("app1", "UP", 15)
    person, address = Person(site), new_address("lb-back")
    with site.haproxy.only("app1"):
        assert_redirect(tally(person.signup(address)), "/verify")
    row.notes += (f"; app1 started again: back in service {time.monotonic() - restarted_at:.1f} s "
                  f"after its start ({up_after:.1f} s after it answered)")
