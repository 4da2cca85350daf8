"""PendingRegistrationManager: the one way the web layer touches pending registrations."""

from __future__ import annotations

import hmac
import logging
import threading
import time
from dataclasses import dataclass

from ..security import Digester, link_token_address_id
from .base import PendingStore
from .memory import MemoryStore
from .model import CodeCheck, PendingRegistration, ResendResult, StoreUnavailable, new_op_id
from .resets import RESET_CODE, RESET_TOKEN, MemoryResets, PasswordReset, ResetStore, resets_for

log = logging.getLogger(__name__)

# After switching back to Redis, registrations made in another process's memory may still be on
# their way: for this long a verification that finds nothing answers "try again shortly".
RECOVERY_GRACE_SECONDS = 10.0
PROBE_FIRST_DELAY = 0.5
PROBE_MAX_DELAY = 5.0  # the spec asks for a probe at least every 5 s


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
    """The seed's eight methods over a primary store (Redis) with an in-memory fallback.

    The fallback is one small state machine, kept in this class alone:

    - *primary*: Redis serves. A StoreUnavailable from any call (`_run`) switches to
    - *fallback*: memory serves; a background probe pings Redis with backoff (0.5 s doubling to
      5 s). When Redis answers, `recover` moves every record held in memory into Redis (newer
      records in Redis win) and switches back to *primary*, entering
    - *grace* (10 s): Redis serves, the probe thread drains stragglers (writes that were already
      under way in memory), and "no such registration" is answered as "try again shortly",
      because another process may still be moving its memory into Redis.
    """

    def __init__(self, primary: PendingStore | None, digester: Digester, limits: Limits,
                 *, fallback_enabled: bool = True, clock=time.time):
        self.primary = primary
        self.memory = MemoryStore(clock=clock)
        # Password resets and sign-in failures live beside the registrations, in the same
        # Redis or (fallback) memory, and switch with them.
        self.primary_resets = resets_for(primary, clock)
        self.memory_resets = MemoryResets(clock=clock)
        self.digester = digester
        self.limits = limits
        self.fallback_enabled = fallback_enabled
        self.clock = clock
        self.primary_down = False
        self.last_error: str | None = None
        self.recovered_at: float | None = None
        self.monotonic = time.monotonic
        self._state_lock = threading.Lock()
        self._stop = threading.Event()
        self._probe_thread: threading.Thread | None = None

    # -- fallback state machine -------------------------------------------------------------
    @property
    def store(self) -> PendingStore:
        """The store serving now."""
        if self.primary is None or self.primary_down:
            return self.memory
        return self.primary

    @property
    def backend(self) -> str:
        """Name of the store serving now."""
        return self.store.name

    @property
    def degraded(self) -> bool:
        """True while an involuntary fallback is serving from memory."""
        return self.primary is not None and self.primary_down

    @property
    def uncertain(self) -> bool:
        """True when "no registration found" may be wrong: fallback, or the grace after it."""
        if self.degraded:
            return True
        recovered = self.recovered_at
        return recovered is not None and self.monotonic() - recovered < RECOVERY_GRACE_SECONDS

    def start(self) -> None:
        """Probe the primary once at start-up; fall back to memory when it does not answer."""
        if self.primary is None:
            return
        try:
            self.primary.ping()
            self.primary.load_scripts()
        except StoreUnavailable as exc:
            if not self.fallback_enabled:
                log.error("Redis is unreachable and PENDING_FALLBACK is off: %s", exc)
                self.last_error = str(exc)
                return
            self._enter_fallback(exc)
            return

    def _enter_fallback(self, exc: Exception) -> None:
        with self._state_lock:
            if self.primary_down:
                return
            self.primary_down = True
            self.last_error = str(exc)
            if self._probe_thread is None:
                self._probe_thread = threading.Thread(
                    target=self._probe_loop, name="pending-redis-probe", daemon=True)
                self._probe_thread.start()
        # One warning per change of state, not one per request.
        log.warning("Redis unavailable (%s): pending registrations now kept in memory", exc)

    def _probe_loop(self) -> None:
        """Ping Redis with backoff while in fallback; recover; drain stragglers; then exit."""
        delay = PROBE_FIRST_DELAY
        while not self._stop.wait(delay):
            if self.primary_down:
                try:
                    self.primary.ping()
                    self.recover()
                    delay = 1.0
                except Exception as exc:  # the probe must outlive any error, or memory is stuck
                    if not isinstance(exc, StoreUnavailable):
                        log.exception("recovery failed; retrying")
                    delay = min(delay * 2, PROBE_MAX_DELAY)
                continue
            try:
                self._drain()
            except Exception as exc:  # the next request that fails switches to fallback again
                if not isinstance(exc, StoreUnavailable):
                    log.exception("draining the memory store failed; retrying")
            with self._state_lock:
                if not self.primary_down and not self.uncertain:
                    self._probe_thread = None
                    return
            delay = 1.0

    def _drain(self) -> int:
        """Move every record held in memory into Redis; how many were written."""
        moved = 0
        for reg, ttl, attempts, attempts_ttl in self.memory.export():
            if self.primary.merge(reg, ttl, attempts, attempts_ttl):
                moved += 1
            self.memory.discard(reg.address_id, reg.updated_at)
        for held in self.memory_resets.export_held():
            if self.primary_resets.merge(held):
                moved += 1
            self.memory_resets.discard_held(held)
        return moved

    def recover(self) -> None:
        """Move what memory holds into Redis, then serve from Redis again (raises if down)."""
        self.primary.load_scripts()  # a restarted Redis has forgotten them
        moved = self._drain()
        with self._state_lock:
            self.primary_down = False
            self.recovered_at = self.monotonic()
        log.warning("Redis answers again: moved %d pending registrations from memory; serving "
                    "from Redis", moved)

    def close(self) -> None:
        """Stop the background probe (tests, shutdown)."""
        self._stop.set()

    def _run(self, action):
        """Run `action(store)`; on a primary outage switch to memory and run it there."""
        store = self.store
        try:
            return action(store)
        except StoreUnavailable as exc:
            if store is self.memory or not self.fallback_enabled:
                self.last_error = str(exc)
                raise
            self._enter_fallback(exc)
            return action(self.memory)

    # -- the seed's methods -------------------------------------------------------------------
    def address_id(self, email: str) -> str:
        """Key-name id of a normalised address.

        After a SECRET_KEY rotation a registration may still sit under the id of an old key
        (SECRET_KEY_FALLBACKS): that id is used until the record is gone.
        """
        ids = self.digester.address_ids(email)
        if len(ids) > 1:
            for candidate in ids[1:]:
                if self._run(lambda s, c=candidate: s.exists(c)):
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
        return self._run(lambda s: s.save(reg, self.limits.pending_ttl, allowance, op_id))

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
        return self._run(lambda s: s.load(self.address_id(email)))

    def get_registration_by_token(self, token: str) -> PendingRegistration | None:
        """The pending registration a link token belongs to, or None (changes nothing)."""
        address_id = link_token_address_id(token)
        if address_id is None:
            return None  # not a link this site makes: no store is asked
        digests = self.digester.token_digests(token)
        return self._run(lambda s: s.load_by_token(address_id, digests))

    def remove_registration(self, email: str) -> bool:
        """Delete the pending registration; true if something was deleted."""
        return self._run(lambda s: s.delete(self.address_id(email)))

    def verify_and_remove(self, email: str, code: str, promote, *, check=None) -> CodeCheck:
        """Check the code atomically; promote, and delete the record only if promote returns.

        `check(registration)` (the password, for another browser) runs after a right code and
        before `promote`; a False counts as a wrong attempt and answers wrong_password with
        the attempts left a wrong code would report.
        """
        address_id = self.address_id(email)
        op_id = new_op_id()
        lim = self.limits
        result, store = self._claim(lambda s: s.check_code(
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
        result, store = self._claim(lambda s: s.claim_token(
            token_id, digests, now=self.clock(), claim_seconds=self.limits.claim_seconds,
            op_id=op_id, reg_max=reg_max))
        address_id = result.registration.address_id if result.registration else ""
        return self._complete(result, store, address_id, op_id, promote, check)

    def _claim(self, action):
        """Run a claiming step as `_run` does, and also return the store that answered."""
        answered = []

        def run(store):
            answered.append(store)
            return action(store)

        result = self._run(run)
        return result, answered[-1]

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
        return self._run(lambda s: s.replace_code(
            address_id, code_digest, token_digest, now=self.clock(),
            ttl=self.limits.pending_ttl, op_id=op_id))

    def resend(self, email: str, code: str, token: str) -> ResendResult:
        """Take an email from the allowance and, if allowed, issue the new code: one step.

        The allowance is taken whether or not a registration exists, so the answer never tells.
        """
        address_id, code_digest, token_digest = self._new_code_digests(email, code, token)
        op_id = new_op_id()
        return self._run(lambda s: s.resend(
            address_id, code_digest, token_digest, now=self.clock(),
            ttl=self.limits.pending_ttl, op_id=op_id, cooldown=self.limits.cooldown,
            per_hour=self.limits.per_hour))

    def reserve_email(self, email: str) -> int:
        """Take one email from the address's allowance: 0 if allowed, else seconds to wait.

        For a signup of an address that has an account: allowed, it also starts the
        address's stand-in code count again, as a new code would (PendingStore.check_code).
        """
        op_id = new_op_id()
        return self._run(lambda s: s.reserve_email(
            self.address_id(email), cooldown=self.limits.cooldown,
            per_hour=self.limits.per_hour, now=self.clock(), op_id=op_id))

    def get_stats(self) -> dict:
        """Pending counts for operators, by backend, in time independent of their number."""
        now = self.clock()
        by_backend = {"memory": self.memory.count(now)}
        redis_connected = False
        if self.primary is not None:
            try:
                by_backend["redis"] = self.primary.count(now)
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
        removed = self.memory.cleanup(self.clock()) + self.memory_resets.cleanup(self.clock())
        if self.primary is not None:
            try:
                removed += self.primary.cleanup(self.clock())
            except StoreUnavailable as exc:
                log.warning("cleanup skipped Redis: %s", exc)
        return removed

    def health_check(self) -> dict:
        """Backend in use, whether Redis answers (latency, facts) and the pending counts.

        One round trip to Redis: PING, INFO and the count go in one pipeline.
        """
        now = self.clock()
        memory_count = self.memory.count(now)
        pending = {"total": memory_count, "backend": self.backend, "redis_connected": False}
        if self.primary is None:
            return {"backend": "memory", "redis": {"status": "disabled"},
                    "pending_registrations": pending}
        try:
            latency, facts, count = self.primary.probe(now)
        except StoreUnavailable as exc:
            self.last_error = str(exc)
            return {"backend": self.backend, "redis": {"status": "unhealthy"},
                    "pending_registrations": pending}
        pending.update(total=memory_count + count, redis_connected=True)
        return {"backend": self.backend,
                "redis": {"status": "healthy", **facts, "latency_ms": round(latency, 3)},
                "pending_registrations": pending}

    # -- password resets and sign-in failures -------------------------------------------------
    def _resets(self, store: PendingStore) -> ResetStore:
        """The reset store beside `store` (Redis beside Redis, memory beside memory)."""
        return self.memory_resets if store is self.memory else self.primary_resets

    def reset_id(self, email: str) -> str:
        """The id a reset for this address is stored under (an old key's while one is there)."""
        ids = self.digester.address_ids(email)
        for candidate in ids[1:]:
            if self._run(lambda s, c=candidate: self._resets(s).exists(c)):
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
        self._run(lambda s: self._resets(s).save(reset, max(lim.code_ttl, lim.reset_ttl)))

    def remove_reset(self, email: str) -> bool:
        """Delete the address's reset, if any (its code and link stop working)."""
        address_id = self.reset_id(email)
        return self._run(lambda s: self._resets(s).delete(address_id))

    def get_reset_by_token(self, token: str) -> PasswordReset | None:
        """The reset a live link belongs to, or None (changes nothing: mail scanners GET it)."""
        address_id = link_token_address_id(token)
        if address_id is None:
            return None
        digests = self.digester.token_digests(token, RESET_TOKEN)
        return self._run(lambda s: self._resets(s).load_by_token(address_id, digests,
                                                                  self.clock()))

    def reset_with_code(self, email: str, code: str, change) -> CodeCheck:
        """Check a reset code (caps as for signup codes); on success call `change(reset)`.

        The same claim → change → finish sequence as a verification: the reset is deleted
        (and the sign-in throttle lifted) only once `change` returns; if it raises, the claim
        is released and the same code still works. "verified" means done.
        """
        address_id = self.reset_id(email)
        op_id, lim = new_op_id(), self.limits
        digests = self.digester.code_digests(address_id, code, RESET_CODE)
        result, store = self._claim(lambda s: self._resets(s).check_code(
            address_id, digests, now=self.clock(), code_ttl=lim.code_ttl,
            code_max=lim.code_max, reg_max=lim.registration_max, window=lim.pending_ttl,
            claim_seconds=lim.claim_seconds, op_id=op_id, count_unknown=not self.uncertain))
        return self._complete(result, self._resets(store), address_id, op_id, change, None)

    def reset_with_link(self, token: str, change) -> CodeCheck:
        """The link path of `reset_with_code` (wrong codes do not affect the link)."""
        address_id = link_token_address_id(token)
        if address_id is None:
            return CodeCheck("unknown")
        op_id = new_op_id()
        digests = self.digester.token_digests(token, RESET_TOKEN)
        result, store = self._claim(lambda s: self._resets(s).claim_token(
            address_id, digests, now=self.clock(), claim_seconds=self.limits.claim_seconds,
            op_id=op_id))
        return self._complete(result, self._resets(store), address_id, op_id, change, None)

    def take_login_attempt(self, email: str) -> tuple[int, str]:
        """Count a sign-in for this address as failed until refunded.

        Returns (0, op id) to go ahead, or (seconds to wait, op id) past LOGIN_MAX_FAILURES in
        the window. Every address is counted the same way, known or not.
        """
        op_id, lim = new_op_id(), self.limits
        address_id = self.digester.address_id(email)
        wait = self._run(lambda s: self._resets(s).take_login_attempt(
            address_id, max_failures=lim.login_max_failures, window=lim.login_window,
            now=self.clock(), op_id=op_id))
        return wait, op_id

    def refund_login_attempt(self, email: str, op_id: str) -> None:
        """The sign-in taken by `op_id` succeeded (or proved the password): uncount it."""
        address_id = self.digester.address_id(email)
        self._run(lambda s: self._resets(s).refund_login_attempt(address_id, op_id,
                                                                 self.clock()))
