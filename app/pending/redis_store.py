"""Redis pending store: one hash per registration with a native TTL, Lua for check-and-change."""

from __future__ import annotations

import functools
import hmac
import json
import time
from pathlib import Path

import redis
from redis.cluster import RedisCluster
from redis.crc import key_slot

from .base import PendingStore
from .model import DEFAULT_LOCALE, CodeCheck, ResendResult, StoreUnavailable, new_op_id
from .redis_client import LazyRedisCluster
from .redis_format import registration_fields, registration_from_fields, to_ms

SCRIPTS_DIR = Path(__file__).parent / "scripts"
SCRIPT_NAMES = ("save", "merge", "check_code", "claim_token", "release", "remove",
                "replace_code", "reserve_email", "count")
# Count shards: one per first hex character of the address id (see `shard`).
SHARDS = tuple("0123456789abcdef")
# One encoder, not one per call as json.dumps(...) with options builds.
_encode_json = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
# Replies that mean "Redis cannot serve now" rather than "this code has a bug".
OUTAGE_REPLIES = ("MISCONF", "OOM", "LOADING", "READONLY", "NOAUTH", "MASTERDOWN", "BUSY",
                  "TRYAGAIN", "CLUSTERDOWN")
INFO_FIELDS = ("connected_clients", "used_memory_human", "uptime_in_seconds")
# What a cluster client raises when the cluster cannot serve a key now (no master for its
# slot, a failover in progress, redirections that did not settle within its retries).
# (ClusterError covers ClusterDownError and MasterDownError, AskError covers MovedError.)
CLUSTER_OUTAGES = (redis.exceptions.ClusterError, redis.exceptions.SlotNotCoveredError,
                   redis.exceptions.TryAgainError, redis.exceptions.AskError)


def shard(address_id: str) -> str:
    """The hash tag of every key of one address: the first character of its id (16 shards).

    Keys one script touches together must hash to one cluster slot; the count shard is one of
    them, so the tag is a shard of the ids rather than the whole id (see docs/architecture.md).
    """
    return address_id[:1]


def _translate_errors(method):
    """Turn every Redis outage into StoreUnavailable, the one error the manager handles."""

    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        try:
            return method(*args, **kwargs)
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError,
                redis.exceptions.ReadOnlyError, *CLUSTER_OUTAGES) as exc:
            raise StoreUnavailable(f"redis: {exc.__class__.__name__}: {exc}") from exc
        except redis.exceptions.ResponseError as exc:
            if str(exc).startswith(OUTAGE_REPLIES):
                raise StoreUnavailable(f"redis: {exc}") from exc
            raise

    return wrapper


