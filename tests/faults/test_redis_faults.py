"""Redis faults injected into real processes: the app under gunicorn on redis-servers of its own.

Each test starts its own redis-server(s) on free ports and the app under gunicorn, drives it over
HTTP like a browser and records one row (or one per variant) in the fault report. Rows count the
browser's requests (form pages and POSTs); /health polls used as a stopwatch are not counted.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
import requests

from app.security import Digester

from ..e2e.conftest import (
    PASSWORD,
    PID_ACCESS_LOG_FORMAT,
    Browser,
    GunicornServer,
    code_and_link,
    new_address,
    user_rows,
)
from ..helpers import RedisServer, free_port, require, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.redis]

SECRET = "fault-suite-secret-key-long-enough-for-the-app-0123456789abcdef"
DIGESTER = Digester(SECRET)
UNAVAILABLE = "temporarily unavailable"
GRACE_SECONDS = 10.0  # app.pending.fallback.RECOVERY_GRACE_SECONDS, as the spec states it
RECOVERY_LIMIT = 10.0  # SPEC 4: switched back within 10 s of Redis answering


# -- fixtures -------------------------------------------------------------------------------
@pytest.fixture(autouse=True)
def _redis_binary():
    """Skip (or fail in CI) without a redis-server binary."""
    if not shutil.which("redis-server"):
        require("REQUIRE_REDIS", "redis-server is not installed")


class RedisServers:
    """Every redis-server a test starts, killed and removed at teardown."""

    def __init__(self):
        self.servers: list[RedisServer] = []

    def start(self, extra_args=(), *, port=None, directory=None) -> RedisServer:
        """A new redis-server on a free port (or the given one), in its own data dir."""
        server = RedisServer(port=port, extra_args=extra_args, directory=directory)
        self.servers.append(server)
        return server.start()

    def restart(self, old: RedisServer) -> RedisServer:
        """The same server again: same port, same data dir, same arguments."""
        return self.start(old.extra_args, port=old.port, directory=old.dir)

    def cleanup(self):
        """SIGKILL whatever still runs, then remove the data dirs."""
        for server in self.servers:
            server.destroy()


@pytest.fixture
def redis_servers():
    """Start redis-servers for one test; all are killed at teardown."""
    servers = RedisServers()
    try:
        yield servers
    finally:
        servers.cleanup()


@pytest.fixture
def start_app(tmp_path_factory, smtp_server):
    """Start the app under gunicorn for one test; stopped at teardown, its logs checked."""
    started: list[GunicornServer] = []

    def start(redis_url: str, *, workers: int = 1, env: dict | None = None,
              access_log_format: str | None = None) -> GunicornServer:
        directory = tmp_path_factory.mktemp("gunicorn-redis-fault")
        server = GunicornServer(directory, redis_url, smtp_server.port, workers=workers,
                                extra_env={"SECRET_KEY": SECRET, **(env or {})},
                                access_log_format=access_log_format)
        started.append(server)
        return server.start()

    try:
        yield start
    finally:
        for server in started:
            try:
                server.stop()
            except Exception:  # noqa: BLE001 (keep going: stop every server)
                if server.process:
                    server.process.kill()
    for server in started:
        output = server.output()
        assert not GunicornServer.problems(output), f"server errors:\n{output[-5000:]}"


# -- helpers --------------------------------------------------------------------------------
@dataclass
class Registration:
    """One signup answered 303, with the browser that made it and its emailed code and link."""

    email: str
    browser: Browser
    code: str
    link: str
    verified: bool = False


class Counting:
    """Wire a Browser's session so that every response is counted in the row."""

    lock = threading.Lock()

    @classmethod
    def browser(cls, server: GunicornServer, row, **kwargs) -> Browser:
        """A Browser whose every response is counted in `row`."""
        browser = Browser(server.base_url, **kwargs)

        def count(response, *args, **kw):
            with cls.lock:
                row.count(response.status_code)

        browser.session.hooks["response"].append(count)
        return browser


