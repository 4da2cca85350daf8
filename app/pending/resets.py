"""Password resets and per-account sign-in failures, kept beside the pending registrations.

A reset is one small record per address, named (like a pending registration) by the keyed
digest of the address, never the address itself. Its code and link token are held only as
HMAC-SHA256 digests of their own purposes ("reset-code", "reset-token"), so a signup code or link
never matches a reset and the other way round. In Redis (`redis_resets.py`) every key of one
address carries the hash tag `{<id>}`, so each check-and-change is one script on one slot:

| key | holds |
|---|---|
| `<prefix>reset:{<id>}` | the record (fields below), TTL max(CODE_TTL_SECONDS, RESET_TTL_SECONDS) |
| `<prefix>reset-attempts:{<id>}` | wrong reset codes for the address (REGISTRATION_MAX_ATTEMPTS) |
| `<prefix>login-failures:{<id>}` | failed sign-ins (LOGIN_MAX_FAILURES per 15 minutes) |
| `<prefix>op:{<id>}:<op id>` | the answer of one step, so a retried step is not applied twice |

| field | holds |
|---|---|
| `e` | email |
| `c`, `t` | code digest, link token digest (base64url, 43 characters) |
| `i` | code issued at = record written at (milliseconds) |
| `x` | link valid until (whole seconds) |
| `a` | wrong codes against this code (absent: 0) |
| `w`, `z` | claim: op id and until when, while a password change is being committed |

The memory store of this module keeps the same things for the fallback of SPEC section 4; the
manager moves them into Redis when it recovers.
"""

from __future__ import annotations

import math
import threading
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, replace

from .memory import OP_MEMORY_SECONDS, MemoryStore, _Expiring
from .model import CodeCheck, to_ms

RESET_CODE = "reset-code"
RESET_TOKEN = "reset-token"


@dataclass
class PasswordReset:
    """A password reset waiting for its code or its link; both held only as digests."""

    email: str
    code_digest: str
    token_digest: str
    code_issued_at: float
    link_expires_at: float
    code_attempts: int = 0
    address_id: str = ""

    @property
    def updated_at(self) -> float:
        """When the record was written (every write issues a new code)."""
        return self.code_issued_at

    def link_alive(self, now: float) -> bool:
        """True while the emailed link may still be used."""
        return self.link_expires_at >= now

    def to_mapping(self) -> dict[str, str | int]:
        """The record's hash fields (see the module docstring)."""
        mapping: dict[str, str | int] = {
            "e": self.email, "c": self.code_digest, "t": self.token_digest,
            "i": to_ms(self.code_issued_at), "x": int(self.link_expires_at)}
        if self.code_attempts:
            mapping["a"] = self.code_attempts
        return mapping

    @classmethod
    def from_mapping(cls, mapping, address_id: str = "") -> "PasswordReset":
        """Rebuild from a hash (bytes or str keys and values), ignoring the claim fields."""
        data = {(k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes)
                                                              else str(v))
                for k, v in mapping.items()}
        return cls(email=data["e"], code_digest=data.get("c", ""),
                   token_digest=data.get("t", ""), code_issued_at=int(data["i"]) / 1000,
                   link_expires_at=float(data["x"]), code_attempts=int(data.get("a", 0)),
                   address_id=address_id)


@dataclass
class HeldInMemory:
    """What the memory store holds for one address, to be moved into Redis on recovery."""

    address_id: str
    reset: PasswordReset | None
    reset_ttl: float
    attempts: int
    attempts_ttl: float
    failures: int
    failures_ttl: float


