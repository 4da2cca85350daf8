"""Thread-safe in-memory pending store with TTLs: for development, tests and the fallback."""

from __future__ import annotations

import heapq
import threading
import time
from dataclasses import replace

from .base import PendingStore
from .model import CodeCheck, ResendResult

OP_MEMORY_SECONDS = 120


class _Expiring(dict):
    """A dict of key -> (value, expires_at) that hides and drops expired entries.

    Every write also goes on a heap in expiry order, so `sweep` touches only what has expired
    (plus stale heap entries of keys rewritten later), never the whole table.
    """

    def __init__(self):
        super().__init__()
        self.heap: list[tuple[float, str]] = []

    def __setitem__(self, key, item):
        super().__setitem__(key, item)
        heapq.heappush(self.heap, (item[1], key))

    def sweep(self, now) -> list:
        """Remove every expired entry; return the removed values."""
        removed = []
        while self.heap and self.heap[0][0] <= now:
            _expires, key = heapq.heappop(self.heap)
            item = self.get(key)
            if item is not None and item[1] <= now:
                del self[key]
                removed.append(item[0])
        return removed

    def get_live(self, key, now):
        """The value if present and not expired (an expired entry is dropped)."""
        item = self.get(key)
        if item is None:
            return None
        if item[1] <= now:
            del self[key]
            return None
        return item[0]


