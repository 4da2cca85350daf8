"""Codes, link tokens, keyed digests, password hashing and password rules."""

from __future__ import annotations

import base64
import gzip
import hashlib
import hmac
import re
import secrets
import unicodedata
from functools import lru_cache
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

CODE_DIGITS = 6
TOKEN_BYTES = 32  # 256 bits of randomness, well above the 128 the spec asks for
ADDRESS_ID_LENGTH = 32  # hex characters of an address id (the key name of its record)
# A link token is "<address id>-<secret>": the id says which record to load (one Redis read, no
# lookup key), the secret is what proves the link was emailed. The id is itself a keyed digest,
# so it tells nothing about the address.
LINK_TOKEN = re.compile(r"([0-9a-f]{32})-[A-Za-z0-9_\-]{43}")
ADDRESS_ID = re.compile(r"[0-9a-f]{32}")
COMMON_PASSWORDS_FILE = Path(__file__).parent / "data" / "common-passwords.txt.gz"
# Spaces and dashes people type while copying "123 456" or "123-456".
CODE_SEPARATORS = re.compile(r"[ \-]")
ASCII_CODE = re.compile(r"^[0-9]{6}$")
# Unicode category Cc: U+0000-U+001F and U+007F-U+009F. The stability policy fixes this set
# for good, and a character class stays fast on a 70 000-character field that
# `unicodedata.category()` per character would not.
CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def new_code() -> str:
    """A uniformly random 6-digit code from the OS's CSPRNG."""
    return f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"


def new_link_token(address_id: str) -> str:
    """A URL-safe link token for the record stored under `address_id` (256 random bits)."""
    if not ADDRESS_ID.fullmatch(address_id):
        raise ValueError("a link token carries the 32-character id of its registration")
    return f"{address_id}-{secrets.token_urlsafe(TOKEN_BYTES)}"


def link_token_address_id(token: str) -> str | None:
    """The address id a link token carries, or None for anything that is not a link token."""
    match = LINK_TOKEN.fullmatch(token) if isinstance(token, str) else None
    return match.group(1) if match else None


def digest_text(mac: bytes) -> str:
    """How a stored digest is written: base64url without padding (43 characters for 32 bytes)."""
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode("ascii")


def normalise_code(raw: str) -> str | None:
    """Strip spaces and dashes; return the code if it is exactly 6 ASCII digits, else None."""
    if not isinstance(raw, str):
        return None
    candidate = CODE_SEPARATORS.sub("", raw.strip())
    # str.isdigit() accepts full-width and other Unicode digits; the regex only ASCII ones.
    return candidate if ASCII_CODE.match(candidate) else None


