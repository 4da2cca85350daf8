"""Shared fixtures: real redis-server and SMTP server, app factory, client, SignupActions."""

from __future__ import annotations

import shutil

import pytest
from flask import request

from app import create_app
from app.config import TestConfig

from .catalogs import compile_catalogs
from .cluster import RedisClusterServers, check_slots
from .helpers import (PASSWORD, PG_HOST, PG_PORT, Postgres, RedisServer,  # noqa: F401 (PASSWORD
                      SignupActions, SmtpServer, require)  # and SignupActions: for old imports)


@pytest.fixture(scope="session", autouse=True)
def catalogs():
    """The compiled translation catalogues (make test builds them; a bare pytest run may not
    have): the Turkish pages and emails need messages.mo."""
    compile_catalogs()


@pytest.fixture(scope="session")
def redis_server():
    """A redis-server the tests start on a free port (skipped, or failed in CI, without one)."""
    if not shutil.which("redis-server"):
        require("REQUIRE_REDIS", "redis-server is not installed")
    server = RedisServer().start()
    yield server
    server.cleanup()


@pytest.fixture(scope="session")
def redis_cluster_servers():
    """A Redis Cluster of 3 masters + 3 replicas the tests start once (skipped, or failed in
    CI, without redis-server and redis-cli)."""
    if not (shutil.which("redis-server") and shutil.which("redis-cli")):
        require("REQUIRE_REDIS", "redis-server and redis-cli are needed for a Redis Cluster")
    cluster = RedisClusterServers()
    try:
        yield cluster.start()
    finally:
        cluster.cleanup()


@pytest.fixture
def redis_cluster(redis_cluster_servers):
    """The test cluster with every node running (restarted if a test killed one) and empty."""
    redis_cluster_servers.heal()
    redis_cluster_servers.flushall()
    return redis_cluster_servers


@pytest.fixture
def redis_url(redis_server):
    """The test redis-server's URL, emptied before each test (it is ours, not the shared one)."""
    redis_server.client().flushall()
    return redis_server.url


@pytest.fixture
def aof_redis():
    """A redis-server of the test's own with AOF on, as in production (backups copy its files)."""
    if not shutil.which("redis-server"):
        require("REQUIRE_REDIS", "redis-server is not installed")
    server = RedisServer(extra_args=["--appendonly", "yes", "--appendfsync", "everysec"]).start()
    yield server
    server.cleanup()


@pytest.fixture(scope="session")
def smtp_server():
    """An aiosmtpd server in this process."""
    server = SmtpServer().start()
    yield server
    server.stop()


@pytest.fixture
def smtp(smtp_server):
    """The SMTP server with an empty mailbox."""
    smtp_server.clear()
    return smtp_server


@pytest.fixture(scope="module")
def postgres():
    """The PostgreSQL service on 127.0.0.1:5432 (skipped, or failed with REQUIRE_POSTGRES=1)."""
    try:
        import psycopg2
    except ImportError:
        require("REQUIRE_POSTGRES", "psycopg2 is not installed")
    errors = []
    for user in ("postgres", "root"):
        try:
            connection = psycopg2.connect(host=PG_HOST, port=PG_PORT, user=user, dbname="test",
                                          connect_timeout=3)
        except psycopg2.Error as exc:
            errors.append(f"{user}: {str(exc).strip().splitlines()[0]}")
            continue
        connection.autocommit = True
        pg = Postgres(connection, user)
        try:
            yield pg
        finally:
            pg.drop_all()
            connection.close()
        return
    require("REQUIRE_POSTGRES", f"PostgreSQL is not reachable on {PG_HOST}:{PG_PORT} "
                                f"({'; '.join(errors)})")


@pytest.fixture
def server_errors():
    """Every 500 answered by apps made in this test; the test fails if there is one."""
    errors: list[tuple[str, int]] = []
    yield errors
    assert not errors, f"requests answered 500: {errors}"


@pytest.fixture
def make_app(tmp_path, smtp, server_errors):
    """Build an app with the test config, its own SQLite file and the test SMTP server."""
    created = []

    def factory(**overrides):
        database = overrides.pop("DATABASE_URL", f"sqlite:///{tmp_path}/users-{len(created)}.db")
        config = {**TestConfig.values, "DATABASE_URL": database,
                  "SQLALCHEMY_DATABASE_URI": database, "MAIL_SERVER": "127.0.0.1",
                  "MAIL_PORT": smtp.port, "MAIL_TIMEOUT": 5, **overrides}
        app = create_app(config)

        @app.after_request
        def _watch(response):
            if response.status_code == 500:
                server_errors.append((request.path, response.status_code))
            return response

        created.append(app)
        return app

    yield factory
    for app in created:
        app.extensions["pending"].close()
        with app.app_context():
            from app.extensions import db

            db.session.remove()
            db.engine.dispose()


@pytest.fixture
def app(make_app):
    """The app on the memory store."""
    return make_app()


@pytest.fixture
def redis_app(make_app, redis_url):
    """The app on the test redis-server."""
    return make_app(REDIS_URL=redis_url)


BACKENDS = [
    pytest.param("memory", id="memory"),
    pytest.param("redis", id="redis", marks=pytest.mark.redis),
]


@pytest.fixture(params=BACKENDS)
def backend(request):
    """The pending store (and limiter storage) under test: "memory" or "redis"."""
    return request.param


@pytest.fixture
def build(backend, make_app, request, monkeypatch):
    """make_app on the parametrised backend: the real redis-server for "redis"; for "cluster"
    (a file that imports helpers.backend_with_cluster) the test Redis Cluster, where any call
    whose keys span slots fails (check_slots)."""
    if backend == "redis":
        url = request.getfixturevalue("redis_url")
        return lambda **overrides: make_app(REDIS_URL=url, **overrides)
    if backend == "cluster":
        cluster = request.getfixturevalue("redis_cluster")
        check_slots(monkeypatch)
        return lambda **overrides: make_app(REDIS_URL=cluster.url, **overrides)
    return make_app


@pytest.fixture
def flow_app(build):
    """The app with the default test settings on the parametrised backend."""
    return build()


@pytest.fixture
def browser(flow_app, smtp):
    """The browser that signs up (on `flow_app`)."""
    return SignupActions(flow_app.test_client(), smtp)


@pytest.fixture
def other(flow_app, smtp):
    """A second browser (another device) on the same site."""
    return SignupActions(flow_app.test_client(), smtp)


@pytest.fixture
def client(app):
    """A test client (one browser)."""
    return app.test_client()


@pytest.fixture
def runner(app):
    """A CLI runner."""
    return app.test_cli_runner()


@pytest.fixture
def actions(client, smtp):
    """SignupActions for the `client` browser."""
    return SignupActions(client, smtp)