class MemoryStore(PendingStore):
    """Every operation under one lock; expiry checked on access and swept by `cleanup`."""

    name = "memory"

    def __init__(self, clock=time.time):
        self.clock = clock
        self.lock = threading.RLock()
        self.records: _Expiring = _Expiring()
        self.attempts: _Expiring = _Expiring()
        # Wrong codes against the stand-in code of an address with no record (see check_code).
        self.code_attempts: _Expiring = _Expiring()
        self.ops: _Expiring = _Expiring()
        self.cooldowns: _Expiring = _Expiring()
        self.hourly: _Expiring = _Expiring()

    # -- helpers -----------------------------------------------------------------------------
    @staticmethod
    def _increment(table, address_id, now, window):
        """Add one to a counter that expires `window` after its first count, as INCR + EXPIRE."""
        count = (table.get_live(address_id, now) or 0) + 1
        expires = table[address_id][1] if count > 1 else now + window
        table[address_id] = (count, expires)
        return count

    def _count_wrong(self, address_id, now, window):
        return self._increment(self.attempts, address_id, now, window)

    def _left_after_refusal(self, address_id, tried, *, now, code_max, reg_max, window):
        """Count a refused attempt on the address (the code's own count, this one included,
        is `tried`); the attempts left, as check_code.lua reports them."""
        used = self._count_wrong(address_id, now, window)
        return max(0, min(code_max - tried, reg_max - used))

    def _remember(self, op_id, result, now):
        self.ops[op_id] = (result, now + OP_MEMORY_SECONDS)
        return result

    # -- interface ---------------------------------------------------------------------------
    def save(self, reg, ttl, allowance=None, op_id=None):
        with self.lock:
            now = self.clock()
            if op_id is not None and self.ops.get_live(op_id, now) is not None:
                return self.ops.get_live(op_id, now)
            wait = 0
            if allowance:
                wait = self.reserve_email(reg.address_id, cooldown=allowance[0],
                                          per_hour=allowance[1], now=now)
            if not wait:  # over the allowance nothing is sent, so nothing changes
                expires = now + ttl
                self.records[reg.address_id] = (replace(reg, expires_at=expires), expires)
            if op_id is not None:
                self._remember(op_id, wait, now)
            return wait

    def merge(self, reg, ttl, attempts, attempts_ttl):
        with self.lock:
            now = self.clock()
            if attempts > (self.attempts.get_live(reg.address_id, now) or 0):
                self.attempts[reg.address_id] = (attempts, now + attempts_ttl)
            current = self.records.get_live(reg.address_id, now)
            if current is not None and current.updated_at >= reg.updated_at:
                return False
            self.save(reg, ttl)
            return True

    def load(self, address_id):
        with self.lock:
            reg = self.records.get_live(address_id, self.clock())
            return replace(reg) if reg else None

    def exists(self, address_id):
        with self.lock:
            return self.records.get_live(address_id, self.clock()) is not None

    def _by_token(self, address_id, digests, now):
        """The live record the token's id names, if its token digest is one of `digests`."""
        reg = self.records.get_live(address_id, now)
        if reg is not None and reg.token_digest and reg.token_digest in digests:
            return reg
        return None

    def load_by_token(self, address_id, digests):
        with self.lock:
            reg = self._by_token(address_id, digests, self.clock())
            return replace(reg) if reg is not None else None

    def delete(self, address_id):
        with self.lock:
            item = self.records.pop(address_id, None)
            if item is None:
                return False
            return item[1] > self.clock()

    def check_code(self, address_id, digests, *, now, code_ttl, code_max, reg_max, window,
                   claim_seconds, op_id, count_unknown=True):
        with self.lock:
            previous = self.ops.get_live(op_id, now)
            if previous is not None:
                return previous
            used = self.attempts.get_live(address_id, now) or 0
            if used >= reg_max:
                retry = int(self.attempts[address_id][1] - now) + 1
                return self._remember(op_id, CodeCheck("locked", retry_after=retry), now)
            reg = self.records.get_live(address_id, now)
            caps = dict(now=now, code_max=code_max, reg_max=reg_max, window=window)
            # Every refused code counts on the code and the address, whatever the address's
            # state; with no record the code's count is a stand-in (see check_code.lua).
            if reg is None:
                if not count_unknown:
                    return self._remember(op_id, CodeCheck("unknown"), now)
                if (self.code_attempts.get_live(address_id, now) or 0) >= code_max:
                    self._count_wrong(address_id, now, window)
                    return self._remember(op_id, CodeCheck("code_dead"), now)
                tried = self._increment(self.code_attempts, address_id, now, window)
                left = self._left_after_refusal(address_id, tried, **caps)
                return self._remember(op_id, CodeCheck("unknown", attempts_left=left), now)
            claim = getattr(reg, "_claim", None)
            if claim and claim[1] > now and claim[0] != op_id:
                return self._remember(op_id, CodeCheck("busy"), now)
            if reg.code_attempts >= code_max:
                self._count_wrong(address_id, now, window)
                return self._remember(op_id, CodeCheck("code_dead"), now)
            expired = reg.code_issued_at + code_ttl < now
            if not expired and reg.code_digest in digests:
                reg._claim = (op_id, now + claim_seconds)
                return self._remember(op_id, CodeCheck("ok", registration=replace(reg)), now)
            reg.code_attempts += 1
            left = self._left_after_refusal(address_id, reg.code_attempts, **caps)
            return self._remember(op_id, CodeCheck("expired" if expired else "wrong",
                                                   attempts_left=left), now)

    def claim_token(self, address_id, digests, *, now, claim_seconds, op_id, reg_max=None):
        with self.lock:
            previous = self.ops.get_live(op_id, now)
            if previous is not None:
                return previous
            reg = self._by_token(address_id, digests, now)
            if reg is None:
                return self._remember(op_id, CodeCheck("unknown"), now)
            if reg_max is not None and (self.attempts.get_live(address_id, now) or 0) >= reg_max:
                retry = int(self.attempts[address_id][1] - now) + 1
                return self._remember(op_id, CodeCheck("locked", retry_after=retry), now)
            claim = getattr(reg, "_claim", None)
            if claim and claim[1] > now and claim[0] != op_id:
                return self._remember(op_id, CodeCheck("busy"), now)
            reg._claim = (op_id, now + claim_seconds)
            return self._remember(op_id, CodeCheck("ok", registration=replace(reg)), now)

    def release(self, address_id, op_id, *, count_wrong, window, code_max=0, reg_max=0):
        with self.lock:
            now = self.clock()
            marker = op_id + ":release"
            previous = self.ops.get_live(marker, now)
            if previous is not None:
                return previous[0]
            left = None
            reg = self.records.get_live(address_id, now)
            if reg is not None and (getattr(reg, "_claim", None) or (None,))[0] == op_id:
                reg._claim = None
                if count_wrong:
                    reg.code_attempts += 1
                    left = self._left_after_refusal(address_id, reg.code_attempts, now=now,
                                                    code_max=code_max, reg_max=reg_max,
                                                    window=window)
            # Kept in a tuple: the answer may be None, and a retry must still see it.
            self._remember(marker, (left,), now)
            return left

    def finish(self, address_id, op_id):
        with self.lock:
            reg = self.records.get_live(address_id, self.clock())
            if reg is None or (getattr(reg, "_claim", None) or (None,))[0] != op_id:
                return False
            return self.delete(address_id)

    def replace_code(self, address_id, code_digest, token_digest, *, now, ttl, op_id):
        with self.lock:
            previous = self.ops.get_live(op_id, now)
            if previous is not None:
                return previous
            reg = self.records.get_live(address_id, now)
            if reg is None:
                return self._remember(op_id, False, now)
            expires = now + ttl
            reg.code_digest, reg.token_digest = code_digest, token_digest
            reg.code_issued_at = reg.updated_at = now
            reg.code_attempts = 0  # per issued code; the per-address counter is kept
            reg.expires_at = expires
            self.records[address_id] = (reg, expires)
            return self._remember(op_id, True, now)

    def resend(self, address_id, code_digest, token_digest, *, now, ttl, op_id, cooldown,
               per_hour):
        with self.lock:
            previous = self.ops.get_live(op_id, now)
            if previous is not None:
                return previous
            wait = self.reserve_email(address_id, cooldown=cooldown, per_hour=per_hour, now=now)
            if wait:
                return self._remember(op_id, ResendResult("wait", retry_after=wait), now)
            if not self.replace_code(address_id, code_digest, token_digest, now=now, ttl=ttl,
                                     op_id=op_id + ":replace"):
                return self._remember(op_id, ResendResult("missing"), now)
            reg = self.records.get_live(address_id, now)
            return self._remember(op_id, ResendResult("updated", locale=reg.locale), now)

    def reserve_email(self, address_id, *, cooldown, per_hour, now, op_id=None):
        with self.lock:
            if op_id is not None:
                previous = self.ops.get_live(op_id, now)
                if previous is not None:
                    return previous
                return self._remember(op_id, self.reserve_email(
                    address_id, cooldown=cooldown, per_hour=per_hour, now=now), now)
            if cooldown > 0 and self.cooldowns.get_live(address_id, now):
                return max(1, int(self.cooldowns[address_id][1] - now + 0.999))
            sent = self.hourly.get_live(address_id, now) or 0
            if sent >= per_hour:
                return max(1, int(self.hourly[address_id][1] - now + 0.999))
            if cooldown > 0:
                self.cooldowns[address_id] = (True, now + cooldown)
            expires = self.hourly[address_id][1] if sent else now + 3600
            self.hourly[address_id] = (sent + 1, expires)
            # An email goes out: the stand-in code's count starts again (see check_code).
            self.code_attempts.pop(address_id, None)
            return 0

    def _drop_expired_records(self, now):
        """Drop expired records: amortised O(1) per record."""
        return len(self.records.sweep(now))

    def count(self, now):
        with self.lock:
            # Expired entries are dropped first (only those, in expiry order: /health and
            # /metrics call this often, so the bookkeeping tables cannot grow without bound),
            # then len() is O(1).
            self._drop_expired_records(now)
            for table in self._bookkeeping():
                table.sweep(now)
            return len(self.records)

    def cleanup(self, now=None):
        with self.lock:
            now = self.clock() if now is None else now
            removed = self._drop_expired_records(now)
            for table in self._bookkeeping():
                table.sweep(now)
            return removed

    def _bookkeeping(self):
        """The tables beside the records, swept of what has expired by count and cleanup."""
        return (self.attempts, self.code_attempts, self.ops, self.cooldowns, self.hourly)

    def ping(self):
        return 0.0

    def export(self):
        """Every live record with its remaining TTL and attempt counter (to move into Redis)."""
        with self.lock:
            now = self.clock()
            rows = []
            for address_id, (reg, expires) in list(self.records.items()):
                if expires <= now:
                    continue
                attempts = self.attempts.get(address_id)
                rows.append((replace(reg), expires - now, attempts[0] if attempts else 0,
                             attempts[1] - now if attempts else 0))
            return rows

    def discard(self, address_id: str, updated_at: float) -> None:
        """Drop a record that has been moved, unless it changed since it was exported."""
        with self.lock:
            item = self.records.get(address_id)
            if item is not None and item[0].updated_at <= updated_at:
                self.delete(address_id)
                # Its counter went to Redis with it; one kept record keeps its counter too.
                self.attempts.pop(address_id, None)
