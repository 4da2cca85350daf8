"""/health and /metrics (SPEC sections 9 and 11): the report on each backend and failure, the
HEALTH_TOKEN, and the counters across the flow and across gunicorn workers.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import requests
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

import app as app_package

from .e2e.conftest import Browser, GunicornServer, PAUSE_SAFE_ARGS, code_and_link, new_address
from .helpers import EMAIL, PASSWORD, SignupActions, SmtpServer, free_port, samples, value


TOP_KEYS = {"status", "version", "redis", "pending_registrations", "database", "mail"}


REDIS_KEYS = {"status", "connected_clients", "used_memory_human", "uptime_in_seconds",
              "latency_ms"}


def health(app):
    """GET /health: (status code, JSON body)."""
    response = app.test_client().get("/health")
    assert response.mimetype == "application/json"
    return response.status_code, response.get_json()


class RefusingSmtp(SmtpServer):
    """An SMTP server that refuses every recipient with 550, naming the address as servers do."""

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802
        """Refuse the recipient."""
        return f"550 5.1.1 <{address}>: Recipient address rejected: User unknown"


def worker_samples(metrics_dir: Path, pid: int, scratch: Path) -> dict:
    """The samples one worker wrote: its own files of the multiprocess folder, summed alone."""
    own = scratch / f"metrics-{pid}"
    own.mkdir()
    for path in metrics_dir.glob(f"*_{pid}.db"):
        shutil.copy(path, own)
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(own))
    return samples(generate_latest(registry).decode())


def test_health_on_memory_store(make_app):
    """memory://: 200 healthy, redis disabled, backend memory, database healthy, mail configured."""
    app = make_app()
    code, body = health(app)
    assert code == 200
    assert set(body) == TOP_KEYS
    assert body["status"] == "healthy"
    assert body["version"] == app_package.__version__
    assert body["redis"] == {"status": "disabled"}
    assert body["pending_registrations"] == {"total": 0, "backend": "memory",
                                             "redis_connected": False}
    assert body["database"] == {"status": "healthy"}
    assert body["mail"] == {"status": "configured", "last_error": None}


@pytest.mark.redis
def test_health_on_real_redis(make_app, redis_url, smtp):
    """A live Redis: healthy with its facts, and the pending count follows a signup."""
    app = make_app(REDIS_URL=redis_url)
    code, body = health(app)
    assert code == 200
    assert set(body) == TOP_KEYS
    assert body["status"] == "healthy"
    assert body["version"] == app_package.__version__
    redis_facts = body["redis"]
    assert set(redis_facts) == REDIS_KEYS
    assert redis_facts["status"] == "healthy"
    clients, memory = redis_facts["connected_clients"], redis_facts["used_memory_human"]
    uptime, latency = redis_facts["uptime_in_seconds"], redis_facts["latency_ms"]
    assert isinstance(clients, int) and clients >= 1
    assert isinstance(memory, str) and memory
    assert isinstance(uptime, int) and uptime >= 0
    assert isinstance(latency, (int, float)) and 0 <= latency < 1000
    assert body["pending_registrations"] == {"total": 0, "backend": "redis",
                                             "redis_connected": True}
    assert body["database"] == {"status": "healthy"}
    assert body["mail"] == {"status": "configured", "last_error": None}

    actions = SignupActions(app.test_client(), smtp)
    assert actions.signup(EMAIL).status_code == 303
    assert health(app)[1]["pending_registrations"] == {"total": 1, "backend": "redis",
                                                       "redis_connected": True}


