"""The pending registration record, the outcome of a code check, and the store's one error."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields


class StoreUnavailable(Exception):
    """The backing store cannot be reached; every backend raises only this for outages."""


@dataclass
class PendingRegistration:
    """A signup waiting for its address to be proven; codes and tokens only as digests."""

    email: str
    password_hash: str
    code_digest: str
    token_digest: str
    code_issued_at: float
    created_at: float
    updated_at: float
    expires_at: float
    name: str = ""
    locale: str = "en"
    code_attempts: int = 0
    address_id: str = ""

    NUMBERS = {"code_issued_at": float, "created_at": float, "updated_at": float,
               "expires_at": float, "code_attempts": int}

    def to_mapping(self) -> dict[str, str]:
        """Flatten into string fields for a Redis hash."""
        return {k: str(v) for k, v in asdict(self).items()}

    @classmethod
    def from_mapping(cls, mapping) -> "PendingRegistration":
        """Rebuild from a hash (bytes or str values), ignoring bookkeeping fields."""
        names = {f.name for f in fields(cls)}
        data = {}
        for key, value in mapping.items():
            key = key.decode() if isinstance(key, bytes) else key
            value = value.decode() if isinstance(value, bytes) else value
            if key in names:
                data[key] = cls.NUMBERS.get(key, str)(value)
        return cls(**data)


@dataclass
class CodeCheck:
    """What a code or link check found.

    status is one of: ok (claimed for promotion), wrong, unknown (no registration), expired,
    code_dead (per-code cap reached), locked (per-address cap reached), busy (being verified),
    verified (promoted and removed), unavailable (memory fallback cannot tell).
    """

    status: str
    registration: PendingRegistration | None = None
    attempts_left: int | None = None
    retry_after: int | None = None
    result: object = None


@dataclass
class ResendResult:
    """What a resend did: updated (new code stored), missing (no registration), or wait."""

    status: str
    retry_after: int = 0
    locale: str | None = None
