"""The interface every pending-registration backend implements.

Each method is one atomic step. `op_id` makes a step safe to send twice: a backend that sees the
same op_id again answers what it answered the first time instead of acting again.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

from .model import CodeCheck, PendingRegistration, ResendResult


class PendingStore(ABC):
    """Storage for pending registrations, attempt counters and email allowances."""

    name = "abstract"

    @abstractmethod
    def save(self, reg: PendingRegistration, ttl: int, allowance: tuple[int, int] | None = None,
             op_id: str | None = None) -> int:
        """Create or replace the record for reg.address_id; the old link token stops working.

        With `allowance` (cooldown, per_hour) an email is taken from the address's allowance in
        the same step: returns 0, or the seconds to wait before one may be sent.
        """

    @abstractmethod
    def merge(self, reg: PendingRegistration, ttl: float, attempts: int,
              attempts_ttl: float) -> bool:
        """Recovery: store reg unless a record updated later is there; keep the larger counter."""

    @abstractmethod
    def load(self, address_id: str) -> PendingRegistration | None:
        """The record, or None when there is none (or it has expired)."""

    @abstractmethod
    def exists(self, address_id: str) -> bool:
        """True when a live record is stored under this id."""

    @abstractmethod
    def load_by_token(self, address_id: str | None,
                      digests: list[str]) -> PendingRegistration | None:
        """The record a link token points at, without claiming it.

        `address_id` is the id the token carries; None for a token of the earlier format,
        whose `digests` (hex) name lookup keys that only the Redis store may still hold.
        """

    @abstractmethod
    def delete(self, address_id: str) -> bool:
        """Remove the record; true when something was removed."""

    @abstractmethod
    def check_code(self, address_id: str, digests: list[str], *, now: float, code_ttl: int,
                   code_max: int, reg_max: int, window: int, claim_seconds: int,
                   op_id: str, count_unknown: bool = True) -> CodeCheck:
        """Check a code: count a wrong one, enforce the caps, claim the record when right.

        `count_unknown=False` (while the store cannot be sure it holds every registration)
        leaves the counter alone when there is no record.
        """

    @abstractmethod
    def claim_token(self, address_id: str | None, digests: list[str], *, now: float,
                    claim_seconds: int, op_id: str) -> CodeCheck:
        """Claim the record a link token points at (ok, busy or unknown); see load_by_token."""

    @abstractmethod
    def release(self, address_id: str, op_id: str, *, count_wrong: bool, window: int) -> None:
        """Drop this op's claim (promotion failed); optionally count a wrong attempt."""

    @abstractmethod
    def finish(self, address_id: str, op_id: str) -> bool:
        """Delete the record if this op still holds the claim."""

    @abstractmethod
    def replace_code(self, address_id: str, code_digest: str, token_digest: str, *,
                     now: float, ttl: int, op_id: str) -> bool:
        """Resend: new code and token, TTL reset, per-address counter kept."""

    @abstractmethod
    def resend(self, address_id: str, code_digest: str, token_digest: str, *, now: float,
               ttl: int, op_id: str, cooldown: int, per_hour: int) -> ResendResult:
        """Take an email from the allowance, then (if allowed) replace_code: one step."""

    @abstractmethod
    def reserve_email(self, address_id: str, *, cooldown: int, per_hour: int,
                      now: float, op_id: str | None = None) -> int:
        """Take one email from the address's allowance: 0 if allowed, else seconds to wait."""

    @abstractmethod
    def count(self, now: float) -> int:
        """Number of live pending registrations, in time independent of that number."""

    @abstractmethod
    def cleanup(self, now: float) -> int:
        """Remove expired records and leftover bookkeeping; how many were removed."""

    @abstractmethod
    def ping(self) -> float:
        """Round-trip latency in milliseconds (raises StoreUnavailable)."""

    def info(self) -> dict:
        """Server facts for /health (empty for stores without a server)."""
        return {}

    def probe(self, now: float) -> tuple[float, dict, int]:
        """Latency, server facts and pending count for /health (one round trip where possible)."""
        return self.ping(), self.info(), self.count(now)

    def load_scripts(self) -> None:
        """Prepare server-side scripts (nothing to do for stores without a server)."""

    def needs_migration(self) -> bool:
        """True when records of an earlier stored layout may be left to upgrade."""
        return False

    def migrate(self) -> dict:
        """Upgrade records of an earlier stored layout; how many, and what was left over."""
        return {"upgraded": 0, "stale_index_entries": 0, "index_left": 0}
