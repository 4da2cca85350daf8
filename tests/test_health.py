"""`/health`: the documented keys and values (SPEC section 9) for every state of the site."""

from __future__ import annotations

import pytest

import app as app_package

from .conftest import PASSWORD, SignupActions
from .helpers import SmtpServer, free_port

TOP_KEYS = {"status", "version", "redis", "pending_registrations", "database", "mail"}
REDIS_KEYS = {"status", "connected_clients", "used_memory_human", "uptime_in_seconds",
              "latency_ms"}
EMAIL = "ada@example.com"


def health(app):
    """GET /health: (status code, JSON body)."""
    response = app.test_client().get("/health")
    assert response.mimetype == "application/json"
    return response.status_code, response.get_json()


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


class RefusingSmtp(SmtpServer):
    """An SMTP server that refuses every recipient with 550, naming the address as servers do."""

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802
        """Refuse the recipient."""
        return f"550 5.1.1 <{address}>: Recipient address rejected: User unknown"


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


def test_health_token_hides_detail(make_app):
    """With HEALTH_TOKEN set, only a bearer of the token sees the detail."""
    app = make_app(HEALTH_TOKEN="operator-token")
    client = app.test_client()
    assert client.get("/health").get_json() == {"status": "healthy"}
    wrong = client.get("/health", headers={"Authorization": "Bearer nope"})
    assert wrong.get_json() == {"status": "healthy"}
    right = client.get("/health", headers={"Authorization": "Bearer operator-token"})
    assert set(right.get_json()) == TOP_KEYS
