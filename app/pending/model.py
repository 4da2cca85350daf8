"""The pending registration record, the outcome of a code check, and the store's one error.

The Redis wire format of these records (field names, encoding) lives beside the Redis store,
in `redis_format.py`; the memory store keeps the dataclasses themselves.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

DEFAULT_LOCALE = "en"


def new_op_id() -> str:
    """A random id for one atomic step (a retried step with the same id is not applied twice)."""
    return os.urandom(16).hex()


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
    locale: str = DEFAULT_LOCALE
    code_attempts: int = 0
    address_id: str = ""
    # Digest of a random key kept in the signing-up browser's session: "the browser that
    # signed up" means this registration's browser, not any browser that once used the address.
    browser_digest: str = ""


@dataclass
class CodeCheck:
    """What a code or link check found.

    status is one of: ok (claimed for promotion), wrong, unknown (no registration), expired,
    code_dead (per-code cap reached), locked (per-address cap reached), busy (being verified),
    wrong_password (a right code or link whose completion check failed), verified (promoted
    and removed), unavailable (memory fallback cannot tell). `attempts_left` comes with every
    counted refusal (wrong, unknown, expired, wrong_password): the tries left before the code
    dies or the address locks, whichever comes first.
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
