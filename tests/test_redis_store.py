"""The Redis store through the app: what a signup leaves in a real redis-server, and on a Redis
Cluster the client built from the config, the rate limiter's storage, check-redis and the
backup (a real cluster of 3 masters + 3 replicas, tests/cluster.py).

The store's own behaviour, on every backend, is in tests/test_store_contract.py.
"""

from __future__ import annotations

import re

import pytest
import redis
from redis.cluster import RedisCluster

from app.config import load_config
from app.limits import storage_options, storage_uri
from app.pending.redis_client import LazyRedisCluster, client_from_config, cluster_options

from .cluster import check_slots
from .helpers import PASSWORD, SignupActions, code_from, csrf_token, signed_up, wait_until

pytestmark = pytest.mark.redis

USER, USER_PASSWORD = "cluster-test", "cluster-test-password"


def spelling(cluster, how: str, credentials: str = "") -> dict:
    """The environment naming the cluster one of the two ways SPEC section 10 allows."""
    if how == "url":
        return {"REDIS_URL": f"redis+cluster://{credentials}{cluster.addresses}"}
    return {"REDIS_URL": f"redis://{credentials}host-not-used:6379/0",
            "REDIS_CLUSTER_NODES": cluster.addresses}


SPELLINGS = [pytest.param("url", id="redis+cluster-url"),
             pytest.param("nodes", id="REDIS_CLUSTER_NODES")]


def config_for(tmp_path, **environ) -> dict:
    """load_config with exactly these variables (and an instance folder of this test)."""
    return load_config(environ=environ, instance_path=tmp_path / "instance")


def cluster_keys(cluster, pattern: str) -> list[bytes]:
    """Every key on the cluster's masters matching `pattern` (SCAN on each master)."""
    return [key for node in cluster.masters() for key in node.client().scan_iter(match=pattern)]


# -- the client ------------------------------------------------------------------------------
@pytest.mark.parametrize("how", SPELLINGS)
def test_client_from_config_is_a_working_cluster_client(redis_cluster, tmp_path, how):
    """Both spellings give a RedisCluster (built on first use) with the configured timeouts,
    and it writes and reads keys that live on different masters."""
    config = {**config_for(tmp_path, **spelling(redis_cluster, how)), "REDIS_TIMEOUT": 0.5}
    client = client_from_config(config)
    try:
        assert isinstance(client, LazyRedisCluster) and isinstance(client.cluster, RedisCluster)
        keys = ["signup:a", "signup:b", "signup:c", "signup:d"]
        owners = {redis_cluster.master_for(key).port for key in keys}
        assert len(owners) > 1, "the keys should spread over several masters"
        for index, key in enumerate(keys):
            assert client.set(key, index)
        assert [client.get(key) for key in keys] == [b"0", b"1", b"2", b"3"]
        node_options = client.get_default_node().redis_connection.connection_pool.connection_kwargs
        assert node_options["socket_timeout"] == 0.5
        assert node_options["socket_connect_timeout"] == 0.5
    finally:
        client.close()


@pytest.fixture
def cluster_user(redis_cluster):
    """An ACL user on every node (Redis Cluster does not share ACLs between nodes)."""
    for node in redis_cluster.live():
        node.client().acl_setuser(USER, enabled=True, passwords=[f"+{USER_PASSWORD}"],
                                  keys=["*"], channels=["*"], commands=["+@all"])
    yield USER
    for node in redis_cluster.live():
        node.client().acl_deluser(USER)


@pytest.mark.parametrize("how", SPELLINGS)
def test_cluster_client_logs_in_with_the_urls_credentials(redis_cluster, cluster_user,
                                                          tmp_path, how):
    """REDIS_URL's user and password reach every node, with either spelling; a wrong password
    is refused."""
    good = client_from_config(config_for(
        tmp_path, **spelling(redis_cluster, how, f"{cluster_user}:{USER_PASSWORD}@")))
    try:
        assert good.acl_whoami() == cluster_user
        assert good.set("signup:{x}:one", 1) and good.get("signup:{x}:one") == b"1"
    finally:
        good.close()
    bad = client_from_config(config_for(
        tmp_path, **spelling(redis_cluster, how, f"{cluster_user}:wrong@")))
    with pytest.raises(redis.exceptions.ConnectionError, match="invalid username-password"):
        bad.ping()


