"""Redis pending store: one hash per registration with a native TTL, Lua for check-and-change."""

from __future__ import annotations

import functools
import json
import time
import uuid
from pathlib import Path

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry
from redis.sentinel import MasterNotFoundError, Sentinel, SentinelConnectionPool

from .base import PendingStore
from .model import CodeCheck, PendingRegistration, ResendResult, StoreUnavailable

SCRIPTS_DIR = Path(__file__).parent / "scripts"
SCRIPT_NAMES = ("save", "merge", "check_code", "claim_token", "release", "finish", "replace_code",
                "reserve_email")
# Replies that mean "Redis cannot serve now" rather than "this code has a bug".
OUTAGE_REPLIES = ("MISCONF", "OOM", "LOADING", "READONLY", "NOAUTH", "MASTERDOWN", "BUSY",
                  "TRYAGAIN")
INFO_FIELDS = ("connected_clients", "used_memory_human", "uptime_in_seconds")


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


def build_client(url: str, *, timeout: float = 1.0, sentinels=None, sentinel_master=None):
    """One Redis client (and its connection pool) with explicit timeouts and a bounded retry."""
    # redis-py's defaults changed across versions (no timeouts before 8.0): set every limit.
    options = dict(
        socket_connect_timeout=timeout,
        socket_timeout=timeout,
        retry=Retry(ExponentialBackoff(cap=0.25, base=0.02), 2),
        retry_on_error=[redis.exceptions.ConnectionError, redis.exceptions.TimeoutError],
        health_check_interval=15,
    )
    if sentinels:
        sentinel = Sentinel(sentinels, socket_connect_timeout=timeout, socket_timeout=timeout)
        return sentinel.master_for(sentinel_master, connection_pool_class=MasterFollowingPool,
                                   **{**master_options(url), **options})
    return redis.Redis.from_url(url, **options)


def master_options(url: str) -> dict:
    """REDIS_URL's user, password, database and TLS, for the master that Sentinel names.

    With REDIS_SENTINELS the URL's host and port are not used, but an ACL-protected master
    still needs the credentials (without them every command answers NOAUTH).
    """
    if not url.startswith(("redis://", "rediss://")):
        return {}
    parsed = redis.connection.parse_url(url)
    master = {key: parsed[key] for key in ("username", "password", "db") if key in parsed}
    if url.startswith("rediss://"):
        master["ssl"] = True  # SentinelConnectionPool then uses its SSL connection class
        master.update({key: value for key, value in parsed.items() if key.startswith("ssl_")})
    return master


def script_source(name: str) -> str:
    """A script's text, with its `--! include NAME` lines replaced by those files."""
    lines = []
    for line in (SCRIPTS_DIR / f"{name}.lua").read_text().splitlines():
        if line.startswith("--! include "):
            lines.append((SCRIPTS_DIR / f"{line.split()[-1]}.lua").read_text())
        else:
            lines.append(line)
    return "\n".join(lines) + "\n"


def _translate_errors(method):
    """Turn every Redis outage into StoreUnavailable, the one error the manager handles."""

    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        try:
            return method(*args, **kwargs)
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError,
                redis.exceptions.ReadOnlyError) as exc:
            raise StoreUnavailable(f"redis: {exc.__class__.__name__}: {exc}") from exc
        except redis.exceptions.ResponseError as exc:
            if str(exc).startswith(OUTAGE_REPLIES):
                raise StoreUnavailable(f"redis: {exc}") from exc
            raise

    return wrapper