def health(server: GunicornServer) -> tuple[int, dict]:
    """(status code, body) of /health; not counted (a stopwatch, not a user)."""
    response = requests.get(server.base_url + "/health", timeout=10)
    return response.status_code, response.json()


def pending_key(email: str) -> str:
    """The Redis key of an address's pending registration (the app runs with SECRET)."""
    aid = DIGESTER.address_id(email)
    return f"signup:pending:{{{aid[0]}}}:{aid}"


def pending_keys(client) -> set[str]:
    """Every signup:pending:* key (SCAN, never KEYS)."""
    return {k.decode() for k in client.scan_iter(match="signup:pending:*", count=500)}


def sign_up(server, row, smtp_server, label: str, step: str | None = None,
            **browser_options) -> Registration:
    """A new browser signs up with a new address: 303 and an email with a code."""
    browser = Counting.browser(server, row, **browser_options)
    if step:
        browser.session.headers["X-E2E-Step"] = step  # names the request in the access log
    email = new_address(label)
    response = browser.signup(email)
    assert response.status_code == 303, (response.status_code, response.text[:1000])
    code, link = code_and_link(smtp_server, email)
    return Registration(email, browser, code, link)


def verify(reg: Registration) -> int:
    """The signing-up browser enters its code; marks it verified on 303; returns the status."""
    status = reg.browser.verify(reg.email, reg.code).status_code
    if status == 303:
        reg.verified = True
    return status


def reuse(regs: list[Registration], *, expect_code, expect_link,
          grace_ends: float | None = None) -> tuple[int, int]:
    """Try every used code and link again: (how many verified a second time, how many 503s).

    400/404 once the app is sure ("not right", "invalid link"); 503 while it cannot be (fallback
    or the grace after it). `expect_*` is a status or a tuple of allowed statuses. With
    `grace_ends` (a time.monotonic() no later than the app's grace ends), an answer received
    after it may also be the sure 400/404: how far a slow machine gets within the grace is
    chance, what the app may answer is not.
    """
    def allowed(expected, sure) -> tuple:
        expected = expected if isinstance(expected, tuple) else (expected,)
        late = grace_ends is not None and time.monotonic() >= grace_ends
        return (*expected, sure) if late else expected

    twice = unavailable = 0
    for reg in regs:
        code_status = reg.browser.verify(reg.email, reg.code, password=PASSWORD).status_code
        twice += code_status == 303
        assert code_status in allowed(expect_code, 400), code_status
        link_status = reg.browser.get(reg.link).status_code
        if link_status == 200:  # the confirm form is offered again: press it
            link_status = reg.browser.confirm_link(reg.link, password=PASSWORD).status_code
            twice += link_status == 303
        unavailable += (code_status == 503) + (link_status == 503)
        assert link_status in allowed(expect_link, 404), link_status
    return twice, unavailable


def duplicates(server: GunicornServer, regs: list[Registration]) -> int:
    """User rows beyond one per address."""
    return sum(max(0, len(user_rows(server.database, reg.email)) - 1) for reg in regs)


def users_missing(server: GunicornServer, regs: list[Registration]) -> int:
    """Verified registrations without a user row."""
    return sum(1 for reg in regs if reg.verified and not user_rows(server.database, reg.email))


def healthy_on_redis(server) -> bool:
    """/health says healthy and the pending store is Redis."""
    code, body = health(server)
    return (code == 200 and body["status"] == "healthy"
            and body["pending_registrations"]["backend"] == "redis")


def assert_degraded(server) -> dict:
    """/health is 200 degraded, served from memory, Redis unhealthy."""
    code, body = health(server)
    assert code == 200, body
    assert body["status"] == "degraded", body
    assert body["pending_registrations"]["backend"] == "memory", body
    assert body["redis"]["status"] == "unhealthy", body
    return body