class ResetStore(ABC):
    """Storage for password resets, their attempt counters and per-account sign-in failures.

    The method names and arguments of the code checks follow `PendingStore` (`check_code`,
    `claim_token`, `release`, `finish`), so the manager runs a reset through the same
    claim → change → finish sequence as a verification. Each method is one atomic step.
    """

    @abstractmethod
    def save(self, reset: PasswordReset, ttl: float) -> None:
        """Create or replace the address's reset (the old code and link stop working)."""

    @abstractmethod
    def exists(self, address_id: str) -> bool:
        """True when a live reset is stored under this id."""

    @abstractmethod
    def delete(self, address_id: str) -> bool:
        """Remove the address's reset, if any; true when one was removed."""

    @abstractmethod
    def load_by_token(self, address_id: str, digests: list[str],
                      now: float) -> PasswordReset | None:
        """The reset whose live link has one of these digests, without claiming it."""

    @abstractmethod
    def check_code(self, address_id: str, digests: list[str], *, now: float, code_ttl: int,
                   code_max: int, reg_max: int, window: int, claim_seconds: int,
                   op_id: str, count_unknown: bool = True) -> CodeCheck:
        """Check a reset code with the caps of a signup code; claim the reset when right."""

    @abstractmethod
    def claim_token(self, address_id: str, digests: list[str], *, now: float,
                    claim_seconds: int, op_id: str) -> CodeCheck:
        """Claim the reset a live link points at (ok, busy or unknown)."""

    @abstractmethod
    def release(self, address_id: str, op_id: str, *, count_wrong: bool, window: int) -> None:
        """Drop this op's claim (the password change failed); optionally count a wrong code."""

    @abstractmethod
    def finish(self, address_id: str, op_id: str) -> bool:
        """Delete the reset if this op holds the claim, and lift the sign-in throttle with it."""

    @abstractmethod
    def take_login_attempt(self, address_id: str, *, max_failures: int, window: int,
                           now: float, op_id: str) -> int:
        """Count a sign-in as failed until refunded: 0, or seconds to wait (cap reached)."""

    @abstractmethod
    def refund_login_attempt(self, address_id: str, op_id: str, now: float) -> None:
        """The sign-in taken by `op_id` did not fail: take it off the count (once)."""


def _count(table: _Expiring, key: str, now: float, window: float) -> int:
    """Add one to a counter that expires `window` seconds after its first count."""
    current = table.get_live(key, now)
    expires = table[key][1] if current else now + window
    table[key] = ((current or 0) + 1, expires)
    return (current or 0) + 1


def _seconds_left(table: _Expiring, key: str, now: float) -> int:
    """Whole seconds until an entry expires (at least 1)."""
    return max(1, math.ceil(table[key][1] - now))


