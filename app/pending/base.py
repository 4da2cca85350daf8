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
        the same step: returns 0 (stored), or the seconds to wait before one may be sent, and
        then nothing is stored (a pending record, its code and link stay as they were). An
        allowed email also starts the stand-in code count (see check_code) again.
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
    def load_by_token(self, address_id: str,
                      digests: list[str]) -> PendingRegistration | None:
        """The record a link token points at, without claiming it.

        `address_id` is the id the token carries, `digests` the token's digests under every
        key (one of them must be the record's token digest).
        """

    @abstractmethod
    def delete(self, address_id: str) -> bool:
        """Remove the record; true when something was removed."""

    @abstractmethod
    def check_code(self, address_id: str, digests: list[str], *, now: float, code_ttl: int,
                   code_max: int, reg_max: int, window: int, claim_seconds: int,
                   op_id: str, count_unknown: bool = True) -> CodeCheck:
        """Check a code: count a refused one, enforce the caps, claim the record when right.

        Every refused code (wrong, expired, against a dead code, or for an address with no
        record) counts on the code and on the address, and the answer carries the attempts
        left (`attempts_left`; none for a dead code). With no record, the per-code count is a
        stand-in kept per address, started again by every email the allowance lets out, so
        the numbers read the same whatever the address's state. `count_unknown=False` (while
        the store cannot be sure it holds every registration) counts nothing when there is
        no record.
        """

    @abstractmethod
    def claim_token(self, address_id: str, digests: list[str], *, now: float,
                    claim_seconds: int, op_id: str, reg_max: int | None = None) -> CodeCheck:
        """Claim the record a link token points at (ok, busy or unknown); see load_by_token.

        With `reg_max` (the claim is for a password check) it is refused ("locked", with
        retry_after) once the address's attempts counter has reached it.
        """

    @abstractmethod
    def release(self, address_id: str, op_id: str, *, count_wrong: bool, window: int,
                code_max: int = 0, reg_max: int = 0) -> int | None:
        """Drop this op's claim (promotion failed); optionally count a wrong attempt.

        A counted attempt counts on the code and the address, as a wrong code does; the
        answer is then the attempts left (min of both caps' remainders), else None.
        """

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
        """Take an email from the allowance, then (if allowed) replace_code: one step.

        Allowed, it also starts the stand-in code count (check_code) again, found a record or
        not, as a new code starts with no wrong tries.
        """

    @abstractmethod
    def reserve_email(self, address_id: str, *, cooldown: int, per_hour: int,
                      now: float, op_id: str | None = None) -> int:
        """Take one email from the address's allowance: 0 if allowed, else seconds to wait.

        Allowed, it also starts the stand-in code count (check_code) again: it stands for the
        signup of an address with an account, which answers as one issuing a new code.
        """

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