def close_row(row, server, regs, *, twice: int) -> None:
    """Fill in lost registrations, duplicate users and codes used twice; assert none."""
    row.registrations_lost = sum(1 for reg in regs if not reg.verified)
    row.duplicate_users = duplicates(server, regs)
    row.codes_used_twice = twice
    assert users_missing(server, regs) == 0
    assert row.registrations_lost == 0, [r.email for r in regs if not r.verified]
    assert row.duplicate_users == 0
    assert row.codes_used_twice == 0


# -- 1. Redis down at start-up ----------------------------------------------------------------
def test_redis_down_at_startup_serves_from_memory(start_app, smtp_server, fault_report):
    """Redis unreachable at start-up: signup and verify work from memory, /health degraded."""
    row = fault_report.row("Redis down at start-up (1 worker)",
                           "REDIS_URL at a closed port; app started under gunicorn")
    server = start_app(f"redis://127.0.0.1:{free_port()}/0", workers=1)
    assert_degraded(server)

    regs = [sign_up(server, row, smtp_server, "startdown") for _ in range(4)]
    for reg in regs:
        assert verify(reg) == 303
    # The link path too, on one more registration.
    extra = sign_up(server, row, smtp_server, "startdown-link")
    assert extra.browser.get(extra.link).status_code == 200
    assert extra.browser.confirm_link(extra.link).status_code == 303
    extra.verified = True
    regs.append(extra)

    # An unknown address cannot be told "wrong code" from memory alone: 503 in words.
    stranger = Counting.browser(server, row)
    answer = stranger.verify(new_address("startdown-unknown"), "123456", password=PASSWORD)
    assert answer.status_code == 503 and UNAVAILABLE in answer.text
    body = assert_degraded(server)
    # Used codes and links never verify again; in fallback they too answer 503, not "wrong".
    twice, _ = reuse(regs, expect_code=503, expect_link=503)
    row.notes = (f"{1 + 2 * len(regs)} expected 503s: a verification for an unknown address, "
                 "and each used code and link tried again (in fallback, memory cannot say "
                 "'wrong' or 'invalid', so 'temporarily unavailable'); "
                 f"/health {body['status']}, backend {body['pending_registrations']['backend']}")
    close_row(row, server, regs, twice=twice)
    assert row.outcomes["5xx"] == 1 + len(regs) * 2


# -- 2. Redis stopped mid-run -------------------------------------------------------------------
def test_redis_stopped_mid_run_recovers_and_drains(redis_servers, start_app, smtp_server,
                                                    fault_report):
    """Redis SIGTERMed mid-run: outage signups work from memory, move to Redis, all verify."""
    row = fault_report.row(
        "Redis stopped mid-run (1 worker, requests after recovery)",
        "redis-server SIGTERM (AOF on), 4 signups during the outage, restarted on the same port")
    redis_server = redis_servers.start(["--appendonly", "yes"])
    server = start_app(redis_server.url, workers=1, env={"REGISTRATION_MAX_ATTEMPTS": "3"})
    before = [sign_up(server, row, smtp_server, "midrun-before") for _ in range(3)]
    assert pending_keys(redis_server.client()) == {pending_key(r.email) for r in before}

    redis_server.stop()
    during = [sign_up(server, row, smtp_server, "midrun-during") for _ in range(3)]
    assert_degraded(server)

    # Unknown address during the outage: 503 (not 400), and no attempt counted: with
    # REGISTRATION_MAX_ATTEMPTS=3, four such tries would lock the address (429) if counted.
    late = new_address("midrun-late")
    other = Counting.browser(server, row)
    for _ in range(4):
        answer = other.verify(late, "123456", password=PASSWORD)
        assert answer.status_code == 503, answer.status_code
        assert UNAVAILABLE in answer.text
    late_browser = Counting.browser(server, row)
    assert late_browser.signup(late).status_code == 303
    late_reg = Registration(late, late_browser, *code_and_link(smtp_server, late))
    assert verify(late_reg) == 303, "the unknown-address tries were counted as attempts"

    redis_server = redis_servers.restart(redis_server)
    answered = time.monotonic()
    wait_until(lambda: healthy_on_redis(server), RECOVERY_LIMIT + 2, 0.1, "healthy on redis")
    recovered = time.monotonic()
    row.time_to_recover_s = round(recovered - answered, 2)
    assert row.time_to_recover_s <= RECOVERY_LIMIT

    keys = pending_keys(redis_server.client())
    expected = {pending_key(r.email) for r in before + during}
    assert keys == expected, "outage signups not moved into Redis, or pre-outage ones lost"
    _, body = health(server)
    assert body["pending_registrations"]["total"] == len(expected), body  # memory drained

    for reg in before + during:
        assert verify(reg) == 303, reg.email
    assert pending_keys(redis_server.client()) == set()

    # After the grace, a used code is plainly wrong (400) and a used link invalid (404).
    time.sleep(max(0.0, recovered + GRACE_SECONDS + 0.5 - time.monotonic()))
    regs = before + during + [late_reg]
    twice, _ = reuse(regs, expect_code=400, expect_link=404)
    row.notes = ("4 expected 503s: verification of an unknown address during the outage "
                 "(no attempt counted: no lock after 4 tries with a cap of 3); "
                 "3 signups made before the outage survived the restart through AOF")
    close_row(row, server, regs, twice=twice)
    assert row.outcomes["5xx"] == 4


