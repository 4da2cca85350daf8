"""The pending registration record, the outcome of a code check, and the store's one error."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields


HASH_TAIL = "password_hash_digest"


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
    # Digest of a random key kept in the signing-up browser's session: "the browser that
    # signed up" means this registration's browser, not any browser that once used the address.
    browser_digest: str = ""

    NUMBERS = {"code_issued_at": float, "created_at": float, "updated_at": float,
               "expires_at": float, "code_attempts": int}

    def to_mapping(self) -> dict[str, str]:
        """Flatten into string fields for a Redis hash.

        Redis keeps a small hash in a compact listpack only while every value is at most
        64 bytes (hash-max-listpack-value); an argon2 hash is about 97, which would turn the
        record into a hash table several times larger. So it is stored in two fields: the
        parameters and salt, and the digest.
        """
        mapping = {k: str(v) for k, v in asdict(self).items()}
        head, _, tail = self.password_hash.rpartition("$")
        if len(self.password_hash) > 64 and head:
            mapping["password_hash"], mapping[HASH_TAIL] = head, tail
        return mapping

    @classmethod
    def from_mapping(cls, mapping) -> "PendingRegistration":
        """Rebuild from a hash (bytes or str values), ignoring bookkeeping fields."""
        names = {f.name for f in fields(cls)}
        data, tail = {}, None
        for key, value in mapping.items():
            key = key.decode() if isinstance(key, bytes) else key
            value = value.decode() if isinstance(value, bytes) else value
            if key in names:
                data[key] = cls.NUMBERS.get(key, str)(value)
            elif key == HASH_TAIL:
                tail = value
        if tail is not None:
            data["password_hash"] = f"{data['password_hash']}${tail}"
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
    address_left: int | None = None  # wrong codes the address has left (refused checks)
    result: object = None


@dataclass
class ResendResult:
    """What a resend did: updated (new code stored), missing (no registration), or wait."""

    status: str
    retry_after: int = 0
    locale: str | None = None
