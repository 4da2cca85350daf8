"""Password resets and sign-in failures in the Redis of the pending registrations.

Keys follow the pending store's layout (`RedisStore.key`: every key of one address under the
hash tag of its shard, `{s}`, the first character of the id), and every script receives every
key it touches in KEYS, so each step runs on one Redis Cluster slot:

| key | holds |
|---|---|
| `<prefix>reset:{s}:<id>` | the record (fields: `redis_format.py`), TTL max(CODE_TTL_SECONDS, RESET_TTL_SECONDS) |
| `<prefix>reset-attempts:{s}:<id>` | wrong reset codes for the address (REGISTRATION_MAX_ATTEMPTS) |
| `<prefix>reset-code-attempts:{s}:<id>` | wrong codes against an address with no reset (CODE_MAX_ATTEMPTS) |
| `<prefix>login-failures:{s}:<id>` | failed sign-ins (LOGIN_MAX_FAILURES per 15 minutes) |
| `<prefix>op:{s}:<op id>` | the answer of one step, so a retried step is not applied twice |
"""

from __future__ import annotations

import hmac
import json

from .redis_format import reset_fields, reset_from_fields, to_ms
from .redis_store import SCRIPTS_DIR, RedisStore, _translate_errors
from .resets import HeldInMemory, ResetStore

SCRIPTS = ("reset_check", "reset_claim", "reset_finish", "release", "login_attempt",
           "reset_merge")


class RedisResets(ResetStore):
    """Resets beside a RedisStore: the same client, connection pool and key prefix."""

    name = "redis"

    def __init__(self, store: RedisStore):
        self.client = store.client
        self.store = store
        # redis-py's Script sends EVALSHA and loads the script when Redis does not know it
        # (first use, or a restarted Redis).
        self.scripts = {name: self.client.register_script(
            (SCRIPTS_DIR / f"{name}.lua").read_text()) for name in SCRIPTS}

    def key_names(self, address_id: str) -> tuple[str, str, str]:
        """The reset hash, its per-address attempts counter and the sign-in failures counter."""
        return (self.store.key("reset", address_id), self.store.key("reset-attempts", address_id),
                self.store.key("login-failures", address_id))

    def stand_in_key(self, address_id: str) -> str:
        """Wrong codes tried against an address with no reset (see reset_check.lua)."""
        return self.store.key("reset-code-attempts", address_id)

    def op_key(self, address_id: str, op_id: str) -> str:
        """Where one step keeps its answer (in the address's hash slot)."""
        return self.store.op_key(address_id, op_id)

    def _run(self, name: str, keys: list, args: list):
        return self.scripts[name](keys=keys, args=args)

    @_translate_errors
    def save(self, reset, ttl):
        key = self.key_names(reset.address_id)[0]
        # MULTI/EXEC: the old record (its code, link, attempts and claim) goes in the same step.
        pipe = self.client.pipeline(transaction=True)
        pipe.delete(key, self.stand_in_key(reset.address_id))
        pipe.hset(key, mapping=reset_fields(reset))
        pipe.pexpire(key, int(ttl * 1000))
        pipe.execute()

    @_translate_errors
    def exists(self, address_id):
        return bool(self.client.exists(self.key_names(address_id)[0]))

    @_translate_errors
    def delete(self, address_id):
        # One DEL of keys in one slot: the reset and the stand-in count of a missing one.
        pipe = self.client.pipeline(transaction=True)
        pipe.delete(self.key_names(address_id)[0])
        pipe.delete(self.stand_in_key(address_id))
        return bool(pipe.execute()[0])

    @_translate_errors
    def load_by_token(self, address_id, digests, now):
        mapping = self.client.hgetall(self.key_names(address_id)[0])
        stored = mapping.get(b"t")
        if not stored or not any(hmac.compare_digest(stored, d.encode()) for d in digests):
            return None
        reset = reset_from_fields(mapping, address_id)
        return reset if reset.link_alive(now) else None

    @_translate_errors
    def check_code(self, address_id, digests, *, now, code_ttl, code_max, reg_max, window,
                   claim_seconds, op_id, count_unknown=True):
        reset_key, attempts_key, _ = self.key_names(address_id)
        caps = f"{code_ttl} {code_max} {reg_max} {window} {claim_seconds} {int(count_unknown)}"
        raw = self._run("reset_check", [reset_key, attempts_key, self.op_key(address_id, op_id),
                                        self.stand_in_key(address_id)],
                        [address_id, now, caps, op_id, *digests])
        return RedisStore._decode(raw, reset_from_fields)

    @_translate_errors
    def claim_token(self, address_id, digests, *, now, claim_seconds, op_id):
        raw = self._run("reset_claim", [self.key_names(address_id)[0],
                                         self.op_key(address_id, op_id)],
                        [address_id, now, claim_seconds, op_id, *digests])
        return RedisStore._decode(raw, reset_from_fields)

    @_translate_errors
    def release(self, address_id, op_id, *, count_wrong, window, code_max=0, reg_max=0):
        reset_key, attempts_key, _ = self.key_names(address_id)
        # release.lua is the pending store's own: the claim and counter fields are the same.
        left = int(self._run("release", [reset_key, attempts_key,
                                         self.op_key(address_id, op_id + ":release")],
                             [op_id, 1 if count_wrong else 0, window, code_max, reg_max]))
        return None if left < 0 else left

    @_translate_errors
    def finish(self, address_id, op_id):
        reset_key, _, failures_key = self.key_names(address_id)
        return bool(self._run("reset_finish", [reset_key, failures_key], [op_id]))

    @_translate_errors
    def take_login_attempt(self, address_id, *, max_failures, window, now, op_id):
        return int(self._run("login_attempt", [self.key_names(address_id)[2],
                                               self.op_key(address_id, op_id)],
                             ["take", max_failures, window]))

    @_translate_errors
    def refund_login_attempt(self, address_id, op_id, now):
        self._run("login_attempt", [self.key_names(address_id)[2], self.op_key(address_id, op_id)],
                  ["refund", 0, 0])

    @_translate_errors
    def merge(self, held: HeldInMemory) -> bool:
        """Recovery: store what memory held for one address (see reset_merge.lua)."""
        fields = []
        if held.reset is not None:
            fields = [str(item) for pair in reset_fields(held.reset).items() for item in pair]
        issued = to_ms(held.reset.code_issued_at) if held.reset is not None else 0
        return bool(self._run("reset_merge", list(self.key_names(held.address_id)), [
            max(1, int(held.reset_ttl * 1000)), issued, held.attempts,
            max(1, int(held.attempts_ttl)), held.failures, max(1, int(held.failures_ttl)),
            json.dumps(fields)]))