def test_redis_unreachable_at_startup_is_degraded_and_serves(make_app, smtp):
    """Redis down at start-up: 200 degraded, backend memory, and signup + verify still work."""
    app = make_app(REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")
    code, body = health(app)
    assert code == 200
    assert set(body) == TOP_KEYS
    assert body["status"] == "degraded"
    assert body["redis"]["status"] == "unhealthy"
    assert body["pending_registrations"]["backend"] == "memory"
    assert body["pending_registrations"]["redis_connected"] is False
    assert body["database"] == {"status": "healthy"}

    actions = SignupActions(app.test_client(), smtp)
    response = actions.signup(EMAIL)
    assert response.status_code == 303
    assert health(app)[1]["pending_registrations"]["total"] == 1
    response = actions.verify(EMAIL, actions.code_for(EMAIL))
    assert response.status_code == 303 and response.headers["Location"].endswith("/account")
    assert EMAIL in actions.client.get("/account").text
    assert actions.login(EMAIL, PASSWORD).status_code == 303


def test_database_unreachable_is_unhealthy(make_app, tmp_path):
    """The users database cannot be opened: 503 unhealthy, database unhealthy."""
    url = f"sqlite:///{tmp_path}/no-such-directory/users.db"
    app = make_app(DATABASE_URL=url)
    code, body = health(app)
    assert code == 503
    assert body["status"] == "unhealthy"
    assert body["database"]["status"] == "unhealthy"


def test_mail_failing_then_cleared(make_app):
    """A failed send shows mail "failing" with last_error; the next successful send clears it."""
    server = SmtpServer()  # its port is chosen but nothing listens yet: SMTP is down
    app = make_app(MAIL_PORT=server.port)
    actions = SignupActions(app.test_client(), server)
    assert health(app)[1]["mail"] == {"status": "configured", "last_error": None}

    assert actions.signup(EMAIL).status_code == 303
    code, body = health(app)
    assert code == 200 and body["status"] == "healthy"
    assert body["mail"]["status"] == "failing"
    assert isinstance(body["mail"]["last_error"], str) and body["mail"]["last_error"]

    server.start()
    try:
        assert actions.resend(EMAIL).status_code == 303
        assert actions.code_for(EMAIL)
        assert health(app)[1]["mail"] == {"status": "configured", "last_error": None}
    finally:
        server.stop()


def test_mail_last_error_keeps_no_address(make_app):
    """A refused recipient: last_error is the error class and SMTP code, never the address or
    the server's text."""
    server = RefusingSmtp().start()
    try:
        app = make_app(MAIL_PORT=server.port)
        actions = SignupActions(app.test_client(), server)
        assert actions.signup(EMAIL).status_code == 303
        response = app.test_client().get("/health")
    finally:
        server.stop()
    body = response.get_json()
    assert body["mail"] == {"status": "failing", "last_error": "SMTPRecipientsRefused 550"}
    text = response.get_data(as_text=True)
    assert EMAIL not in text and "ada@" not in text and "rejected" not in text
    assert server.messages == []


def test_mail_log_backend_without_mail_server(make_app):
    """No MAIL_SERVER: mail status "log"."""
    app = make_app(MAIL_SERVER=None)
    code, body = health(app)
    assert code == 200
    assert body["mail"] == {"status": "log", "last_error": None}


def test_health_detail_only_with_token(make_app):
    """HEALTH_TOKEN set: no or a wrong token gets only the status; the bearer gets the detail."""
    app = make_app(HEALTH_TOKEN="operator-token-1234")
    client = app.test_client()
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "operator-token-1234"},
                    {"Authorization": "Bearer operator-token-12345"},
                    {"Authorization": "Basic operator-token-1234"}):
        response = client.get("/health", headers=headers)
        assert response.status_code == 200
        assert response.get_json() == {"status": "healthy"}, headers
    detail = client.get("/health", headers={"Authorization": "Bearer operator-token-1234"})
    body = detail.get_json()
    assert {"status", "version", "redis", "pending_registrations", "database", "mail"} <= set(body)
    assert body["status"] == "healthy"


