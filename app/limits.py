"""Per-client-IP rate limits on the form POSTs (Flask-Limiter), counters in the same Redis."""

from __future__ import annotations

import threading
from urllib.parse import unquote, urlsplit

from flask import current_app, request
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from limits.storage import RedisClusterStorage, Storage
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisClusterException

from .endpoints import LIMITED_ENDPOINTS
from .pending.redis_client import cluster_options

# Flask-Limiter settings for limits on every request; none is set by this app (SPEC section 3).
GLOBAL_LIMIT_SETTINGS = ("RATELIMIT_DEFAULT", "RATELIMIT_APPLICATION", "RATELIMIT_META")


class LazyRedisClusterStorage(RedisClusterStorage):
    """The `limits` library's cluster storage, connecting on first use rather than when built.

    Registered for `redis+cluster://` (the `limits` way to supply a storage: a subclass naming
    its scheme), so the app starts while the cluster does not answer (SPEC section 4), as the
    pending store's LazyRedisCluster does: each use raises until the cluster answers, and
    Flask-Limiter counts in memory meanwhile and checks the storage again later.
    """

    STORAGE_SCHEME = ["redis+cluster"]

    def __init__(self, uri: str, **options):
        self._cluster = None
        self._lock = threading.RLock()
        self._connect_with = (uri, options)
        try:
            super().__init__(uri, **options)
        except RedisClusterException:
            Storage.__init__(self, uri, bool(options.get("wrap_exceptions", False)))

    @property
    def storage(self):
        """The RedisCluster, built now if it was not yet."""
        if self._cluster is None:
            with self._lock:
                if self._cluster is None:
                    uri, options = self._connect_with
                    try:
                        super().__init__(uri, **options)
                    except RedisClusterException as exc:
                        raise RedisConnectionError(
                            f"Redis Cluster cannot be reached: {exc}") from exc
        return self._cluster

    @storage.setter
    def storage(self, client) -> None:
        self._cluster = client


def storage_uri(config) -> str:
    """The `limits` storage URL for the configured Redis (memory:// when there is none)."""
    url = config["REDIS_URL"]
    if config["REDIS_CLUSTER_NODES"]:
        # The `limits` library's RedisClusterStorage; TLS and credentials go in the options.
        return "redis+cluster://" + ",".join(f"{host}:{port}"
                                             for host, port in config["REDIS_CLUSTER_NODES"])
    if config["REDIS_SENTINELS"]:
        hosts = ",".join(f"{host}:{port}" for host, port in config["REDIS_SENTINELS"])
        return f"redis+sentinel://{hosts}/{config['REDIS_SENTINEL_MASTER']}"
    if url.startswith("memory:"):
        return "memory://"
    if url.startswith("unix:"):
        return "redis+unix:" + url[len("unix:"):]
    return url


def storage_options(config) -> dict:
    """Options for the `limits` storage: our key prefix, timeouts, the Sentinel master's
    credentials (REDIS_URL's user and password; the sentinels themselves are asked without),
    and a cluster's credentials and TLS (REDIS_URL's, as the pending store uses them)."""
    if config["RATELIMIT_STORAGE_URI"].startswith("memory"):
        return {}
    options = {
        "key_prefix": config["REDIS_KEY_PREFIX"] + "ratelimit",
        "socket_timeout": config["REDIS_TIMEOUT"],
        "socket_connect_timeout": config["REDIS_TIMEOUT"],
    }
    if config["REDIS_CLUSTER_NODES"]:
        options.update(cluster_options(config["REDIS_URL"]))
    elif config["REDIS_SENTINELS"]:
        parts = urlsplit(config["REDIS_URL"])
        if parts.username:
            options["username"] = unquote(parts.username)
        if parts.password:
            options["password"] = unquote(parts.password)
        options["sentinel_kwargs"] = {"username": None, "password": None}
    return options


def _limit_for(variable: str):
    return lambda: current_app.config[variable]


def new_limiter() -> Limiter:
    """The unbound limiter: client IP as key, its own memory fallback, no X-RateLimit headers.

    Those headers cost a second Redis round trip on every limited POST (the window's state is
    read again after counting); the 429 page states the wait and sends `Retry-After` itself.
    """
    return Limiter(key_func=get_remote_address, headers_enabled=False,
                   in_memory_fallback_enabled=True)


def init_app(app) -> None:
    """Bind the limiter to the app's Redis and put each endpoint's limit on its POSTs.

    Only Flask-Limiter's public API: a shared limit per (blueprint, variable) decorating the
    blueprint, exempt on the blueprint's other endpoints, checked by the limiter's own
    per-request hook. Views stay as their blueprints registered them.
    """
    config = app.config
    config.setdefault("RATELIMIT_STORAGE_URI", storage_uri(config))
    config.setdefault("RATELIMIT_STORAGE_OPTIONS", storage_options(config))
    config.setdefault("RATELIMIT_HEADERS_ENABLED", False)
    # One limiter per app rather than a shared unbound one: limits are attached inside the
    # limiter, and a shared instance would collect them once per app built.
    limiter = new_limiter()
    limiter.init_app(app)
    app.extensions["rate_limiter"] = limiter
    if not any(config.get(name) for name in GLOBAL_LIMIT_SETTINGS):
        # Every limit here counts POSTs alone: the hook need not look further into any other
        # request (with a global limit set, every request is counted, so no filter then).
        limiter.request_filter(lambda: request.method != "POST")
    groups: dict[tuple[str, str], set[str]] = {}
    for endpoint, variable in LIMITED_ENDPOINTS.items():
        groups.setdefault((endpoint.split(".")[0], variable), set()).add(endpoint)
    for (blueprint, variable), endpoints in groups.items():
        # One shared counter per variable (its scope): a code POST and a link POST draw on
        # the same verify allowance, whichever blueprint they are in.
        limit = limiter.shared_limit(_limit_for(variable), scope=variable.lower(),
                                     methods=["POST"], exempt_when=_other_than(endpoints))
        limit(app.blueprints[blueprint])


def _other_than(endpoints: set[str]):
    """True while the request is for none of `endpoints` (the rest of their blueprint)."""
    return lambda: request.endpoint not in endpoints