def test_cluster_tls_and_credentials_come_from_the_url():
    """rediss+cluster:// (or a rediss:// REDIS_URL beside REDIS_CLUSTER_NODES) turns TLS on for
    every node, with the URL's TLS settings, user and password, and no database."""
    url = "rediss+cluster://app:p%40ss@h1:7000,h2:7001/0?ssl_cert_reqs=none"
    expected = {"username": "app", "password": "p@ss", "ssl": True, "ssl_cert_reqs": "none"}
    assert cluster_options(url) == expected
    assert cluster_options("rediss://app:p%40ss@ignored:6379/0?ssl_cert_reqs=none") == expected
    assert cluster_options("redis+cluster://h1:7000,h2:7001") == {}


def test_dead_connections_are_replaced(redis_cluster, tmp_path):
    """Connections the nodes dropped (a restart, a firewall's idle timeout) are opened again
    by the cluster client's retry: redis-py takes no health-check interval for a cluster."""
    client = client_from_config(config_for(tmp_path, **spelling(redis_cluster, "url")))
    try:
        keys = ["signup:a", "signup:b", "signup:c"]
        for key in keys:
            client.set(key, key)
        for node in redis_cluster.live():
            node.client().client_kill_filter(_type="normal", skipme=True)
        assert [client.get(key) for key in keys] == [key.encode() for key in keys]
    finally:
        client.close()


def test_client_follows_a_failover(redis_cluster, tmp_path):
    """A master is killed: its replica takes over (tests/cluster.py), and the same client reads
    what was written and acknowledged by the replica before the kill, and writes again."""
    client = client_from_config(config_for(tmp_path, **spelling(redis_cluster, "url")))
    try:
        key = "signup:failover"
        client.set(key, "kept")
        old = redis_cluster.master_for(key)
        assert old.client().wait(1, 5000) == 1  # the replica has it
        new = redis_cluster.kill_master(old)
        assert redis_cluster.master_for(key).port == new.port != old.port
        assert client.get(key) == b"kept"
        assert client.set(key, "after")
        assert new.client().get(key) == b"after"
    finally:
        client.close()


# -- the app on the cluster ------------------------------------------------------------------
@pytest.mark.parametrize("how", SPELLINGS)
def test_rate_limit_counts_on_the_cluster(redis_cluster, make_app, how):
    """Flask-Limiter counts in the cluster (the `limits` library's cluster storage): two login
    POSTs over a 1/minute limit, the second is refused."""
    environ = spelling(redis_cluster, how)
    if how == "nodes":
        environ["REDIS_CLUSTER_NODES"] = redis_cluster.startup_nodes
    app = make_app(RATELIMIT_ENABLED=True, RATELIMIT_LOGIN="1/minute", **environ)
    assert app.config["RATELIMIT_STORAGE_URI"].startswith("redis+cluster://")
    client = app.test_client()
    form = {"csrf_token": csrf_token(client.get("/login").text), "email": "x", "password": "y"}
    assert [client.post("/login", data=form).status_code for _ in range(2)] == [400, 429]
    assert cluster_keys(redis_cluster, "signup:ratelimit*")


def test_app_starts_while_the_cluster_is_down_and_drains_back(redis_cluster, make_app, smtp):
    """Every node down when the app starts: it starts anyway, /health degraded, a signup is
    kept in memory (its code emailed), rate limits count in memory; once the cluster is back
    the probe switches to it, the registration is moved there, and its code verifies."""
    for node in redis_cluster.nodes:
        node.kill()
    app = make_app(REDIS_URL=redis_cluster.url, RATELIMIT_ENABLED=True,
                   RATELIMIT_SIGNUP="100/minute")
    client = app.test_client()
    health = client.get("/health").get_json()
    assert health["status"] == "degraded"
    assert health["pending_registrations"]["backend"] == "memory"
    browser = SignupActions(client, smtp)
    assert browser.signup("ada@example.com").status_code == 303
    code = code_from(smtp.wait_for("ada@example.com"))
    redis_cluster.heal()
    wait_until(lambda: client.get("/health").get_json()["pending_registrations"]["backend"]
               == "redis", 15)
    wait_until(lambda: cluster_keys(redis_cluster, "signup:pending:*"), 5)
    assert browser.verify("ada@example.com", code).status_code == 303