def test_redis_returns_probe_drains_without_requests(redis_servers, start_app, smtp_server,
                                                     fault_report):
    """Redis back while the worker gets no requests: the probe alone drains memory into Redis."""
    row = fault_report.row(
        "Redis stopped mid-run (1 worker, no requests after recovery)",
        "redis-server SIGTERM, 3 signups during the outage, restarted; Redis polled directly")
    redis_server = redis_servers.start()
    server = start_app(redis_server.url, workers=1)
    redis_server.stop()
    during = [sign_up(server, row, smtp_server, "probe-during") for _ in range(3)]
    assert_degraded(server)

    redis_server = redis_servers.restart(redis_server)
    answered = time.monotonic()
    expected = {pending_key(r.email) for r in during}
    client = redis_server.client()
    # No request reaches the app until the records are in Redis.
    wait_until(lambda: pending_keys(client) >= expected, RECOVERY_LIMIT + 2, 0.05,
               "outage signups in Redis")
    row.time_to_recover_s = round(time.monotonic() - answered, 2)
    assert row.time_to_recover_s <= RECOVERY_LIMIT
    assert pending_keys(client) == expected
    for key in expected:
        assert 86000 < client.ttl(key) <= 86400, (key, client.ttl(key))

    wait_until(lambda: healthy_on_redis(server), 3, 0.1, "healthy on redis")
    _, body = health(server)
    assert body["pending_registrations"]["total"] == len(expected), body  # memory drained
    for reg in during:
        assert verify(reg) == 303, reg.email
    # Within the 10 s grace a used code or link answers 503, after it 400/404; never a second
    # success. The app's grace began after `answered` (its probe saw Redis after the test did).
    twice, unavailable = reuse(during, expect_code=503, expect_link=503,
                               grace_ends=answered + GRACE_SECONDS)
    row.notes = (f"{unavailable} expected 503s: used codes and links tried again within "
                 "the 10 s grace after recovery; time = Redis answering -> records found in "
                 "Redis, with no request to the app")
    close_row(row, server, during, twice=twice)
    assert row.outcomes["5xx"] == unavailable


