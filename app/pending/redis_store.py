"""Redis pending store: one hash per registration with a native TTL, Lua for check-and-change."""

from __future__ import annotations

import functools
import hmac
import json
import time
from pathlib import Path

import redis
from redis.cluster import RedisCluster

from .base import PendingStore
from .model import (DEFAULT_LOCALE, CodeCheck, PendingRegistration, ResendResult,
                    StoreUnavailable, new_op_id, to_ms)

SCRIPTS_DIR = Path(__file__).parent / "scripts"
SCRIPT_NAMES = ("save", "merge", "check_code", "claim_token", "claim_legacy", "release", "finish",
                "delete", "replace_code", "reserve_email", "count", "cleanup", "migrate")
MIGRATE_BATCH = 500  # records upgraded per script call (a few ms of Redis time)
# One encoder, not one per call as json.dumps(...) with options builds.
_encode_json = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
# Replies that mean "Redis cannot serve now" rather than "this code has a bug".
OUTAGE_REPLIES = ("MISCONF", "OOM", "LOADING", "READONLY", "NOAUTH", "MASTERDOWN", "BUSY",
                  "TRYAGAIN")
INFO_FIELDS = ("connected_clients", "used_memory_human", "uptime_in_seconds")


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
    """Keys: <prefix>pending:<id> (hash), count, attempts:<id>, code-attempts:<id>, op:<id>,
    mail:*.

    Earlier versions also kept token:<hex digest> (link lookups) and index (a sorted set); the
    scripts upgrade what they find of that layout, and `migrate` upgrades the rest.
    """

    name = "redis"

    def __init__(self, client: redis.Redis, prefix: str = "signup:"):
        self.client = client
        self.prefix = prefix
        self.count_key = self.key("count")
        self.index_key = self.key("index")  # the earlier layout's counting index
        # register_script sends EVALSHA and loads the script only when Redis does not know it;
        # load_scripts() loads them all up front so no request pays for a SCRIPT LOAD.
        self.scripts = {name: client.register_script(script_source(name))
                        for name in SCRIPT_NAMES}

    @_translate_errors
    def load_scripts(self) -> None:
        """SCRIPT LOAD every script in one round trip (at start-up and after a Redis restart)."""
        if isinstance(self.client, RedisCluster):
            # redis-py's cluster pipeline refuses SCRIPT LOAD; each call reaches every master.
            for script in self.scripts.values():
                self.client.script_load(script.script)
            return
        pipe = self.client.pipeline(transaction=False)
        for script in self.scripts.values():
            pipe.script_load(script.script)
        pipe.execute()

    def _eval(self, name: str, keys: list, args: list):
        """EVALSHA one of the scripts (one round trip); after a Redis restart that forgot them,
        load them all again and retry once."""
        sha = self.scripts[name].sha
        try:
            return self.client.execute_command("EVALSHA", sha, len(keys), *keys, *args)
        except redis.exceptions.NoScriptError:
            self.load_scripts()
            return self.client.execute_command("EVALSHA", sha, len(keys), *keys, *args)

    def key(self, *parts: str) -> str:
        """Every key name goes through here, so all of them share the prefix."""
        return self.prefix + ":".join(parts)

    def pending_key(self, address_id: str) -> str:
        """The record's key (built without `key()`'s join: this is on every request's path)."""
        return self.prefix + "pending:" + address_id

    def _allowance_keys(self, address_id):
        """The email allowance's keys, and the per-code count of an address with no record
        (check_code.lua), which every email the allowance lets out starts again."""
        return [self.key("mail", "cooldown", address_id), self.key("mail", "hour", address_id),
                self.code_attempts_key(address_id)]

    def code_attempts_key(self, address_id: str) -> str:
        """Wrong codes against the stand-in code of an address with no pending record."""
        return self.prefix + "code-attempts:" + address_id

    @staticmethod
    def _fields(reg, expires) -> str:
        """The record's fields as one JSON list (one script argument: see save.lua).

        Integers go as JSON numbers: Redis writes them back as the same digits (they are far
        below 2**53), so they are still stored as integers.
        """
        return _encode_json([item for pair in reg.to_mapping(expires_at=expires).items()
                             for item in pair])

    def save_call(self, reg, ttl, allowance=None, op_id=None) -> tuple[list, list]:
        """The keys and arguments of the save script for `reg` (the benchmark pipelines them)."""
        expires = int(time.time() + ttl)
        keys = [self.pending_key(reg.address_id), self.count_key]
        args = [reg.address_id, int(ttl * 1000), expires, self._fields(reg, expires)]
        if allowance:
            # Only a save that takes an email keeps its answer under the op id (save.lua).
            keys += [self.prefix + "op:" + (op_id or new_op_id()),
                     *self._allowance_keys(reg.address_id)]
            args += allowance
        return keys, args

    @_translate_errors
    def save(self, reg, ttl, allowance=None, op_id=None):
        keys, args = self.save_call(reg, ttl, allowance, op_id)
        return int(self._eval("save", keys, args))

    @_translate_errors
    def merge(self, reg, ttl, attempts, attempts_ttl):
        expires = int(time.time() + ttl)
        return bool(self._eval(
            "merge", [self.pending_key(reg.address_id), self.count_key,
                      self.key("attempts", reg.address_id)],
            [reg.address_id, max(1, int(ttl * 1000)), expires, to_ms(reg.updated_at), attempts,
             max(1, int(attempts_ttl)), self._fields(reg, expires)]))

    @_translate_errors
    def load(self, address_id):
        mapping = self.client.hgetall(self.pending_key(address_id))
        return PendingRegistration.from_mapping(mapping, address_id) if mapping else None

    @_translate_errors
    def exists(self, address_id):
        return bool(self.client.exists(self.pending_key(address_id)))

    @_translate_errors
    def load_by_token(self, address_id, digests):
        if address_id is not None:
            mapping = self.client.hgetall(self.pending_key(address_id))
            stored = mapping.get(b"t")
            if stored and any(hmac.compare_digest(stored, d.encode()) for d in digests):
                return PendingRegistration.from_mapping(mapping, address_id)
            return None
        # A link of the earlier format: its lookup key names the record (two round trips).
        for digest, found in self._legacy_token_ids(digests):
            mapping = self.client.hgetall(self.pending_key(found))
            stored = mapping.get(b"o") or mapping.get(b"token_digest")
            if stored and hmac.compare_digest(stored, digest.encode()):
                return PendingRegistration.from_mapping(mapping, found)
        return None

    def _legacy_token_ids(self, digests):
        """(digest, address id) for each lookup key of an earlier-format link that exists."""
        for digest in digests:
            found = self.client.get(self.key("token", digest))
            if found:
                yield digest, found.decode()

    @_translate_errors
    def delete(self, address_id):
        return bool(self._eval("delete", [self.pending_key(address_id), self.count_key],
                               [address_id]))

    @staticmethod
    def _decode(raw: bytes, build=PendingRegistration.from_mapping) -> CodeCheck:
        """A check script's answer (see scripts/_answer.lua) as a CodeCheck; `build` makes the
        claimed record from its fields and id."""
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
        raw = self._eval(
            "check_code", [self.pending_key(address_id), self.count_key,
                           self.prefix + "attempts:" + address_id, self.prefix + "op:" + op_id,
                           self.code_attempts_key(address_id)],
            [address_id, now, caps, op_id, *digests])
        return self._decode(raw)

    @_translate_errors
    def claim_token(self, address_id, digests, *, now, claim_seconds, op_id, reg_max=None):
        op_key = self.prefix + "op:" + op_id
        cap = "" if reg_max is None else reg_max
        if address_id is None:
            keys, counted = [op_key, self.count_key], ""
            if reg_max is not None:
                # The script may only touch the keys it is given, and which record (so which
                # counter) an earlier-format link names is read from its lookup key: find it
                # first (links of that format only; the script checks it still names it).
                counted = next((found for _, found in self._legacy_token_ids(digests)), "")
                if counted:
                    keys.append(self.key("attempts", counted))
            raw = self._eval("claim_legacy", keys,
                             [self.prefix, now, claim_seconds, op_id, cap, counted, *digests])
        else:
            keys = [self.pending_key(address_id), op_key]
            if reg_max is not None:
                keys.append(self.key("attempts", address_id))
            raw = self._eval("claim_token", keys,
                             [address_id, now, claim_seconds, op_id, cap, *digests])
        return self._decode(raw)

    @_translate_errors
    def release(self, address_id, op_id, *, count_wrong, window, code_max=0, reg_max=0):
        left = int(self._eval(
            "release", [self.pending_key(address_id), self.key("attempts", address_id),
                        self.key("op", op_id, "release")],
            [op_id, 1 if count_wrong else 0, window, code_max, reg_max]))
        return None if left < 0 else left

    @_translate_errors
    def finish(self, address_id, op_id):
        return bool(self._eval("finish", [self.pending_key(address_id), self.count_key],
                               [address_id, op_id]))

    def _replace(self, address_id, code_digest, token_digest, now, ttl, op_id, allowance):
        expires = int(now + ttl)
        keys = [self.pending_key(address_id), self.count_key]
        args = [address_id, int(ttl * 1000), expires, code_digest, token_digest, to_ms(now)]
        if allowance:
            # Only a resend that takes an email keeps its answer under the op id.
            keys += [self.prefix + "op:" + op_id, *self._allowance_keys(address_id)]
            args += allowance
        # "updated [locale]", "missing" or "wait <seconds>" (replace_code.lua).
        return self._eval("replace_code", keys, args).decode().split(" ")

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
        op_id = op_id or new_op_id()
        cooldown_key, hour_key, code_attempts_key = self._allowance_keys(address_id)
        return int(self._eval("reserve_email", [cooldown_key, hour_key, self.key("op", op_id),
                                                code_attempts_key], [cooldown, per_hour]))

    @_translate_errors
    def count(self, now):
        return int(self._eval("count", [self.count_key, self.index_key], [now]))

    @_translate_errors
    def cleanup(self, now=None):
        # Redis expires the records themselves; what is left is the counts of passed minutes.
        now = time.time() if now is None else now
        return int(self._eval("cleanup", [self.count_key, self.index_key], [now]))

    @_translate_errors
    def needs_migration(self) -> bool:
        """True while the earlier layout's index exists (records not yet upgraded, or its
        leftovers)."""
        return bool(self.client.exists(self.index_key))

    @_translate_errors
    def migrate(self, batch: int = MIGRATE_BATCH) -> dict:
        """Upgrade every record of the earlier layout; idempotent and safe alongside traffic.

        SCANs signup:pending:* and upgrades what it finds in batches (one script call each;
        each upgrade also removes its record from the earlier index), then drops the index
        entries of records that have expired. Links already emailed keep working through their
        token: keys. Only commands the signup ACL user may run are used (no ZRANGE), so index
        entries of records written meanwhile by a still-running earlier version stay counted
        (and are upgraded when touched, or by the next run). Returns how many records were
        upgraded, how many expired index entries were dropped and how many entries are left.
        """
        pending = self.prefix + "pending:"
        upgraded = 0

        def run(ids):
            return int(self._eval("migrate", [self.count_key, *(pending + i for i in ids)], ids))

        ids = []
        for key in self.client.scan_iter(match=pending + "*", count=batch):
            ids.append(key.decode()[len(pending):])
            if len(ids) >= batch:
                upgraded += run(ids)
                ids = []
        if ids:
            upgraded += run(ids)
        stale = int(self.client.zremrangebyscore(self.index_key, "-inf", time.time()))
        left = int(self.client.zcount(self.index_key, "-inf", "+inf"))
        return {"upgraded": upgraded, "stale_index_entries": stale, "index_left": left}

    @_translate_errors
    def probe(self, now):
        """PING, INFO and the pending count in one round trip (for /health)."""
        if isinstance(self.client, RedisCluster):
            # redis-py's cluster pipeline refuses PING and INFO: three calls, each routed (and
            # retried across a failover) by the cluster client.
            return self.ping(), self.info(), self.count(now)
        count_script = self.scripts["count"]
        pipe = self.client.pipeline(transaction=False)
        pipe.ping()
        pipe.info()
        # EVALSHA itself, not the Script object: a pipeline would first ask SCRIPT EXISTS.
        pipe.evalsha(count_script.sha, 2, self.count_key, self.index_key, now)
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
