"""The one Redis client of a process, built from the config: one Redis, Sentinel or Cluster.

`client_from_config` is the one place that reads the Redis settings: the manager
(`pending.build_manager`), `flask check-redis` and `flask backup` all get their client from it
(`backup --redis-url` names another server, and builds that with `build_client`).

Every client gets explicit limits: connect and read timeouts, a small bounded retry with
backoff, and (where redis-py takes it) a health-check interval. redis-py's defaults changed
across versions (no timeouts before 8.0), so none is left to them.
"""

from __future__ import annotations

import threading

import redis
from redis.backoff import ExponentialBackoff
from redis.cluster import ClusterNode, RedisCluster
from redis.commands.core import Script
from redis.connection import Encoder
from redis.exceptions import RedisClusterException
from redis.retry import Retry
from redis.sentinel import MasterNotFoundError, Sentinel, SentinelConnectionPool

from ..config import split_cluster_url

HEALTH_CHECK_INTERVAL = 15  # seconds a pooled connection may idle before a PING checks it
RETRIES = 2


def _retry() -> Retry:
    return Retry(ExponentialBackoff(cap=0.25, base=0.02), RETRIES)


class MasterFollowingPool(SentinelConnectionPool):
    """A Sentinel pool that asks the sentinels for the master at every checkout.

    redis-py's own pool asks only when it opens a connection, so after a failover its pooled
    connections keep writing to the old master until Sentinel demotes it (about 10 s later),
    and the demotion throws those writes away. Asking first closes idle connections to the old
    master, and connections to it that were in use are dropped when released.
    """

    def get_connection(self, *args, **kwargs):
        try:
            self.get_master_address()
        except MasterNotFoundError:
            pass  # the sentinels cannot tell now: keep the connections we have
        return super().get_connection(*args, **kwargs)


def uses_redis(config) -> bool:
    """False when REDIS_URL is memory:// and neither Sentinel nor a cluster is configured."""
    return bool(config["REDIS_SENTINELS"] or config["REDIS_CLUSTER_NODES"]
                or not config["REDIS_URL"].startswith("memory:"))


def client_from_config(config):
    """The configured Redis client (None for memory://): a Redis for REDIS_URL, the master
    REDIS_SENTINELS name, or a RedisCluster over REDIS_CLUSTER_NODES (which also holds the
    nodes of a redis+cluster:// REDIS_URL, see app.config)."""
    if not uses_redis(config):
        return None
    timeout = config["REDIS_TIMEOUT"]
    if config["REDIS_CLUSTER_NODES"]:
        return LazyRedisCluster(lambda: cluster_client(
            config["REDIS_URL"], config["REDIS_CLUSTER_NODES"], timeout=timeout))
    return build_client(config["REDIS_URL"], timeout=timeout, sentinels=config["REDIS_SENTINELS"],
                        sentinel_master=config["REDIS_SENTINEL_MASTER"])


def build_client(url: str, *, timeout: float = 1.0, sentinels=None, sentinel_master=None):
    """One Redis client (and its connection pool) with explicit timeouts and a bounded retry."""
    options = dict(
        socket_connect_timeout=timeout,
        socket_timeout=timeout,
        retry=_retry(),
        retry_on_error=[redis.exceptions.ConnectionError, redis.exceptions.TimeoutError],
        health_check_interval=HEALTH_CHECK_INTERVAL,
    )
    if sentinels:
        sentinel = Sentinel(sentinels, socket_connect_timeout=timeout, socket_timeout=timeout)
        return sentinel.master_for(sentinel_master, connection_pool_class=MasterFollowingPool,
                                   **{**master_options(url), **options})
    return redis.Redis.from_url(url, **options)


def cluster_client(url: str, nodes, *, timeout: float = 1.0) -> RedisCluster:
    """A RedisCluster that discovers the cluster from `nodes` ([(host, port)]), logging in
    with REDIS_URL's user and password, over TLS when REDIS_URL is rediss://.

    redis-py retries on the cluster client (following MOVED/ASK and failovers), not per
    connection, and takes no `health_check_interval` for cluster nodes (it drops the
    option): a connection found dead is replaced by that retry instead.
    """
    return RedisCluster(startup_nodes=[ClusterNode(host, port) for host, port in nodes],
                        socket_connect_timeout=timeout, socket_timeout=timeout,
                        retry=_retry(), **cluster_options(url))


class LazyRedisCluster:
    """A RedisCluster built on its first use, not when the app starts.

    redis-py reads the slot map when a RedisCluster is built and raises when no node answers:
    built at start-up, an unreachable cluster would stop the app, where SPEC section 4 wants it
    to serve from memory. Until a build succeeds every use raises ConnectionError (an outage,
    so the manager falls back to memory and its probe tries again); then every attribute is
    the RedisCluster's. Scripts are registered on this object (their SHA needs no server).
    """

    def __init__(self, build):
        self._build = build
        self._client: RedisCluster | None = None
        self._lock = threading.Lock()

    @property
    def cluster(self) -> RedisCluster:
        """The RedisCluster, built now if it was not yet (ConnectionError if it cannot be)."""
        if self._client is None:
            with self._lock:
                if self._client is None:
                    try:
                        self._client = self._build()
                    except RedisClusterException as exc:
                        raise redis.exceptions.ConnectionError(
                            f"Redis Cluster cannot be reached: {exc}") from exc
        return self._client

    def __getattr__(self, name):
        return getattr(self.cluster, name)

    @staticmethod
    def get_encoder() -> Encoder:
        """redis-py's default encoding (a Script hashes its text with it)."""
        return Encoder(encoding="utf-8", encoding_errors="strict", decode_responses=False)

    def register_script(self, script) -> Script:
        """A Script run through this client (built when the script is first run)."""
        return Script(self, script)

    def close(self) -> None:
        """Close the RedisCluster if it was built."""
        if self._client is not None:
            self._client.close()


def cluster_options(url: str) -> dict:
    """REDIS_URL's user, password and TLS for every node of a cluster (which has no database
    to select: the config admits only 0)."""
    return {key: value for key, value in master_options(url).items() if key != "db"}


def master_options(url: str) -> dict:
    """REDIS_URL's user, password, database and TLS, for the master that Sentinel names or
    the nodes of a cluster.

    With REDIS_SENTINELS or REDIS_CLUSTER_NODES the URL's host and port are not used, but an
    ACL-protected server still needs the credentials (without them every command answers
    NOAUTH).
    """
    if url.startswith(("redis+cluster://", "rediss+cluster://")):
        url, _nodes = split_cluster_url(url)
    if not url.startswith(("redis://", "rediss://")):
        return {}
    parsed = redis.connection.parse_url(url)
    master = {key: parsed[key] for key in ("username", "password", "db") if key in parsed}
    if url.startswith("rediss://"):
        master["ssl"] = True  # SentinelConnectionPool then uses its SSL connection class
        master.update({key: value for key, value in parsed.items() if key.startswith("ssl_")})
    return master