# -- 3. SIGKILL with AOF ----------------------------------------------------------------------
@pytest.mark.parametrize("fsync", ["everysec", "always"])
def test_redis_sigkill_with_aof_keeps_registrations_and_ttls(redis_servers, start_app,
                                                             smtp_server, fault_report, fsync):
    """Redis SIGKILLed and restarted with AOF: pending records, their TTLs and codes survive."""
    pause = 1.5 if fsync == "everysec" else 0.0
    row = fault_report.row(
        f"Redis killed (SIGKILL), AOF appendfsync {fsync}",
        f"redis-server SIGKILL {pause:.1f} s after 4 signups, restarted with the same AOF")
    redis_server = redis_servers.start(["--appendonly", "yes", "--appendfsync", fsync])
    server = start_app(redis_server.url, workers=2)
    regs = [sign_up(server, row, smtp_server, f"kill-{fsync}") for _ in range(4)]
    client = redis_server.client()
    keys = [pending_key(r.email) for r in regs]
    before = {k: (client.pttl(k), client.execute_command("PEXPIRETIME", k)) for k in keys}
    measured = time.monotonic()
    time.sleep(pause)  # everysec: Redis documents that up to 1 s of writes may be lost
    redis_server.kill()

    redis_server = redis_servers.restart(redis_server)
    answered = time.monotonic()
    client = redis_server.client()
    elapsed_ms = (time.monotonic() - measured) * 1000
    found = set(pending_keys(client))
    row.registrations_lost = len(set(keys) - found)
    for key in keys:
        if key not in found:
            continue
        pttl_before, expire_before = before[key]
        pttl_after, expire_after = client.pttl(key), client.execute_command("PEXPIRETIME", key)
        assert pttl_after > 0, "TTL lost (-1: persistent, -2: gone)"
        assert expire_after == expire_before, "absolute expiry changed across the restart"
        assert pttl_after <= pttl_before, "TTL was reset"
        assert pttl_before - pttl_after <= elapsed_ms + 2000

    first = None
    for reg in regs:
        if verify(reg) == 303 and first is None:
            first = time.monotonic()
    row.time_to_recover_s = round(first - answered, 2) if first else None
    twice, _ = reuse(regs, expect_code=400, expect_link=404)
    assert row.outcomes["5xx"] == 0
    row.notes = (f"TTLs after restart equal to before (same PEXPIRETIME); waited {pause:.1f} s "
                 "before the kill; time = Redis answering -> first verification")
    close_row(row, server, regs, twice=twice)


# -- 4. PENDING_FALLBACK=off ------------------------------------------------------------------
def test_fallback_off_answers_503_without_email(redis_servers, start_app, smtp_server,
                                                fault_report):
    """PENDING_FALLBACK=off and Redis stopped: signup 503 in words, no email; works once back."""
    row = fault_report.row("Redis stopped, PENDING_FALLBACK=off",
                           "redis-server SIGTERM (AOF on), restarted on the same port")
    redis_server = redis_servers.start(["--appendonly", "yes"])
    server = start_app(redis_server.url, workers=1, env={"PENDING_FALLBACK": "off"})
    early = sign_up(server, row, smtp_server, "nofallback-early")

    redis_server.stop()
    refused = new_address("nofallback-refused")
    refused_browser = Counting.browser(server, row)
    answer = refused_browser.signup(refused)
    assert answer.status_code == 503
    assert UNAVAILABLE in answer.text and "<form" in answer.text
    assert answer.headers.get("Retry-After")
    code, body = health(server)
    assert code == 503 and body["status"] == "unhealthy", body
    assert early.browser.verify(early.email, early.code).status_code == 503
    time.sleep(0.5)
    assert smtp_server.to(refused) == [], "an email was sent for a refused signup"

    redis_server = redis_servers.restart(redis_server)
    answered = time.monotonic()
    again = refused_browser.signup(refused)
    assert again.status_code == 303, again.status_code
    row.time_to_recover_s = round(time.monotonic() - answered, 2)
    retried = Registration(refused, refused_browser, *code_and_link(smtp_server, refused))
    later = sign_up(server, row, smtp_server, "nofallback-later")
    regs = [early, retried, later]
    for reg in regs:
        assert verify(reg) == 303, reg.email
    code, body = health(server)
    assert code == 200 and body["status"] == "healthy", body
    twice, _ = reuse(regs, expect_code=400, expect_link=404)
    row.notes = ("2 expected 503s during the outage: the refused signup (no email sent) and a "
                 "verification; /health 503 unhealthy; time = Redis answering -> first signup")
    close_row(row, server, regs, twice=twice)
    assert row.outcomes["5xx"] == 2


