"""The pending registration record, the outcome of a code check, and the store's one error.

The Redis layout of a record lives here alone (`to_mapping` / `from_mapping`, used by the Redis
store for saves, loads and the recovery merge). A record is one small hash that Redis keeps as a
compact listpack, so it is written tightly:

| field | holds | omitted when |
|---|---|---|
| `e` | email | never |
| `p`, `h` | argon2 hash, split at its last `$` (parameters and salt / digest) | `h`: short hash |
| `n` | name | empty |
| `l` | locale | `en` |
| `c` | code digest (HMAC-SHA256, base64url, 43 characters) | no code |
| `t` | link token digest (same form) | never |
| `b` | signing-up browser's digest | not a web signup |
| `i` | code issued at = updated at (milliseconds; every write sets both) | never |
| `k` | created at (ms) | equal to `i` |
| `u` | updated at (ms) | equal to `i` |
| `x` | expires at (whole seconds): names the record's count bucket | never |
| `a` | wrong codes against the current code | 0 |
| `w`, `z` | claim: op id and until when (seconds), while a verification promotes | no claim |

Integer-looking values (`i`, `k`, `x`, `a`) are stored by Redis as integers inside the listpack.
The address id is in the key name (`RedisStore.pending_key`), so it is not stored again.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

DEFAULT_LOCALE = "en"
# Redis keeps a hash as a listpack only while every value is at most 64 bytes
# (hash-max-listpack-value); an argon2 hash is about 97, so it is stored in two fields.
LISTPACK_VALUE_MAX = 64


def new_op_id() -> str:
    """A random id for one atomic step (a retried step with the same id is not applied twice)."""
    return os.urandom(16).hex()


class StoreUnavailable(Exception):
    """The backing store cannot be reached; every backend raises only this for outages."""


def to_ms(seconds: float) -> int:
    """A timestamp in whole milliseconds, as records store it."""
    return round(seconds * 1000)


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else value


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

    def to_mapping(self, expires_at: float | None = None) -> dict[str, str | int]:
        """The record's hash fields (see the module docstring); `expires_at` overrides its own."""
        issued = to_ms(self.code_issued_at)
        mapping: dict[str, str | int] = {
            "e": self.email, "i": issued,
            "x": int(self.expires_at if expires_at is None else expires_at)}
        head, _, tail = self.password_hash.rpartition("$")
        if len(self.password_hash) > LISTPACK_VALUE_MAX and head:
            mapping["p"], mapping["h"] = head, tail
        else:
            mapping["p"] = self.password_hash
        if self.code_digest:
            mapping["c"] = self.code_digest
        if self.token_digest:
            mapping["t"] = self.token_digest
        if self.browser_digest:
            mapping["b"] = self.browser_digest
        if self.name:
            mapping["n"] = self.name
        if self.locale != DEFAULT_LOCALE:
            mapping["l"] = self.locale
        if self.code_attempts:
            mapping["a"] = self.code_attempts
        created, updated = to_ms(self.created_at), to_ms(self.updated_at)
        if created != issued:
            mapping["k"] = created
        if updated != issued:
            mapping["u"] = updated
        return mapping

    @classmethod
    def from_mapping(cls, mapping, address_id: str = "") -> "PendingRegistration":
        """Rebuild from a hash (bytes or str keys and values), ignoring bookkeeping fields."""
        data = {_text(k): _text(v) for k, v in mapping.items()}
        issued = int(data["i"]) / 1000
        password_hash = data["p"]
        if "h" in data:
            password_hash = f"{password_hash}${data['h']}"
        return cls(
            email=data["e"], password_hash=password_hash, code_digest=data.get("c", ""),
            token_digest=data.get("t", ""), code_issued_at=issued,
            created_at=int(data["k"]) / 1000 if "k" in data else issued,
            updated_at=int(data["u"]) / 1000 if "u" in data else issued,
            expires_at=float(data["x"]), name=data.get("n", ""),
            locale=data.get("l", DEFAULT_LOCALE), code_attempts=int(data.get("a", 0)),
            address_id=address_id, browser_digest=data.get("b", ""))


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