class Digester:
    """HMAC-SHA256 digests keyed by the app's secret (and its fallbacks, for key rotation).

    Digests are the full 256-bit HMAC, written as base64url (`digest_text`); address ids are
    the first 32 hex characters of theirs, as they always were (records are named by them and
    code digests are bound to them, so they must not change across versions).
    """

    def __init__(self, secret: str, fallbacks=()):
        self.keys = [self._derive(secret)] + [self._derive(k) for k in fallbacks]
        # HMAC objects keyed once: copying one costs less than keying a new one per digest.
        self._keyed = [hmac.new(key, digestmod=hashlib.sha256) for key in self.keys]
        # A request works out an address's ids more than once (accounts, then the manager).
        self._address_ids = lru_cache(maxsize=1024)(self._compute_address_ids)

    @staticmethod
    def _derive(secret: str) -> bytes:
        # A dedicated sub-key, so these digests never equal anything Flask signs with the secret.
        return hmac.new(secret.encode(), b"signup-digest-v1", hashlib.sha256).digest()

    @staticmethod
    def _mac(keyed, purpose: str, value: str) -> bytes:
        mac = keyed.copy()
        mac.update(f"{purpose}\x00{value}".encode())
        return mac.digest()

    def _compute_address_ids(self, email: str) -> tuple[str, ...]:
        return tuple(self._mac(k, "address", email).hex()[:ADDRESS_ID_LENGTH]
                     for k in self._keyed)

    def address_id(self, email: str) -> str:
        """The key-name id of a normalised address (addresses never appear in key names)."""
        return self._address_ids(email)[0]

    def address_ids(self, email: str) -> list[str]:
        """The address's id under every key; the first is the one new records use."""
        return list(self._address_ids(email))

    def code_digest(self, address_id: str, code: str) -> str:
        """The digest to store for a newly issued code (current key only)."""
        return digest_text(self._mac(self._keyed[0], "code:" + address_id, code))

    def code_digests(self, address_id: str, code: str, purpose: str = "code") -> list[str]:
        """Digests of a code under every key; the first is the one to store.

        `purpose` keeps codes of different kinds apart ("code" for signups, "reset-code" for
        password resets): a digest of one kind never matches a record of another.
        """
        return [digest_text(self._mac(k, f"{purpose}:{address_id}", code)) for k in self._keyed]

    def browser_digests(self, browser_key: str) -> list[str]:
        """Digests of a signing-up browser's key under every key; the first is stored."""
        return [digest_text(self._mac(k, "browser", browser_key)) for k in self._keyed]

    def token_digest(self, token: str) -> str:
        """The digest to store for a newly issued link token (current key only)."""
        return digest_text(self._mac(self._keyed[0], "token", token))

    def token_digests(self, token: str, purpose: str = "token") -> list[str]:
        """Digests of a link token under every key; the first is the one to store.

        `purpose` as for `code_digests` ("token" for signups, "reset-token" for resets).
        """
        return [digest_text(self._mac(k, purpose, token)) for k in self._keyed]


class Passwords:
    """argon2id hashing with the configured cost, and the signup password rules."""

    def __init__(self, time_cost=3, memory_cost=65536, parallelism=4, min_length=8):
        self.hasher = PasswordHasher(
            time_cost=time_cost, memory_cost=memory_cost, parallelism=parallelism
        )
        self.min_length = min_length
        # Verifying against this keeps "no such user" as slow as a wrong password.
        self.dummy_hash = self.hasher.hash(secrets.token_urlsafe(16))

    def hash(self, password: str) -> str:
        """Hash a password with argon2id."""
        return self.hasher.hash(password)

    def verify(self, password_hash: str | None, password: str) -> bool:
        """True when `password` matches; spends the same time when there is no hash."""
        try:
            return self.hasher.verify(password_hash or self.dummy_hash, password) and bool(
                password_hash
            )
        except (VerificationError, InvalidHashError):
            return False

    def problems(self, password: str, email: str = "") -> list[str]:
        """Reasons the password is refused at signup (empty when it is acceptable)."""
        if len(password) < self.min_length:
            return [f"Use at least {self.min_length} characters."]
        if len(password) > 128:
            return ["Use at most 128 characters."]
        lowered = password.lower()
        local = email.split("@", 1)[0].lower() if email else ""
        if email and lowered in (email.lower(), local):
            return ["Don't use your email address as your password."]
        if lowered in common_passwords():
            return ["This password is too common: it is on lists that attackers try first."]
        return []


@lru_cache(maxsize=1)
def common_passwords() -> frozenset[str]:
    """The bundled list of common passwords (Django's, from Royce Williams' list; see NOTICE)."""
    with gzip.open(COMMON_PASSWORDS_FILE, "rt", encoding="utf-8") as handle:
        return frozenset(line.strip().lower() for line in handle if line.strip())


def has_forbidden_characters(text: str) -> bool:
    """True when text holds control, format or line/paragraph separator characters."""
    return any(unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp", "Cs") for ch in text)


def has_control_characters(text: str) -> bool:
    """True when text holds a control character (category Cc: NUL, tab, CR/LF, DEL, C1)."""
    return CONTROL_CHARACTERS.search(text) is not None


def mask_email(email: str) -> str:
    """Show enough of an address to recognise it: `al***@example.com`."""
    local, _, domain = email.partition("@")
    visible = local[:2] if len(local) > 3 else local[:1]
    return f"{visible}{'*' * 3}@{domain}"