# -- 5. Several workers ------------------------------------------------------------------------
def test_three_workers_share_redis(redis_servers, start_app, smtp_server, fault_report):
    """3 gunicorn workers on Redis: 20 signups verified on new connections, none lost."""
    row = fault_report.row(
        "3 workers, signup and verify on separate connections",
        "gunicorn --workers 3, Connection: close on every request, 4 browsers at a time")
    redis_server = redis_servers.start()
    server = start_app(redis_server.url, workers=3, access_log_format=PID_ACCESS_LOG_FORMAT)

    def one(index: int) -> Registration:
        reg = sign_up(server, row, smtp_server, f"workers-{index}", step=f"signup-{index}",
                      new_connection_per_request=True)
        reg.browser.session.headers["X-E2E-Step"] = f"verify-{index}"
        assert verify(reg) == 303, reg.email
        return reg

    with ThreadPoolExecutor(4) as pool:
        regs = list(pool.map(one, range(20)))
    assert row.outcomes["5xx"] == 0
    assert pending_keys(redis_server.client()) == set()
    twice, _ = reuse(regs, expect_code=400, expect_link=404)
    served = {}  # step -> pid of the worker that answered its POST
    for line in server.access_log().splitlines():
        match = re.match(r'^<(\d+)> 303 "POST /(?:signup|verify) [^"]*" step=(\S+)$', line)
        if match:
            served[match.group(2)] = match.group(1)
    crossed = sum(served.get(f"signup-{i}") != served.get(f"verify-{i}") for i in range(20))
    assert len(served) == 40, served
    row.notes = (f"POSTs served by {len(set(served.values()))} worker processes; "
                 f"{crossed} of 20 verified by another worker than the one that signed up")
    close_row(row, server, regs, twice=twice)


# -- 6. Sentinel failover ------------------------------------------------------------------------
class SentinelProcess:
    """`redis-server sentinel.conf --sentinel` in a temp dir."""

    def __init__(self, master_port: int):
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="redis-sentinel-"))
        self.conf = self.dir / "sentinel.conf"
        self.conf.write_text(
            f"port {self.port}\nbind 127.0.0.1\nprotected-mode no\ndaemonize no\n"
            f"dir {self.dir}\n"
            f"sentinel monitor mymaster 127.0.0.1 {master_port} 1\n"
            "sentinel down-after-milliseconds mymaster 1000\n"
            "sentinel failover-timeout mymaster 5000\n")
        self.process: subprocess.Popen | None = None

    def start(self) -> "SentinelProcess":
        """Start and wait for PING."""
        self.process = subprocess.Popen(
            [shutil.which("redis-server"), str(self.conf), "--sentinel"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(lambda: self._pings(), 10, 0.05, "sentinel answering")
        return self

    def _pings(self) -> bool:
        assert self.process.poll() is None, "redis-server --sentinel exited"
        try:
            return self.client().info("server")["redis_mode"] == "sentinel"
        except redis.exceptions.RedisError:
            return False

    def client(self) -> redis.Redis:
        """A client to the sentinel."""
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=2,
                           socket_connect_timeout=2, decode_responses=True)

    def master_port(self) -> int:
        """The master's port as this sentinel sees it."""
        return int(self.client().sentinel_get_master_addr_by_name("mymaster")[1])

    def cleanup(self):
        """SIGKILL and remove the dir."""
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)


def replica_caught_up(master: RedisServer, replica_port: int) -> bool:
    """The master sees the replica online at its own replication offset."""
    info = master.client().info("replication")
    for name in ("slave0", "slave1"):
        entry = info.get(name)
        if entry and int(entry["port"]) == replica_port and entry["state"] == "online":
            return int(entry["offset"]) == int(info["master_repl_offset"])
    return False


def sentinel_knows_replica(sentinel: SentinelProcess, replica_port: int) -> bool:
    """The sentinel lists the replica, connected and not down (a candidate for failover)."""
    for replica in sentinel.client().sentinel_slaves("mymaster"):
        if int(replica["port"]) == replica_port:
            return not (replica["is_disconnected"] or replica["is_sdown"]) and \
                replica.get("master-link-status", replica.get("master_link_status")) == "ok"
    return False