class RedisStore(PendingStore):
    """Keys: <prefix>pending:<id> (hash), token:<digest>, attempts:<id>, index, op:<id>, mail:*."""

    name = "redis"

    def __init__(self, client: redis.Redis, prefix: str = "signup:"):
        self.client = client
        self.prefix = prefix
        # register_script sends EVALSHA and loads the script only when Redis does not know it;
        # load_scripts() loads them all up front so no request pays for a SCRIPT LOAD.
        self.scripts = {name: client.register_script(script_source(name))
                        for name in SCRIPT_NAMES}

    @_translate_errors
    def load_scripts(self) -> None:
        """SCRIPT LOAD every script in one round trip (at start-up and after a Redis restart)."""
        pipe = self.client.pipeline(transaction=False)
        for script in self.scripts.values():
            pipe.script_load(script.script)
        pipe.execute()

    def key(self, *parts: str) -> str:
        """Every key name goes through here, so all of them share the prefix."""
        return self.prefix + ":".join(parts)

    @property
    def index_key(self):
        """Sorted set of address ids scored by expiry: O(log n) counting."""
        return self.key("index")

    @_translate_errors
    def save(self, reg, ttl, allowance=None, op_id=None):
        expires = time.time() + ttl
        mapping = PendingRegistration.to_mapping(reg)
        mapping["expires_at"] = str(expires)
        flat = [item for pair in mapping.items() for item in pair]
        cooldown, per_hour = allowance or (0, 0)
        return int(self.scripts["save"](
            keys=[self.key("pending", reg.address_id), self.index_key,
                  self.key("token", reg.token_digest), self.key("op", op_id or uuid.uuid4().hex),
                  *self._allowance_keys(reg.address_id)],
            args=[int(ttl * 1000), expires, reg.address_id, self.key("token", ""),
                  1 if allowance else 0, cooldown, per_hour] + flat,
        ))

    def _allowance_keys(self, address_id):
        return [self.key("mail", "cooldown", address_id), self.key("mail", "hour", address_id)]

    @_translate_errors
    def merge(self, reg, ttl, attempts, attempts_ttl):
        mapping = PendingRegistration.to_mapping(reg)
        mapping["expires_at"] = str(time.time() + ttl)
        flat = [item for pair in mapping.items() for item in pair]
        return bool(self.scripts["merge"](
            keys=[self.key("pending", reg.address_id), self.index_key,
                  self.key("token", reg.token_digest), self.key("attempts", reg.address_id)],
            args=[max(1, int(ttl * 1000)), mapping["expires_at"], reg.address_id,
                  self.key("token", ""), reg.updated_at, attempts, max(1, int(attempts_ttl)),
                  *flat],
        ))

    @_translate_errors
    def load(self, address_id):
        mapping = self.client.hgetall(self.key("pending", address_id))
        return PendingRegistration.from_mapping(mapping) if mapping else None

    @_translate_errors
    def exists(self, address_id):
        return bool(self.client.exists(self.key("pending", address_id)))

    @_translate_errors
    def load_by_token(self, digests):
        for digest in digests:
            address_id = self.client.get(self.key("token", digest))
            if address_id:
                reg = self.load(address_id.decode())
                if reg is not None and reg.token_digest == digest:
                    return reg
        return None

    @_translate_errors
    def delete(self, address_id):
        key = self.key("pending", address_id)
        token = self.client.hget(key, "token_digest")
        pipe = self.client.pipeline(transaction=True)
        if token:
            pipe.delete(self.key("token", token.decode()))
        pipe.delete(key)
        pipe.zrem(self.index_key, address_id)
        return bool(pipe.execute()[-2])

    @staticmethod
    def _decode(raw) -> CodeCheck:
        data = json.loads(raw)
        record = data.get("record")
        reg = None
        if record:
            reg = PendingRegistration.from_mapping(dict(zip(record[::2], record[1::2])))
        return CodeCheck(data["status"], registration=reg,
                         attempts_left=data.get("attempts_left"),
                         retry_after=data.get("retry_after"),
                         address_left=data.get("address_left"))

    @_translate_errors
    def check_code(self, address_id, digests, *, now, code_ttl, code_max, reg_max, window,
                   claim_seconds, op_id, count_unknown=True):
        raw = self.scripts["check_code"](
            keys=[self.key("pending", address_id), self.key("attempts", address_id),
                  self.key("op", op_id)],
            args=[now, code_ttl, code_max, reg_max, window, claim_seconds, op_id,
                  1 if count_unknown else 0, *digests],
        )
        return self._decode(raw)

    @_translate_errors
    def claim_token(self, digests, *, now, claim_seconds, op_id):
        raw = self.scripts["claim_token"](
            keys=[self.key("op", op_id)], args=[now, claim_seconds, op_id, self.prefix, *digests]
        )
        return self._decode(raw)

    @_translate_errors
    def release(self, address_id, op_id, *, count_wrong, window):
        self.scripts["release"](
            keys=[self.key("pending", address_id), self.key("attempts", address_id),
                  self.key("op", op_id, "release")],
            args=[op_id, 1 if count_wrong else 0, window],
        )

    @_translate_errors
    def finish(self, address_id, op_id):
        return bool(self.scripts["finish"](
            keys=[self.key("pending", address_id), self.index_key],
            args=[op_id, address_id, self.key("token", "")],
        ))

    def _replace(self, address_id, code_digest, token_digest, now, ttl, op_id, allowance):
        expires = now + ttl
        cooldown, per_hour = allowance or (0, 0)
        raw = self.scripts["replace_code"](
            keys=[self.key("pending", address_id), self.index_key,
                  self.key("token", token_digest), self.key("op", op_id),
                  *self._allowance_keys(address_id)],
            args=[int(ttl * 1000), expires, address_id, self.key("token", ""), code_digest,
                  token_digest, now, 1 if allowance else 0, cooldown, per_hour],
        )
        return json.loads(raw)

    @_translate_errors
    def replace_code(self, address_id, code_digest, token_digest, *, now, ttl, op_id):
        result = self._replace(address_id, code_digest, token_digest, now, ttl, op_id, None)
        return result["status"] == "updated"

    @_translate_errors
    def resend(self, address_id, code_digest, token_digest, *, now, ttl, op_id, cooldown,
               per_hour):
        result = self._replace(address_id, code_digest, token_digest, now, ttl, op_id,
                               (cooldown, per_hour))
        return ResendResult(result["status"], int(result.get("retry_after") or 0),
                            result.get("locale") or None)

    @_translate_errors
    def reserve_email(self, address_id, *, cooldown, per_hour, now, op_id=None):
        op_id = op_id or uuid.uuid4().hex
        return int(self.scripts["reserve_email"](
            keys=[self.key("mail", "cooldown", address_id), self.key("mail", "hour", address_id),
                  self.key("op", op_id)],
            args=[cooldown, per_hour],
        ))

    @_translate_errors
    def count(self, now):
        return int(self.client.zcount(self.index_key, now, "+inf"))

    @_translate_errors
    def cleanup(self, now=None):
        # Redis expires the records themselves; what is left is their index entries.
        now = time.time() if now is None else now
        return int(self.client.zremrangebyscore(self.index_key, "-inf", now))

    @_translate_errors
    def probe(self, now):
        """PING, INFO and the pending count in one round trip (for /health)."""
        pipe = self.client.pipeline(transaction=False)
        pipe.ping()
        pipe.info()
        pipe.zcount(self.index_key, now, "+inf")
        started = time.perf_counter()
        _pong, info, count = pipe.execute(raise_on_error=False)
        latency = (time.perf_counter() - started) * 1000
        if isinstance(count, Exception):
            raise StoreUnavailable(f"redis: {count}")
        facts = {} if isinstance(info, Exception) else {n: info.get(n) for n in INFO_FIELDS}
        return latency, facts, int(count)

    @_translate_errors
    def ping(self):
        started = time.perf_counter()
        self.client.ping()
        return (time.perf_counter() - started) * 1000

    @_translate_errors
    def info(self):
        try:
            info = self.client.info()
        except redis.exceptions.ResponseError:
            # An ACL user may be denied INFO: /health then shows the latency alone.
            return {}
        return {name: info.get(name) for name in INFO_FIELDS}