class RedisStore(PendingStore):
    """One key layout, every key of an address under the hash tag of its shard (`shard`):

    <prefix>pending:{s}:<id> (the record's hash), attempts:{s}:<id>, code-attempts:{s}:<id>,
    mail:cooldown:{s}:<id>, mail:hour:{s}:<id>, op:{s}:<op id>[:release] and count:{s} (the
    count shard), where s is the first character of the id. Each script receives every key it
    touches in KEYS, all of one tag, so each check-and-change is one atomic call on a Redis
    Cluster as on one Redis (docs/architecture.md).
    """

    name = "redis"

    def __init__(self, client: redis.Redis, prefix: str = "signup:"):
        self.client = client
        self.prefix = prefix
        self.is_cluster = isinstance(client, (RedisCluster, LazyRedisCluster))
        # redis-py's Script objects: EVALSHA, and SCRIPT LOAD when Redis answers NOSCRIPT (on
        # a cluster to every master). load_scripts() loads them all up front so no request
        # pays for a SCRIPT LOAD.
        self.scripts = {name: client.register_script((SCRIPTS_DIR / f"{name}.lua").read_text())
                        for name in SCRIPT_NAMES}
        # The count shards, grouped by cluster slot (one group on one Redis, or when the prefix
        # is itself a hash tag): count.lua sums each group in one call.
        groups: dict[int, list[str]] = {}
        for tag in SHARDS:
            name = f"{prefix}count:{{{tag}}}"
            groups.setdefault(key_slot(name.encode()) if self.is_cluster else 0, []).append(name)
        self.count_groups = list(groups.values())

    @_translate_errors
    def load_scripts(self) -> None:
        """SCRIPT LOAD every script (at start-up and after a Redis restart)."""
        if self.is_cluster:
            # redis-py's cluster pipeline refuses SCRIPT LOAD; each call reaches every master.
            for script in self.scripts.values():
                self.client.script_load(script.script)
            return
        pipe = self.client.pipeline(transaction=False)
        for script in self.scripts.values():
            pipe.script_load(script.script)
        pipe.execute()

    def key(self, kind: str, address_id: str) -> str:
        """The key of one address's `kind` (pending, attempts, code-attempts, mail:cooldown,
        mail:hour): every key name of an address goes through here or `op_key`."""
        return f"{self.prefix}{kind}:{{{shard(address_id)}}}:{address_id}"

    def pending_key(self, address_id: str) -> str:
        """The record's key."""
        return self.key("pending", address_id)

    def op_key(self, address_id: str, op_id: str) -> str:
        """Where a step keeps its answer for a retry: under the tag of the address it touched."""
        return f"{self.prefix}op:{{{shard(address_id)}}}:{op_id}"

    def count_key(self, address_id: str) -> str:
        """The count shard an address's record is counted in."""
        return f"{self.prefix}count:{{{shard(address_id)}}}"

    def _allowance_keys(self, address_id):
        """The email allowance's keys, and the per-code count of an address with no record
        (check_code.lua), which every email the allowance lets out starts again."""
        return [self.key("mail:cooldown", address_id), self.key("mail:hour", address_id),
                self.key("code-attempts", address_id)]

    @staticmethod
    def _fields(reg, expires) -> str:
        """The record's fields as one JSON list (one script argument: see save.lua).

        Integers go as JSON numbers: Redis writes them back as the same digits (they are far
        below 2**53), so they are still stored as integers.
        """
        return _encode_json([item for pair in registration_fields(reg, expires).items()
                             for item in pair])

    def save_call(self, reg, ttl, allowance=None, op_id=None) -> tuple[list, list]:
        """The keys and arguments of the save script for `reg` (the benchmark pipelines them)."""
        expires = int(time.time() + ttl)
        aid = reg.address_id
        keys = [self.pending_key(aid), self.count_key(aid)]
        args = [int(ttl * 1000), expires, self._fields(reg, expires)]
        if allowance:
            # Only a save that takes an email keeps its answer under the op id (save.lua).
            keys += [self.op_key(aid, op_id or new_op_id()), *self._allowance_keys(aid)]
            args += allowance
        return keys, args

    @_translate_errors
    def save(self, reg, ttl, allowance=None, op_id=None):
        keys, args = self.save_call(reg, ttl, allowance, op_id)
        return int(self.scripts["save"](keys, args))

    @_translate_errors
    def merge(self, reg, ttl, attempts, attempts_ttl):
        expires = int(time.time() + ttl)
        aid = reg.address_id
        return bool(self.scripts["merge"](
            [self.pending_key(aid), self.count_key(aid), self.key("attempts", aid)],
            [max(1, int(ttl * 1000)), expires, to_ms(reg.updated_at), attempts,
             max(1, int(attempts_ttl)), self._fields(reg, expires)]))

    @_translate_errors
    def load(self, address_id):
        mapping = self.client.hgetall(self.pending_key(address_id))
        return registration_from_fields(mapping, address_id) if mapping else None

    @_translate_errors
    def exists(self, address_id):
        return bool(self.client.exists(self.pending_key(address_id)))

    @_translate_errors
    def load_by_token(self, address_id, digests):
        mapping = self.client.hgetall(self.pending_key(address_id))
        stored = mapping.get(b"t")
        if stored and any(hmac.compare_digest(stored, d.encode()) for d in digests):
            return registration_from_fields(mapping, address_id)
        return None

    @_translate_errors
    def delete(self, address_id):
        return bool(self.scripts["remove"]([self.pending_key(address_id),
                                            self.count_key(address_id)]))

    @staticmethod
    def _decode(raw: bytes, build=registration_from_fields) -> CodeCheck:
        """A check script's answer (see `answer` in check_code.lua) as a CodeCheck; `build`
        makes the claimed record from its fields and id."""
        head, _, claimed = raw.partition(b"\n")
        status, attempts_left, retry_after = head.decode().split(" ")
        reg = None
        if claimed:
            address_id, _, record = claimed.partition(b"\n")
            flat = json.loads(record)
            reg = build(dict(zip(flat[::2], flat[1::2])), address_id.decode())
        return CodeCheck(status, registration=reg,
                         attempts_left=int(attempts_left) if attempts_left else None,
                         retry_after=int(retry_after) if retry_after else None)

    @_translate_errors
    def check_code(self, address_id, digests, *, now, code_ttl, code_max, reg_max, window,
                   claim_seconds, op_id, count_unknown=True):
        caps = f"{code_ttl} {code_max} {reg_max} {window} {claim_seconds} {int(count_unknown)}"
        raw = self.scripts["check_code"](
            [self.pending_key(address_id), self.key("attempts", address_id),
             self.op_key(address_id, op_id), self.key("code-attempts", address_id)],
            [address_id, now, caps, op_id, *digests])
        return self._decode(raw)

    @_translate_errors
    def claim_token(self, address_id, digests, *, now, claim_seconds, op_id, reg_max=None):
        keys = [self.pending_key(address_id), self.op_key(address_id, op_id)]
        if reg_max is not None:
            keys.append(self.key("attempts", address_id))
        raw = self.scripts["claim_token"](
            keys, [address_id, now, claim_seconds, op_id, "" if reg_max is None else reg_max,
                   *digests])
        return self._decode(raw)

    @_translate_errors
    def release(self, address_id, op_id, *, count_wrong, window, code_max=0, reg_max=0):
        left = int(self.scripts["release"](
            [self.pending_key(address_id), self.key("attempts", address_id),
             self.op_key(address_id, op_id) + ":release"],
            [op_id, 1 if count_wrong else 0, window, code_max, reg_max]))
        return None if left < 0 else left

    @_translate_errors
    def finish(self, address_id, op_id):
        return bool(self.scripts["remove"]([self.pending_key(address_id),
                                            self.count_key(address_id)], [op_id]))

    def _replace(self, address_id, code_digest, token_digest, now, ttl, op_id, allowance):
        expires = int(now + ttl)
        keys = [self.pending_key(address_id), self.count_key(address_id)]
        args = [int(ttl * 1000), expires, code_digest, token_digest, to_ms(now)]
        if allowance:
            # Only a resend that takes an email keeps its answer under the op id.
            keys += [self.op_key(address_id, op_id), *self._allowance_keys(address_id)]
            args += allowance
        # "updated [locale]", "missing" or "wait <seconds>" (replace_code.lua).
        return self.scripts["replace_code"](keys, args).decode().split(" ")

    @_translate_errors
    def replace_code(self, address_id, code_digest, token_digest, *, now, ttl, op_id):
        answer = self._replace(address_id, code_digest, token_digest, now, ttl, op_id, None)
        return answer[0] == "updated"

    @_translate_errors
    def resend(self, address_id, code_digest, token_digest, *, now, ttl, op_id, cooldown,
               per_hour):
        answer = self._replace(address_id, code_digest, token_digest, now, ttl, op_id,
                               (cooldown, per_hour))
        if answer[0] == "wait":
            return ResendResult("wait", int(answer[1]))
        if answer[0] == "updated":
            return ResendResult("updated", locale=answer[1] if len(answer) > 1 else DEFAULT_LOCALE)
        return ResendResult(answer[0])

    @_translate_errors
    def reserve_email(self, address_id, *, cooldown, per_hour, now, op_id=None):
        op_key = self.op_key(address_id, op_id or new_op_id())
        cooldown_key, hour_key, code_attempts_key = self._allowance_keys(address_id)
        return int(self.scripts["reserve_email"](
            [cooldown_key, hour_key, op_key, code_attempts_key], [cooldown, per_hour]))

    def _count_all(self, client, now, *extra):
        """Queue count.lua on every group of count shards on `client`, a pipeline (EVALSHA
        itself: a pipeline of Script objects would first ask SCRIPT EXISTS)."""
        sha = self.scripts["count"].sha
        for group in self.count_groups:
            client.evalsha(sha, len(group), *group, now, *extra)

    def _sum_counts(self, now, *extra) -> int:
        """count.lua over every shard group: one call on one Redis, one pipeline per master on
        a cluster."""
        script = self.scripts["count"]
        if not self.is_cluster:
            return int(script(self.count_groups[0], [now, *extra]))
        # redis-py's cluster pipeline refuses EVALSHA: each master gets a plain pipeline of
        # the groups it serves, as the cluster client's slot map has it.
        by_node: dict[str, tuple] = {}
        for group in self.count_groups:
            node = self.client.get_node_from_key(group[0])
            by_node.setdefault(node.name, (node, []))[1].append(group)
        total = 0
        for node, groups in by_node.values():
            pipe = node.redis_connection.pipeline(transaction=False)
            for group in groups:
                pipe.evalsha(script.sha, len(group), *group, now, *extra)
            try:
                total += sum(int(n) for n in pipe.execute())
            except (redis.exceptions.ResponseError, redis.exceptions.ConnectionError,
                    redis.exceptions.TimeoutError):
                # A slot moved, a master failed over, or a node lost its scripts: the cluster
                # client's own routing and retries (and the Script's NOSCRIPT handling), one
                # group at a time.
                total += sum(int(script(group, [now, *extra])) for group in groups)
        return total

    @_translate_errors
    def count(self, now):
        return self._sum_counts(now)

    @_translate_errors
    def cleanup(self, now=None):
        # Redis expires the records themselves; what is left is the counts of passed minutes.
        return self._sum_counts(time.time() if now is None else now, "rebuild")

    @_translate_errors
    def probe(self, now):
        """PING, INFO and the pending count in one round trip (for /health)."""
        if self.is_cluster:
            # redis-py's cluster pipeline refuses PING and INFO: three calls, each routed (and
            # retried across a failover) by the cluster client.
            return self.ping(), self.info(), self.count(now)
        pipe = self.client.pipeline(transaction=False)
        pipe.ping()
        pipe.info()
        self._count_all(pipe, now)  # one group on one Redis
        started = time.perf_counter()
        _pong, info, count = pipe.execute(raise_on_error=False)
        latency = (time.perf_counter() - started) * 1000
        if isinstance(count, redis.exceptions.NoScriptError):
            count = self.count(now)  # Redis restarted and forgot the scripts: load and ask
        elif isinstance(count, Exception):
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
