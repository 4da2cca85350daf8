"""PendingRegistrationManager: the one way the web layer touches pending registrations."""

from __future__ import annotations

import hmac
import logging
import time
from dataclasses import dataclass

from ..security import Digester, link_token_address_id
from .base import PendingStore
from .fallback import Fallback
from .model import CodeCheck, PendingRegistration, ResendResult, StoreUnavailable, new_op_id
from .resets import RESET_CODE, RESET_TOKEN, PasswordReset

log = logging.getLogger(__name__)


@dataclass
class Limits:
    """The numbers of SPEC section 10 that the store enforces."""

    pending_ttl: int = 86400
    code_ttl: int = 3600
    code_max: int = 5
    registration_max: int = 10
    cooldown: int = 60
    per_hour: int = 5
    claim_seconds: int = 30
    reset_ttl: int = 3600
    login_max_failures: int = 10
    login_window: int = 900


class PendingRegistrationManager:
    """The seed's methods, password resets and sign-in failures, over whichever store serves.

    Which store that is (Redis, or memory while Redis cannot be reached) is the `fallback`'s
    business (`fallback.Fallback`, SPEC section 4): every operation here runs through
    `fallback.run` (or `fallback.claim`), which switches to memory on an outage.
    """

    def __init__(self, primary: PendingStore | None, digester: Digester, limits: Limits,
                 *, fallback_enabled: bool = True, clock=time.time):
        self.fallback = Fallback(primary, enabled=fallback_enabled, clock=clock)
        self.digester = digester
        self.limits = limits
        self.clock = clock

    @property
    def store(self) -> PendingStore:
        """The store serving now."""
        return self.fallback.store

    @property
    def backend(self) -> str:
        """Name of the store serving now."""
        return self.fallback.store.name

    @property
    def degraded(self) -> bool:
        """True while an involuntary fallback is serving from memory."""
        return self.fallback.degraded

    @property
    def uncertain(self) -> bool:
        """True when "no registration found" may be wrong: fallback, or the grace after it."""
        return self.fallback.uncertain

    @property
    def fallback_enabled(self) -> bool:
        """False with PENDING_FALLBACK=off: a Redis outage is then an error, not a switch."""
        return self.fallback.enabled

    def start(self) -> None:
        """Probe Redis once at start-up (falling back to memory when it does not answer)."""
        self.fallback.start()

    def close(self) -> None:
        """Stop the background probe (tests, shutdown)."""
        self.fallback.close()

    # -- the seed's methods -------------------------------------------------------------------
    def address_id(self, email: str) -> str:
        """Key-name id of a normalised address.

        After a SECRET_KEY rotation a registration may still sit under the id of an old key
        (SECRET_KEY_FALLBACKS): that id is used until the record is gone.
        """
        ids = self.digester.address_ids(email)
        if len(ids) > 1:
            for candidate in ids[1:]:
                if self.fallback.run(lambda s, c=candidate: s.exists(c)):
                    return candidate
        return ids[0]

    def add_registration(self, reg: PendingRegistration, *, take_email: bool = False) -> int:
        """Create or replace the pending registration for reg.email (TTL PENDING_TTL_SECONDS).

        `reg.address_id`, when set, must be one of the address's ids (the one its code digest
        and link token were made for: see `register`); when empty it is looked up.
        `take_email` also takes one email from the address's allowance in the same atomic
        step (one Redis round trip for a signup): returns 0, or the seconds to wait, and then
        nothing is stored: a signup that may not send its code must not kill the code already
        emailed (anyone could otherwise keep a person's code from working).
        """
        if not reg.address_id:
            reg.address_id = self.address_id(reg.email)
        elif reg.address_id not in self.digester.address_ids(reg.email):
            raise ValueError("reg.address_id is not an id of reg.email")
        allowance = (self.limits.cooldown, self.limits.per_hour) if take_email else None
        op_id = new_op_id()
        return self.fallback.run(lambda s: s.save(reg, self.limits.pending_ttl, allowance, op_id))

    def register(self, email: str, password_hash: str, name: str, locale: str, code: str,
                 token: str, browser_key: str = "") -> int:
        """Store (or replace) the registration with a newly issued code and link token, taking
        one email from the address's allowance in the same step: 0, or the seconds to wait
        (and then nothing is stored; see `add_registration`).

        The caller makes the secrets it emails (`code`; `token` with
        `security.new_link_token(manager.address_id(email))`, whose id names the record); the
        manager computes every digest of them, and of `browser_key` (the signing-up browser's).
        """
        address_id, code_digest, token_digest = self._new_code_digests(email, code, token)
        now = self.clock()
        reg = PendingRegistration(
            email=email, password_hash=password_hash, name=name, locale=locale,
            code_digest=code_digest, token_digest=token_digest,
            browser_digest=self.digester.browser_digests(browser_key)[0] if browser_key else "",
            code_issued_at=now, created_at=now, updated_at=now,
            expires_at=now + self.limits.pending_ttl, address_id=address_id)
        return self.add_registration(reg, take_email=True)

    def is_signup_browser(self, reg: PendingRegistration, browser_key: str | None) -> bool:
        """True when `browser_key` is the key of the browser that signed `reg` up."""
        if not (browser_key and reg.browser_digest):
            return False
        return any(hmac.compare_digest(reg.browser_digest, digest)
                   for digest in self.digester.browser_digests(browser_key))

    def get_registration(self, email: str) -> PendingRegistration | None:
        """The pending registration or None (it holds only digests of the code and token)."""
        return self.fallback.run(lambda s: s.load(self.address_id(email)))

    def get_registration_by_token(self, token: str) -> PendingRegistration | None:
        """The pending registration a link token belongs to, or None (changes nothing)."""
        address_id = link_token_address_id(token)
        if address_id is None:
            return None  # not a link this site makes: no store is asked
        digests = self.digester.token_digests(token)
        return self.fallback.run(lambda s: s.load_by_token(address_id, digests))

    def remove_registration(self, email: str) -> bool:
        """Delete the pending registration; true if something was deleted."""
        return self.fallback.run(lambda s: s.delete(self.address_id(email)))

    def verify_and_remove(self, email: str, code: str, promote, *, check=None) -> CodeCheck:
        """Check the code atomically; promote, and delete the record only if promote returns.

        `check(registration)` (the password, for another browser) runs after a right code and
        before `promote`; a False counts as a wrong attempt and answers wrong_password with
        the attempts left a wrong code would report.
        """
        address_id = self.address_id(email)
        op_id = new_op_id()
        lim = self.limits
        result, store = self.fallback.claim(lambda s: s.check_code(
            address_id, self.digester.code_digests(address_id, code), now=self.clock(),
            code_ttl=lim.code_ttl, code_max=lim.code_max, reg_max=lim.registration_max,
            window=lim.pending_ttl, claim_seconds=lim.claim_seconds, op_id=op_id,
            count_unknown=not self.uncertain))
        return self._complete(result, store, address_id, op_id, promote, check)

    def verify_link_and_remove(self, token: str, promote, *, check=None,
                               with_password: bool = False) -> CodeCheck:
        """The link path: claim through the token, then promote and delete as for a code.

        `with_password`: the claim is made to check a password (a browser other than the
        signing-up one), so it counts against the address's REGISTRATION_MAX_ATTEMPTS and
        is refused ("locked") once they are spent, as code entry is. The signing-up browser
        gives no password and is never locked out of its own link.
        """
        token_id = link_token_address_id(token)
        if token_id is None:
            return CodeCheck("unknown")  # not a link this site makes: no store is asked
        op_id = new_op_id()
        digests = self.digester.token_digests(token)
        reg_max = self.limits.registration_max if with_password else None
        result, store = self.fallback.claim(lambda s: s.claim_token(
            token_id, digests, now=self.clock(), claim_seconds=self.limits.claim_seconds,
            op_id=op_id, reg_max=reg_max))
        address_id = result.registration.address_id if result.registration else ""
        return self._complete(result, store, address_id, op_id, promote, check)

    def _complete(self, result: CodeCheck, store, address_id, op_id, promote,
                  check) -> CodeCheck:
        # `store` is the one that made the claim: if the fallback switched while the user was
        # being created, the claim is still released or finished where it was made.
        if result.status != "ok":
            if result.status == "unknown" and self.uncertain:
                # Memory holds only this process's signups: it cannot say "wrong" for sure.
                return CodeCheck("unavailable")
            return result
        reg = result.registration
        if check is not None and not check(reg):
            lim = self.limits
            left = store.release(address_id, op_id, count_wrong=True, window=lim.pending_ttl,
                                 code_max=lim.code_max, reg_max=lim.registration_max)
            return CodeCheck("wrong_password", registration=reg, attempts_left=left)
        try:
            outcome = promote(reg)
        except Exception:
            # The database failed: the record stays and the same code keeps working.
            try:
                store.release(address_id, op_id, count_wrong=False, window=0)
            except StoreUnavailable:
                log.warning("could not release a claim; it lapses by itself")
            raise
        try:
            store.finish(address_id, op_id)
        except StoreUnavailable:
            # The user row is committed; a leftover record is harmless (promotion is
            # idempotent on the unique email) and expires with its TTL.
            log.warning("promoted a registration but could not delete its pending record")
        return CodeCheck("verified", registration=reg, result=outcome)

    def _new_code_digests(self, email, code, token):
        """The address id and the stored digests of a newly issued code and link token.

        The token names the record it belongs to (`security.new_link_token(address_id)`),
        so that id is the one used; it must be one of the address's ids.
        """
        address_id = link_token_address_id(token)
        if address_id is None or address_id not in self.digester.address_ids(email):
            raise ValueError("a new link token must carry its registration's address id")
        return (address_id, self.digester.code_digest(address_id, code),
                self.digester.token_digest(token))

    def update_verification_code(self, email: str, code: str, token: str) -> bool:
        """Resend: new code and link, old ones dead, TTL reset, attempt counters kept.

        `token` is made with `security.new_link_token(manager.address_id(email))`.
        """
        address_id, code_digest, token_digest = self._new_code_digests(email, code, token)
        op_id = new_op_id()
        return self.fallback.run(lambda s: s.replace_code(
            address_id, code_digest, token_digest, now=self.clock(),
            ttl=self.limits.pending_ttl, op_id=op_id))

    def resend(self, email: str, code: str, token: str) -> ResendResult:
        """Take an email from the allowance and, if allowed, issue the new code: one step.

        The allowance is taken whether or not a registration exists, so the answer never tells.
        """
        address_id, code_digest, token_digest = self._new_code_digests(email, code, token)
        op_id = new_op_id()
        return self.fallback.run(lambda s: s.resend(
            address_id, code_digest, token_digest, now=self.clock(),
            ttl=self.limits.pending_ttl, op_id=op_id, cooldown=self.limits.cooldown,
            per_hour=self.limits.per_hour))

    def reserve_email(self, email: str) -> int:
        """Take one email from the address's allowance: 0 if allowed, else seconds to wait.

        For a signup of an address that has an account: allowed, it also starts the
        address's stand-in code count again, as a new code would (PendingStore.check_code).
        """
        op_id = new_op_id()
        return self.fallback.run(lambda s: s.reserve_email(
            self.address_id(email), cooldown=self.limits.cooldown,
            per_hour=self.limits.per_hour, now=self.clock(), op_id=op_id))

    # -- reports for operators (SPEC section 4: get_stats, cleanup_expired, health_check) ----
    # They read both stores whatever serves now: a record may sit in either.
    def get_stats(self) -> dict:
        """Pending counts for operators, by backend, in time independent of their number."""
        now, primary = self.clock(), self.fallback.primary
        by_backend = {"memory": self.fallback.memory.count(now)}
        redis_connected = False
        if primary is not None:
            try:
                by_backend["redis"] = primary.count(now)
                redis_connected = True
            except StoreUnavailable:
                by_backend["redis"] = None
        return {
            "total": sum(v for v in by_backend.values() if v),
            "backend": self.backend,
            "redis_connected": redis_connected,
            "by_backend": by_backend,
        }

    def cleanup_expired(self) -> int:
        """Remove expired records and leftover bookkeeping from every store; how many."""
        fallback, now = self.fallback, self.clock()
        removed = fallback.memory.cleanup(now) + fallback.memory_resets.cleanup(now)
        if fallback.primary is not None:
            try:
                removed += fallback.primary.cleanup(now)
            except StoreUnavailable as exc:
                log.warning("cleanup skipped Redis: %s", exc)
        return removed

    def health_check(self) -> dict:
        """Backend in use, whether Redis answers (latency, facts) and the pending counts.

        One round trip to Redis: PING, INFO and the count go in one pipeline.
        """
        now, primary = self.clock(), self.fallback.primary
        memory_count = self.fallback.memory.count(now)
        pending = {"total": memory_count, "backend": self.backend, "redis_connected": False}
        if primary is None:
            return {"backend": "memory", "redis": {"status": "disabled"},
                    "pending_registrations": pending}
        try:
            latency, facts, count = primary.probe(now)
        except StoreUnavailable:
            return {"backend": self.backend, "redis": {"status": "unhealthy"},
                    "pending_registrations": pending}
        pending.update(total=memory_count + count, redis_connected=True)
        return {"backend": self.backend,
                "redis": {"status": "healthy", **facts, "latency_ms": round(latency, 3)},
                "pending_registrations": pending}

    # -- password resets and sign-in failures -------------------------------------------------
    def reset_id(self, email: str) -> str:
        """The id a reset for this address is stored under (an old key's while one is there)."""
        ids = self.digester.address_ids(email)
        for candidate in ids[1:]:
            if self.fallback.run_resets(lambda r, c=candidate: r.exists(c)):
                return candidate
        return ids[0]

    def issue_reset(self, email: str, code: str, token: str) -> None:
        """Store a new reset code and link for `email` (the old ones stop working).

        `token` is made with `security.new_link_token(manager.reset_id(email))`.
        The code lives CODE_TTL_SECONDS, the link RESET_TTL_SECONDS; the per-code attempts
        start again, the per-address counter is kept.
        """
        address_id = link_token_address_id(token)
        if address_id is None or address_id not in self.digester.address_ids(email):
            raise ValueError("a reset link token must carry the address's id")
        now, lim = self.clock(), self.limits
        reset = PasswordReset(
            email=email, code_digest=self.digester.code_digests(address_id, code, RESET_CODE)[0],
            token_digest=self.digester.token_digests(token, RESET_TOKEN)[0],
            code_issued_at=now, link_expires_at=now + lim.reset_ttl, address_id=address_id)
        self.fallback.run_resets(lambda r: r.save(reset, max(lim.code_ttl, lim.reset_ttl)))

    def remove_reset(self, email: str) -> bool:
        """Delete the address's reset, if any (its code and link stop working)."""
        address_id = self.reset_id(email)
        return self.fallback.run_resets(lambda r: r.delete(address_id))

    def get_reset_by_token(self, token: str) -> PasswordReset | None:
        """The reset a live link belongs to, or None (changes nothing: mail scanners GET it)."""
        address_id = link_token_address_id(token)
        if address_id is None:
            return None
        digests = self.digester.token_digests(token, RESET_TOKEN)
        return self.fallback.run_resets(
            lambda r: r.load_by_token(address_id, digests, self.clock()))

    def reset_with_code(self, email: str, code: str, change) -> CodeCheck:
        """Check a reset code (caps as for signup codes); on success call `change(reset)`.

        The same claim → change → finish sequence as a verification: the reset is deleted
        (and the sign-in throttle lifted) only once `change` returns; if it raises, the claim
        is released and the same code still works. "verified" means done.
        """
        address_id = self.reset_id(email)
        op_id, lim = new_op_id(), self.limits
        digests = self.digester.code_digests(address_id, code, RESET_CODE)
        result, resets = self.fallback.claim_resets(lambda r: r.check_code(
            address_id, digests, now=self.clock(), code_ttl=lim.code_ttl,
            code_max=lim.code_max, reg_max=lim.registration_max, window=lim.pending_ttl,
            claim_seconds=lim.claim_seconds, op_id=op_id, count_unknown=not self.uncertain))
        return self._complete(result, resets, address_id, op_id, change, None)

    def reset_with_link(self, token: str, change) -> CodeCheck:
        """The link path of `reset_with_code` (wrong codes do not affect the link)."""
        address_id = link_token_address_id(token)
        if address_id is None:
            return CodeCheck("unknown")
        op_id = new_op_id()
        digests = self.digester.token_digests(token, RESET_TOKEN)
        result, resets = self.fallback.claim_resets(lambda r: r.claim_token(
            address_id, digests, now=self.clock(), claim_seconds=self.limits.claim_seconds,
            op_id=op_id))
        return self._complete(result, resets, address_id, op_id, change, None)

    def take_login_attempt(self, email: str) -> tuple[int, str]:
        """Count a sign-in for this address as failed until refunded.

        Returns (0, op id) to go ahead, or (seconds to wait, op id) past LOGIN_MAX_FAILURES in
        the window. Every address is counted the same way, known or not.
        """
        op_id, lim = new_op_id(), self.limits
        address_id = self.digester.address_id(email)
        wait = self.fallback.run_resets(lambda r: r.take_login_attempt(
            address_id, max_failures=lim.login_max_failures, window=lim.login_window,
            now=self.clock(), op_id=op_id))
        return wait, op_id

    def refund_login_attempt(self, email: str, op_id: str) -> None:
        """The sign-in taken by `op_id` succeeded (or proved the password): uncount it."""
        address_id = self.digester.address_id(email)
        self.fallback.run_resets(
            lambda r: r.refund_login_attempt(address_id, op_id, self.clock()))
