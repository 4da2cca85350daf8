"""The `flask --app wsgi` commands, through `app.test_cli_runner()`."""

from __future__ import annotations

import json
import re
import time

import pytest
from sqlalchemy import inspect

from app.extensions import db

from .helpers import SignupActions, free_port

EMAIL = "ada@example.com"
BACKENDS = [
    pytest.param("memory", id="memory"),
    pytest.param("redis", id="redis", marks=pytest.mark.redis),
]


@pytest.fixture(params=BACKENDS)
def cli_app(request, make_app):
    """An app on the parametrised backend."""
    if request.param == "redis":
        return make_app(REDIS_URL=request.getfixturevalue("redis_url"))
    return make_app()


def has_users_table(app) -> bool:
    """True when the users table exists in the app's database."""
    with app.app_context():
        return inspect(db.engine).has_table("users")


def test_init_db_creates_users_table(make_app):
    """`init-db` creates the users table (dropped first to prove it) and says where."""
    app = make_app()
    with app.app_context():
        db.drop_all()
    assert not has_users_table(app)
    result = app.test_cli_runner().invoke(args=["init-db"])
    assert result.exit_code == 0, result.output
    assert "users table ready" in result.output
    assert has_users_table(app)
    again = app.test_cli_runner().invoke(args=["init-db"])
    assert again.exit_code == 0, again.output


def test_pending_stats_after_signup(cli_app, smtp, request):
    """`pending stats` and `pending stats --json` count a signup, by backend."""
    backend = request.node.callspec.params["cli_app"]
    runner = cli_app.test_cli_runner()
    empty = runner.invoke(args=["pending", "stats", "--json"])
    assert empty.exit_code == 0, empty.output
    assert json.loads(empty.output)["total"] == 0

    actions = SignupActions(cli_app.test_client(), smtp)
    assert actions.signup(EMAIL).status_code == 303

    result = runner.invoke(args=["pending", "stats"])
    assert result.exit_code == 0, result.output
    assert f"backend in use: {backend}" in result.output
    assert "pending registrations: 1" in result.output

    result = runner.invoke(args=["pending", "stats", "--json"])
    assert result.exit_code == 0, result.output
    stats = json.loads(result.output)
    assert stats["total"] == 1
    assert stats["backend"] == backend
    assert stats["by_backend"][backend] == 1
    assert stats["redis_connected"] is (backend == "redis")


def test_pending_cleanup_runs(cli_app):
    """`pending cleanup` exits 0 and says how many entries it removed."""
    result = cli_app.test_cli_runner().invoke(args=["pending", "cleanup"])
    assert result.exit_code == 0, result.output
    assert re.search(r"removed \d+ expired entries", result.output)


def test_pending_cleanup_removes_expired_memory_registration(make_app, smtp):
    """On the memory store, cleanup removes a registration whose TTL has passed."""
    app = make_app(PENDING_TTL_SECONDS=1)
    actions = SignupActions(app.test_client(), smtp)
    assert actions.signup(EMAIL).status_code == 303
    time.sleep(1.1)
    result = app.test_cli_runner().invoke(args=["pending", "cleanup"])
    assert result.exit_code == 0, result.output
    assert "removed 1 expired entries" in result.output
    stats = app.test_cli_runner().invoke(args=["pending", "stats", "--json"])
    assert json.loads(stats.output)["total"] == 0


@pytest.mark.redis
def test_check_redis_passes_against_live_redis(make_app, redis_url, redis_server):
    """`check-redis` against the live server: exit 0, the 8 steps, no selftest key left behind."""
    app = make_app(REDIS_URL=redis_url)
    result = app.test_cli_runner().invoke(args=["check-redis"])
    assert result.exit_code == 0, result.output
    for step in range(1, 9):
        assert re.search(rf"^{step}\. .*: ok", result.output, re.M), result.output
    assert "all checks passed" in result.output
    client = redis_server.client()
    assert list(client.scan_iter(match="signup:selftest:*")) == []


def test_check_redis_fails_against_closed_port(make_app):
    """`check-redis` with nothing listening: a non-zero exit and the failed step named."""
    app = make_app(REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")
    result = app.test_cli_runner().invoke(args=["check-redis"])
    assert result.exit_code != 0
    assert "FAILED" in result.output


def test_check_redis_with_memory_has_nothing_to_check(make_app):
    """`check-redis` with memory:// says there is nothing to check and exits 1."""
    app = make_app()
    result = app.test_cli_runner().invoke(args=["check-redis"])
    assert result.exit_code == 1
    assert "memory://" in result.output
    assert re.search(r"(nothing|no redis) to check", result.output, re.I), result.output
