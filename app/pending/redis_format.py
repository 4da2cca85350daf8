"""The Redis wire format of the records: a pending registration's hash and a reset's hash.

This module is the one place that maps a record to its hash fields and back; the Redis stores
(`redis_store.py`, `redis_resets.py`) use it for saves, loads, script answers and the recovery
merge. The memory store keeps the dataclasses themselves and never sees these fields.

**A pending registration** is one small hash that Redis keeps as a compact listpack, so it is
written tightly:

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

**A password reset** (its keys: `redis_resets.py`):

| field | holds |
|---|---|
| `e` | email |
| `c`, `t` | code digest, link token digest (base64url, 43 characters) |
| `i` | code issued at = record written at (milliseconds) |
| `x` | link valid until (whole seconds) |
| `a` | wrong codes against this code (absent: 0) |
| `w`, `z` | claim: op id and until when, while a password change is being committed |

The claim fields `w`, `z` are written and read by the Lua scripts alone; decoding ignores them.
"""

from __future__ import annotations

from .model import DEFAULT_LOCALE, PendingRegistration
from .resets import PasswordReset

# Redis keeps a hash as a listpack only while every value is at most 64 bytes
# (hash-max-listpack-value); an argon2 hash is about 97, so it is stored in two fields.
LISTPACK_VALUE_MAX = 64


def to_ms(seconds: float) -> int:
    """A timestamp in whole milliseconds, as records store it."""
    return round(seconds * 1000)


def _texts(mapping) -> dict[str, str]:
    """A hash as Redis answers it (bytes) or as a script returns it (str, int), as text."""
    return {(k.decode() if isinstance(k, bytes) else k):
            (v.decode() if isinstance(v, bytes) else str(v)) for k, v in mapping.items()}


def registration_fields(reg: PendingRegistration,
                        expires_at: float | None = None) -> dict[str, str | int]:
    """The registration's hash fields (see the module docstring); `expires_at` overrides its
    own."""
    issued = to_ms(reg.code_issued_at)
    mapping: dict[str, str | int] = {
        "e": reg.email, "i": issued,
        "x": int(reg.expires_at if expires_at is None else expires_at)}
    head, _, tail = reg.password_hash.rpartition("$")
    if len(reg.password_hash) > LISTPACK_VALUE_MAX and head:
        mapping["p"], mapping["h"] = head, tail
    else:
        mapping["p"] = reg.password_hash
    if reg.code_digest:
        mapping["c"] = reg.code_digest
    if reg.token_digest:
        mapping["t"] = reg.token_digest
    if reg.browser_digest:
        mapping["b"] = reg.browser_digest
    if reg.name:
        mapping["n"] = reg.name
    if reg.locale != DEFAULT_LOCALE:
        mapping["l"] = reg.locale
    if reg.code_attempts:
        mapping["a"] = reg.code_attempts
    created, updated = to_ms(reg.created_at), to_ms(reg.updated_at)
    if created != issued:
        mapping["k"] = created
    if updated != issued:
        mapping["u"] = updated
    return mapping


def registration_from_fields(mapping, address_id: str = "") -> PendingRegistration:
    """Rebuild a registration from its hash (bytes or str keys and values), ignoring
    bookkeeping fields."""
    data = _texts(mapping)
    issued = int(data["i"]) / 1000
    password_hash = data["p"]
    if "h" in data:
        password_hash = f"{password_hash}${data['h']}"
    return PendingRegistration(
        email=data["e"], password_hash=password_hash, code_digest=data.get("c", ""),
        token_digest=data.get("t", ""), code_issued_at=issued,
        created_at=int(data["k"]) / 1000 if "k" in data else issued,
        updated_at=int(data["u"]) / 1000 if "u" in data else issued,
        expires_at=float(data["x"]), name=data.get("n", ""),
        locale=data.get("l", DEFAULT_LOCALE), code_attempts=int(data.get("a", 0)),
        address_id=address_id, browser_digest=data.get("b", ""))


def reset_fields(reset: PasswordReset) -> dict[str, str | int]:
    """The reset's hash fields (see the module docstring)."""
    mapping: dict[str, str | int] = {
        "e": reset.email, "c": reset.code_digest, "t": reset.token_digest,
        "i": to_ms(reset.code_issued_at), "x": int(reset.link_expires_at)}
    if reset.code_attempts:
        mapping["a"] = reset.code_attempts
    return mapping


def reset_from_fields(mapping, address_id: str = "") -> PasswordReset:
    """Rebuild a reset from its hash (bytes or str keys and values), ignoring the claim
    fields."""
    data = _texts(mapping)
    return PasswordReset(email=data["e"], code_digest=data.get("c", ""),
                         token_digest=data.get("t", ""), code_issued_at=int(data["i"]) / 1000,
                         link_expires_at=float(data["x"]), code_attempts=int(data.get("a", 0)),
                         address_id=address_id)