def test_sentinel_failover_signups_continue(redis_servers, start_app, smtp_server, fault_report):
    """Master, replica and sentinel: after SENTINEL FAILOVER old and new signups verify."""
    row = fault_report.row("Sentinel failover (master -> replica)",
                           "SENTINEL FAILOVER mymaster on a real master, replica and sentinel")
    # No 5 s wait for more replicas before the first (diskless) sync; the same on the replica,
    # which the old master syncs from after the failover.
    quick_sync = ["--repl-diskless-sync-delay", "0"]
    master = redis_servers.start(quick_sync)
    replica = redis_servers.start([*quick_sync, "--replicaof", "127.0.0.1", str(master.port)])
    wait_until(lambda: replica.client().info("replication")["master_link_status"] == "up", 10,
               what="replica linked")
    sentinel = SentinelProcess(master.port)
    try:
        sentinel.start()
        wait_until(lambda: sentinel_knows_replica(sentinel, replica.port), 15, 0.1,
                   "sentinel sees the replica")
        server = start_app("redis://unused:6379/0", workers=1, env={
            "REDIS_SENTINELS": f"127.0.0.1:{sentinel.port}", "REDIS_SENTINEL_MASTER": "mymaster"})
        code, body = health(server)
        assert code == 200 and body["status"] == "healthy", body

        earlier = [sign_up(server, row, smtp_server, "sentinel-before") for _ in range(3)]
        assert pending_keys(master.client()) == {pending_key(r.email) for r in earlier}
        wait_until(lambda: replica_caught_up(master, replica.port), 5, what="replica caught up")

        commanded = time.monotonic()
        assert sentinel.client().sentinel_failover("mymaster")
        wait_until(lambda: sentinel.master_port() == replica.port, 15, 0.05,
                   "sentinel reports the replica as master")
        switched = time.monotonic()

        # Sign up until the first success; 503s during the switch are counted, not hidden.
        first_ok = None
        refused = 0
        later: list[Registration] = []
        deadline = time.monotonic() + 20
        while len(later) < 3:
            browser = Counting.browser(server, row)
            email = new_address("sentinel-after")
            status = browser.signup(email).status_code
            if status == 303:
                first_ok = first_ok or time.monotonic()
                later.append(Registration(email, browser, *code_and_link(smtp_server, email)))
            else:
                assert status == 503, status
                refused += 1
                assert not smtp_server.to(email)
                assert time.monotonic() < deadline, "signups did not resume"
                time.sleep(0.1)
        row.time_to_recover_s = round(first_ok - commanded, 2)

        new_master = replica.client()
        assert new_master.info("replication")["role"] == "master"
        stored = pending_keys(new_master)
        missing = {pending_key(r.email) for r in earlier + later} - stored
        on_old = len(missing & pending_keys(master.client()))
        assert not missing, f"{len(missing)} not on the new master ({on_old} on the old one)"

        for reg in earlier + later:
            assert verify(reg) == 303, reg.email
        assert pending_keys(new_master) == set()
        code, body = health(server)
        assert code == 200 and body["status"] in ("healthy", "degraded"), body
        # Used codes and links never verify again: 400/404, or 503 within the 10 s grace that
        # follows a fallback (if a request fell back to memory during the switch).
        twice, grace_503 = reuse(earlier + later, expect_code=(400, 503), expect_link=(404, 503))
        assert row.outcomes["5xx"] == refused + grace_503
        row.notes = (f"sentinel switched {switched - commanded:.1f} s after the command; "
                     f"{refused} signups answered 503 during the switch (none emailed), "
                     f"{grace_503} used codes/links answered 503 in a grace; "
                     "time = failover command -> first successful signup")
        close_row(row, server, earlier + later, twice=twice)
    finally:
        sentinel.cleanup()
