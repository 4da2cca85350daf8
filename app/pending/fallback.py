"""Which store serves: Redis, or the in-memory fallback while Redis cannot be reached.

This module implements the fallback rules of SPEC section 4 and nothing else:

- When Redis cannot be reached at start-up (`Fallback.start`) or stops answering at run time (a
  StoreUnavailable from any call made through `Fallback.run`), the process switches to an
  in-memory store (thread-safe, TTL-respecting: `memory.MemoryStore`) and logs one warning per
  change of state, not one per request. `degraded` is then true (`/health` reports it).
- While in fallback, a background thread of each process probes Redis with backoff (0.5 s
  doubling to at most 5 s), so a process drains even when it gets no requests.
- When Redis answers again, the process moves every record it holds in memory into Redis (the
  store's `merge`: remaining TTL and attempt counts kept, a record updated later in Redis never
  overwritten) and switches back, well within 10 s of Redis answering.
- The memory store belongs to one process: while in fallback, and for 10 s after switching
  back (`RECOVERY_GRACE_SECONDS`), `uncertain` is true, and the manager answers a verification
  that finds no registration with "unavailable" (503, "try again shortly") rather than "wrong
  code", counting no attempt. During that grace the probe thread keeps draining stragglers
  (writes that were already under way in memory), then exits.
- With `enabled=False` (`PENDING_FALLBACK=off`) there is no switch: an outage is raised to the
  caller (503, no email sent).
- With no primary (`REDIS_URL=memory://`) memory serves on purpose and nothing is degraded.

Password resets and sign-in failures live beside the registrations, in the same Redis or (in
fallback) memory, and switch with them (`resets`).
"""

from __future__ import annotations

import logging
import threading
import time

from .base import PendingStore
from .memory import MemoryStore
from .model import StoreUnavailable
from .resets import MemoryResets, ResetStore, resets_for

log = logging.getLogger(__name__)

# After switching back to Redis, registrations made in another process's memory may still be on
# their way: for this long a verification that finds nothing answers "try again shortly".
RECOVERY_GRACE_SECONDS = 10.0
PROBE_FIRST_DELAY = 0.5
PROBE_MAX_DELAY = 5.0  # the spec asks for a probe at least every 5 s


class Fallback:
    """The state machine: *primary* → (outage) *fallback* → (Redis answers) *grace* → *primary*.

    - *primary*: Redis serves. A StoreUnavailable from any call (`run`) switches to
    - *fallback*: memory serves; the probe thread pings Redis with backoff. When Redis answers,
      `recover` moves every record held in memory into Redis and switches back, entering
    - *grace* (RECOVERY_GRACE_SECONDS): Redis serves, the probe thread drains stragglers, and
      `uncertain` stays true, because another process may still be moving its memory into Redis.
    """

    def __init__(self, primary: PendingStore | None, *, enabled: bool = True, clock=time.time):
        self.primary = primary
        self.memory = MemoryStore(clock=clock)
        self.primary_resets = resets_for(primary, clock)
        self.memory_resets = MemoryResets(clock=clock)
        self.enabled = enabled
        self.primary_down = False
        self.recovered_at: float | None = None
        self.monotonic = time.monotonic
        self._state_lock = threading.Lock()
        self._stop = threading.Event()
        self._probe_thread: threading.Thread | None = None

    @property
    def store(self) -> PendingStore:
        """The store serving now."""
        if self.primary is None or self.primary_down:
            return self.memory
        return self.primary

    def resets(self, store: PendingStore) -> ResetStore:
        """The reset store beside `store` (Redis beside Redis, memory beside memory)."""
        return self.memory_resets if store is self.memory else self.primary_resets

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
            if not self.enabled:
                log.error("Redis is unreachable and PENDING_FALLBACK is off: %s", exc)
                return
            self.enter(exc)

    def run(self, action):
        """Run `action(store)`; on a primary outage switch to memory and run it there."""
        store = self.store
        try:
            return action(store)
        except StoreUnavailable as exc:
            if store is self.memory or not self.enabled:
                raise
            self.enter(exc)
            return action(self.memory)

    def claim(self, action):
        """Run a claiming step as `run` does, and also return the store that answered (a claim
        is released or finished where it was made, even if the state switched meanwhile)."""
        answered = []

        def run(store):
            answered.append(store)
            return action(store)

        result = self.run(run)
        return result, answered[-1]

    def run_resets(self, action):
        """`run` for `action(resets)`, on the reset store beside the store serving now."""
        return self.run(lambda store: action(self.resets(store)))

    def claim_resets(self, action):
        """`claim` for `action(resets)`: the answer and the reset store that made the claim."""
        result, store = self.claim(lambda store: action(self.resets(store)))
        return result, self.resets(store)

    def enter(self, exc: Exception) -> None:
        """Switch to memory (once) and start the probe thread."""
        with self._state_lock:
            if self.primary_down:
                return
            self.primary_down = True
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
                self.drain()
            except Exception as exc:  # the next request that fails switches to fallback again
                if not isinstance(exc, StoreUnavailable):
                    log.exception("draining the memory store failed; retrying")
            with self._state_lock:
                if not self.primary_down and not self.uncertain:
                    self._probe_thread = None
                    return
            delay = 1.0

    def drain(self) -> int:
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
        moved = self.drain()
        with self._state_lock:
            self.primary_down = False
            self.recovered_at = self.monotonic()
        log.warning("Redis answers again: moved %d pending registrations from memory; serving "
                    "from Redis", moved)

    def close(self) -> None:
        """Stop the background probe (tests, shutdown)."""
        self._stop.set()
