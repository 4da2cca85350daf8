"""Password resets and per-account sign-in failures, kept beside the pending registrations.

A reset is one small record per address, named (like a pending registration) by the keyed
digest of the address, never the address itself. Its code and link token are held only as
HMAC-SHA256 digests of their own purposes ("reset-code", "reset-token"), so a signup code or link
never matches a reset and the other way round. In Redis (`redis_resets.py`: the keys;
`redis_format.py`: the fields) every key of one address carries the hash tag of its shard, as
the pending store's keys do, so each check-and-change is one script on one slot.

The memory store of this module keeps the same things for the fallback of SPEC section 4; the
manager moves them into Redis when it recovers.
"""

from __future__ import annotations

import math
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, replace

from .base import PendingStore
from .memory import MemoryStore, _Expiring

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
    expires_at: float = 0.0  # when the record goes (its TTL), not stored in the hash

    @property
    def updated_at(self) -> float:
        """When the record was written (every write issues a new code)."""
        return self.code_issued_at

    def link_alive(self, now: float) -> bool:
        """True while the emailed link may still be used."""
        return self.link_expires_at >= now


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

    `check_code`, `claim_token`, `release` and `finish` are `PendingStore`'s steps (the same
    arguments and answers), on reset records, so the manager runs a reset through the same
    claim → change → finish sequence as a verification; `finish` also lifts the address's
    sign-in throttle, and a link is only found while it is live. Each method is one atomic step.
    """

    check_code = PendingStore.check_code
    claim_token = PendingStore.claim_token
    release = PendingStore.release
    finish = PendingStore.finish
    exists = PendingStore.exists

    @abstractmethod
    def save(self, reset: PasswordReset, ttl: float) -> None:
        """Create or replace the address's reset (the old code and link stop working)."""

    @abstractmethod
    def delete(self, address_id: str) -> bool:
        """Remove the address's reset, if any; true when one was removed."""

    @abstractmethod
    def load_by_token(self, address_id: str, digests: list[str],
                      now: float) -> PasswordReset | None:
        """The reset whose live link has one of these digests, without claiming it."""

    @abstractmethod
    def take_login_attempt(self, address_id: str, *, max_failures: int, window: int,
                           now: float, op_id: str) -> int:
        """Count a sign-in as failed until refunded: 0, or seconds to wait (cap reached)."""

    @abstractmethod
    def refund_login_attempt(self, address_id: str, op_id: str, now: float) -> None:
        """The sign-in taken by `op_id` did not fail: take it off the count (once)."""


class MemoryResets(MemoryStore, ResetStore):
    """Resets and sign-in failures in this process's memory (development, tests, fallback).

    The memory pending store's own steps (save, check, claim, release, finish, delete) serve
    on reset records, which carry the same field names; its `attempts` table counts wrong
    reset codes. Added here: links that expire before the record, and sign-in failures.
    """

    def __init__(self, clock=time.time):
        super().__init__(clock=clock)
        self.failures = _Expiring()

    def _by_token(self, address_id, digests, now):
        reset = super()._by_token(address_id, digests, now)
        return reset if reset is not None and reset.link_alive(now) else None

    def save(self, reset, ttl, allowance=None, op_id=None):
        with self.lock:
            self.cleanup()  # this store is not counted by /health: sweep as it is written
            self.code_attempts.pop(reset.address_id, None)  # a new code: its count starts
            return super().save(reset, ttl, allowance, op_id)

    def delete(self, address_id):
        with self.lock:
            self.code_attempts.pop(address_id, None)  # as a new reset would (reset_check.lua)
            return super().delete(address_id)

    def load_by_token(self, address_id, digests, now=None):
        with self.lock:
            reset = self._by_token(address_id, digests, self.clock() if now is None else now)
            return replace(reset) if reset is not None else None

    def finish(self, address_id, op_id):
        with self.lock:
            finished = super().finish(address_id, op_id)
            if finished:
                self.failures.pop(address_id, None)
            return finished

    def take_login_attempt(self, address_id, *, max_failures, window, now, op_id):
        with self.lock:
            previous = self.ops.get_live(op_id, now)
            if previous is not None:
                return previous
            failures = self.failures.get_live(address_id, now) or 0
            if failures >= max_failures:
                wait = max(1, math.ceil(self.failures[address_id][1] - now))
                return self._remember(op_id, wait, now)
            expires = self.failures[address_id][1] if failures else now + window
            self.failures[address_id] = (failures + 1, expires)
            return self._remember(op_id, 0, now)

    def refund_login_attempt(self, address_id, op_id, now):
        with self.lock:
            if self.ops.get_live(op_id, now) != 0:
                return  # not taken (refused), or refunded already
            self._remember(op_id, "refunded", now)
            failures = self.failures.get_live(address_id, now)
            if failures and failures > 1:
                self.failures[address_id] = (failures - 1, self.failures[address_id][1])
            elif failures:
                del self.failures[address_id]

    def cleanup(self, now=None):
        with self.lock:
            now = self.clock() if now is None else now
            self.failures.sweep(now)
            return super().cleanup(now)

    def export_held(self) -> list[HeldInMemory]:
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

    def discard_held(self, held: HeldInMemory) -> None:
        """Forget what was moved, unless the reset was replaced since it was exported."""
        with self.lock:
            item = self.records.get(held.address_id)
            if (item is not None and held.reset is not None
                    and item[0].updated_at > held.reset.updated_at):
                return
            for table in (self.records, self.attempts, self.failures):
                table.pop(held.address_id, None)


def resets_for(store, clock=time.time) -> ResetStore | None:
    """The reset store that goes with a pending store: the same Redis, or memory."""
    if store is None:
        return None
    if isinstance(store, MemoryStore):
        return MemoryResets(clock=clock)
    from .redis_resets import RedisResets

    return RedisResets(store)