def test_counters_follow_the_flow(make_app, smtp):
    """Signup, wrong code, resend, expired code, verify and a rate limit move their counters."""
    app = make_app(RATELIMIT_ENABLED=True, RATELIMIT_LOGIN="1/minute", CODE_TTL_SECONDS=3600)
    client = app.test_client()
    before = samples(client.get("/metrics").get_data(as_text=True))
    actions = SignupActions(client, smtp)
    actions.signup("metrics@example.com")
    code = actions.code_for("metrics@example.com")
    actions.verify("metrics@example.com", "000000" if code != "000000" else "111111")
    actions.resend("metrics@example.com")
    code = actions.code_for("metrics@example.com", count=2)
    assert actions.verify("metrics@example.com", code).status_code == 303
    actions.login("nobody@example.com")
    assert actions.login("nobody@example.com").status_code == 429
    after = samples(client.get("/metrics").get_data(as_text=True))

    def grew(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    assert grew("signup_started_total") == 1
    assert grew("signup_emails_sent_total", kind="verification") == 2
    assert grew("signup_wrong_codes_total") == 1
    assert grew("signup_resends_total") == 1
    assert grew("signup_verified_total", method="code") == 1
    assert grew("signup_rate_limited_total", endpoint="account.login") == 1
    assert grew("signup_request_duration_seconds_count", endpoint="signup.signup") >= 2
    assert value(after, "signup_fallback_active") == 0
    assert value(after, "signup_pending_registrations") == 0


def test_expired_and_failed_emails_are_counted(make_app, smtp):
    """An expired code and a failed send have their own counters."""
    from .helpers import free_port

    app = make_app(CODE_TTL_SECONDS=1)
    client = app.test_client()
    before = samples(client.get("/metrics").get_data(as_text=True))
    actions = SignupActions(client, smtp)
    actions.signup("late@example.com")
    code = actions.code_for("late@example.com")
    app.extensions["pending"].clock = lambda: __import__("time").time() + 5
    assert actions.verify("late@example.com", code).status_code == 400
    broken = make_app(MAIL_PORT=free_port())
    SignupActions(broken.test_client(), smtp).signup("nomail@example.com")
    after = samples(client.get("/metrics").get_data(as_text=True))
    assert value(after, "signup_expired_total") - value(before, "signup_expired_total") == 1
    assert (value(after, "signup_emails_failed_total", kind="verification")
            - value(before, "signup_emails_failed_total", kind="verification")) == 1


def test_pending_gauge_counts_registrations(make_app, smtp):
    """signup_pending_registrations shows the pending count at scrape time."""
    app = make_app()
    client = app.test_client()
    actions = SignupActions(client, smtp)
    actions.signup("gauge1@example.com")
    actions.signup("gauge2@example.com")
    assert value(samples(client.get("/metrics").get_data(as_text=True)),
                 "signup_pending_registrations") == 2


def test_metrics_need_the_health_token_when_set(make_app):
    """With HEALTH_TOKEN set, /metrics answers 401 without the bearer token."""
    app = make_app(HEALTH_TOKEN="s3cret-token")
    client = app.test_client()
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    ok = client.get("/metrics", headers={"Authorization": "Bearer s3cret-token"})
    assert ok.status_code == 200 and "signup_started_total" in ok.get_data(as_text=True)


def test_metric_labels_never_hold_link_tokens(make_app, smtp):
    """Request timing is labelled by endpoint, so a link token never reaches /metrics."""
    app = make_app()
    client = app.test_client()
    actions = SignupActions(client, smtp)
    actions.signup("label@example.com")
    link = actions.link_for("label@example.com")
    actions.open_link(link)
    text = client.get("/metrics").get_data(as_text=True)
    token = link.rsplit("/", 1)[1]
    assert token not in text and 'endpoint="verify.link"' in text


@pytest.mark.slow
@pytest.mark.redis
def test_counters_are_summed_across_two_gunicorn_workers(tmp_path, redis_url, smtp_server):
    """A full run under gunicorn with 2 workers, each made to serve 3 signups: /metrics shows
    the totals of both, and each worker's own sample files hold its 3.

    Which worker accepts a connection is the kernel's choice, so every other worker is paused
    while one serves its share (GunicornServer.only_worker): the split is the same on every run.
    """
    metrics_dir = tmp_path / "metrics"
    server = GunicornServer(tmp_path, redis_url, smtp_server.port, workers=2,
                            extra_env={"PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)},
                            extra_args=PAUSE_SAFE_ARGS).start()
    try:
        per_worker = 3
        pids = server.worker_pids()
        for pid in pids:
            with server.only_worker(pid):
                for _ in range(per_worker):
                    browser = Browser(server.base_url, new_connection_per_request=True)
                    address = new_address("metrics")
                    assert browser.signup(address).status_code == 303
                    code, _link = code_and_link(smtp_server, address)
                    assert browser.verify(address, code).status_code == 303
        for pid in pids:
            own = worker_samples(metrics_dir, pid, tmp_path)
            assert value(own, "signup_started_total") == per_worker, pid
            assert value(own, "signup_verified_total", method="code") == per_worker, pid
        signups = per_worker * len(pids)
        text = requests.get(server.base_url + "/metrics", timeout=10).text
        found = samples(text)
        assert value(found, "signup_started_total") == signups
        assert value(found, "signup_verified_total", method="code") == signups
        assert value(found, "signup_emails_sent_total", kind="verification") == signups
        assert value(found, "signup_request_duration_seconds_count",
                     endpoint="verify.verify") >= 2 * signups  # each verify: GET form + POST
    finally:
        server.stop()