def test_limiter_storage_for_a_cluster_uses_the_urls_credentials_and_tls():
    """The limiter's storage URI names the nodes; its options carry REDIS_URL's credentials and
    TLS, as the pending store's client does."""
    config = {"REDIS_URL": "rediss://app:secret@ignored:6379/0", "REDIS_SENTINELS": [],
              "REDIS_CLUSTER_NODES": [("h1", 7000), ("h2", 7001)], "REDIS_KEY_PREFIX": "signup:",
              "REDIS_TIMEOUT": 1.0}
    config["RATELIMIT_STORAGE_URI"] = storage_uri(config)
    assert config["RATELIMIT_STORAGE_URI"] == "redis+cluster://h1:7000,h2:7001"
    options = storage_options(config)
    assert options["username"] == "app" and options["password"] == "secret"
    assert options["ssl"] is True
    assert options["key_prefix"] == "signup:ratelimit"


def assert_all_steps_pass(result) -> None:
    """Every one of the 8 steps said ok, and the command exited 0."""
    for step in range(1, 9):
        assert re.search(rf"^{step}\. .*: ok", result.output, re.M), result.output
    assert "all checks passed" in result.output
    assert result.exit_code == 0


def test_check_redis_selftest_runs_in_one_slot(redis_cluster, make_app, monkeypatch):
    """With a key prefix that is itself a hash tag (every key of the site in one slot),
    `check-redis` passes all 8 steps on the cluster and leaves no selftest key behind: the
    selftest's keys share a slot, and the health check works without a pipeline."""
    check_slots(monkeypatch)
    app = make_app(REDIS_URL=redis_cluster.url, REDIS_KEY_PREFIX="signup:{site}:")
    result = app.test_cli_runner().invoke(args=["check-redis"])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    assert_all_steps_pass(result)
    assert cluster_keys(redis_cluster, "signup:*selftest*") == []


def test_check_redis_passes_on_the_cluster(redis_cluster, make_app, monkeypatch):
    """`check-redis` with the default prefix passes all 8 steps on the cluster: every call's
    keys share one hash tag, and the site's count (steps 2 and 8) sums its shards per node."""
    check_slots(monkeypatch)
    app = make_app(REDIS_URL=redis_cluster.url)
    result = app.test_cli_runner().invoke(args=["check-redis"])
    assert re.search(r"^1\. health check: ok", result.output, re.M), result.output
    assert cluster_keys(redis_cluster, "signup:selftest:*") == []
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    assert_all_steps_pass(result)


def test_backup_on_a_cluster_names_the_way(redis_cluster, make_app, tmp_path):
    """`backup` does not snapshot a cluster as if it were one Redis: it says to back up each
    master with --redis-url."""
    app = make_app(REDIS_CLUSTER_NODES=redis_cluster.startup_nodes)
    result = app.test_cli_runner().invoke(args=["backup", str(tmp_path / "out"), "--no-db"])
    assert result.exit_code == 1
    assert re.search(r"redis: SKIPPED \(a Redis Cluster is backed up node by node", result.output)


# -- a real redis-server ---------------------------------------------------------------------
@pytest.mark.redis
def test_redis_holds_no_secret_in_clear_and_ttl_is_a_day(make_app, redis_url, redis_server, smtp):
    """Redis keeps no plaintext code, link token or password, no address in key names; TTL 24 h."""
    app = make_app(REDIS_URL=redis_url)
    browser = SignupActions(app.test_client(), smtp)
    code, link = signed_up(browser)
    token = link.rsplit("/", 1)[1]
    client = redis_server.client()
    keys = list(client.scan_iter(match="*"))
    pending_keys = [k for k in keys if k.startswith(b"signup:pending:")]
    assert len(pending_keys) == 1
    assert 86400 - 5 <= client.ttl(pending_keys[0]) <= 86400
    assert all(k.startswith(b"signup:") for k in keys)
    assert not any(b"example.com" in k for k in keys)

    stored = []
    for key in keys:
        kind = client.type(key)
        if kind == b"string":
            stored.append(client.get(key))
        elif kind == b"hash":
            stored += [b for pair in client.hgetall(key).items() for b in pair]
        elif kind == b"zset":
            stored += client.zrange(key, 0, -1)
        stored.append(key)
    blob = b"\n".join(stored).decode("utf-8", "replace")
    assert token not in blob
    assert PASSWORD not in blob
    assert not re.search(rf"(?<![0-9A-Za-z.]){code}(?![0-9A-Za-z.])", blob)