class MemoryResets(ResetStore):
    """Resets and sign-in failures in this process's memory (development, tests, fallback)."""

    def __init__(self, clock=time.time):
        self.clock = clock
        self.lock = threading.RLock()
        self.records = _Expiring()
        self.claims: dict[str, tuple[str, float]] = {}
        self.attempts = _Expiring()
        self.failures = _Expiring()
        self.ops = _Expiring()

    def _remember(self, op_id: str, result, now: float):
        self.ops[op_id] = (result, now + OP_MEMORY_SECONDS)
        return result

    def _claimed_by_other(self, address_id: str, op_id: str, now: float) -> bool:
        claim = self.claims.get(address_id)
        return bool(claim) and claim[1] > now and claim[0] != op_id

    def save(self, reset, ttl):
        with self.lock:
            now = self.clock()
            self.records[reset.address_id] = (replace(reset), now + ttl)
            self.claims.pop(reset.address_id, None)
            self.cleanup(now)

    def exists(self, address_id):
        with self.lock:
            return self.records.get_live(address_id, self.clock()) is not None

    def delete(self, address_id):
        with self.lock:
            self.claims.pop(address_id, None)
            return self.records.pop(address_id, None) is not None

    def load_by_token(self, address_id, digests, now):
        with self.lock:
            reset = self.records.get_live(address_id, now)
            if reset is None or reset.token_digest not in digests or not reset.link_alive(now):
                return None
            return replace(reset)

    def check_code(self, address_id, digests, *, now, code_ttl, code_max, reg_max, window,
                   claim_seconds, op_id, count_unknown=True):
        with self.lock:
            previous = self.ops.get_live(op_id, now)
            if previous is not None:
                return previous
            used = self.attempts.get_live(address_id, now) or 0
            if used >= reg_max:
                return self._remember(op_id, CodeCheck(
                    "locked", retry_after=_seconds_left(self.attempts, address_id, now)), now)
            reset = self.records.get_live(address_id, now)
            if reset is None:
                if count_unknown:
                    used = _count(self.attempts, address_id, now, window)
                return self._remember(op_id, CodeCheck(
                    "unknown", address_left=max(0, reg_max - used)), now)
            if self._claimed_by_other(address_id, op_id, now):
                return self._remember(op_id, CodeCheck("busy"), now)
            if reset.code_attempts >= code_max or reset.code_issued_at + code_ttl < now:
                status = "code_dead" if reset.code_attempts >= code_max else "expired"
                used = _count(self.attempts, address_id, now, window)
                return self._remember(op_id, CodeCheck(
                    status, address_left=max(0, reg_max - used)), now)
            if reset.code_digest in digests:
                self.claims[address_id] = (op_id, now + claim_seconds)
                return self._remember(op_id, CodeCheck("ok", registration=replace(reset)), now)
            reset.code_attempts += 1
            used = _count(self.attempts, address_id, now, window)
            left = max(0, min(code_max - reset.code_attempts, reg_max - used))
            return self._remember(op_id, CodeCheck("wrong", attempts_left=left), now)

    def claim_token(self, address_id, digests, *, now, claim_seconds, op_id):
        with self.lock:
            previous = self.ops.get_live(op_id, now)
            if previous is not None:
                return previous
            reset = self.load_by_token(address_id, digests, now)
            if reset is None:
                return self._remember(op_id, CodeCheck("unknown"), now)
            if self._claimed_by_other(address_id, op_id, now):
                return self._remember(op_id, CodeCheck("busy"), now)
            self.claims[address_id] = (op_id, now + claim_seconds)
            return self._remember(op_id, CodeCheck("ok", registration=reset), now)

    def release(self, address_id, op_id, *, count_wrong, window):
        with self.lock:
            now = self.clock()
            if self.ops.get_live(op_id + ":release", now) is not None:
                return
            self._remember(op_id + ":release", True, now)
            if (self.claims.get(address_id) or (None,))[0] != op_id:
                return
            del self.claims[address_id]
            reset = self.records.get_live(address_id, now)
            if count_wrong and reset is not None:
                reset.code_attempts += 1
                _count(self.attempts, address_id, now, window)

    def finish(self, address_id, op_id):
        with self.lock:
            if (self.claims.get(address_id) or (None,))[0] != op_id:
                return False
            del self.claims[address_id]
            self.records.pop(address_id, None)
            self.failures.pop(address_id, None)
            return True

    def take_login_attempt(self, address_id, *, max_failures, window, now, op_id):
        with self.lock:
            previous = self.ops.get_live(op_id, now)
            if previous is not None:
                return previous
            if (self.failures.get_live(address_id, now) or 0) >= max_failures:
                return self._remember(op_id, _seconds_left(self.failures, address_id, now), now)
            _count(self.failures, address_id, now, window)
            self.cleanup(now)
            return self._remember(op_id, 0, now)

    def refund_login_attempt(self, address_id, op_id, now):
        with self.lock:
            if self.ops.get_live(op_id, now) != 0:
                return  # not taken (refused), or refunded already
            self._remember(op_id, "refunded", now)
            count = self.failures.get_live(address_id, now)
            if count and count > 1:
                self.failures[address_id] = (count - 1, self.failures[address_id][1])
            elif count:
                del self.failures[address_id]

    def cleanup(self, now: float | None = None) -> int:
        """Drop what has expired (only that: each table keeps a heap in expiry order)."""
        with self.lock:
            now = self.clock() if now is None else now
            removed = self.records.sweep(now)
            for table in (self.attempts, self.failures, self.ops):
                table.sweep(now)
            for reset in removed:
                self.claims.pop(reset.address_id, None)
            return len(removed)

    def export(self) -> list[HeldInMemory]:
        """Every address with a live reset or counter, with what is left of their lifetimes."""
        with self.lock:
            now = self.clock()
            self.cleanup(now)
            rows = []
            for address_id in set(self.records) | set(self.attempts) | set(self.failures):
                reset, attempts, failures = (
                    table.get(address_id) for table in (self.records, self.attempts,
                                                        self.failures))
                rows.append(HeldInMemory(
                    address_id, replace(reset[0]) if reset else None,
                    reset[1] - now if reset else 0, attempts[0] if attempts else 0,
                    attempts[1] - now if attempts else 0, failures[0] if failures else 0,
                    failures[1] - now if failures else 0))
            return rows

    def discard(self, held: HeldInMemory) -> None:
        """Forget what was moved, unless the reset was replaced since it was exported."""
        with self.lock:
            item = self.records.get(held.address_id)
            if item is not None and held.reset is not None and \
                    item[0].updated_at > held.reset.updated_at:
                return
            for table in (self.records, self.attempts, self.failures):
                table.pop(held.address_id, None)
            self.claims.pop(held.address_id, None)


def resets_for(store, clock=time.time) -> ResetStore | None:
    """The reset store that goes with a pending store: the same Redis, or memory."""
    if store is None:
        return None
    if isinstance(store, MemoryStore):
        return MemoryResets(clock=clock)
    from .redis_resets import RedisResets

    return RedisResets(store)
