"""Contract tests: password resets and sign-in failures behave the same on memory, fakeredis and a
real redis-server (the manager's reset methods, the stores beneath them, the Redis layout)."""

from __future__ import annotations

import threading

import pytest

from app.pending.model import StoreUnavailable, new_op_id
from app.pending.resets import RESET_CODE
from app.security import new_link_token

from .test_store_contract import (  # noqa: F401 (fixtures)
    CODE,
    OTHER_CODE,
    PREFIX,
    SMALL_LIMITS,
    WRONG_CODE,
    Promoter,
    backend,
    manager,
    real,
    register,
)

EMAIL = "ada@example.com"


def reset_token(manager, email=EMAIL) -> str:
    """A reset link token, made as accounts.forgot_password makes it."""
    return new_link_token(manager.digester.address_id(email))


def issue(manager, email=EMAIL, code=CODE) -> str:
    """Store a reset code and link for `email`; returns the link token."""
    token = reset_token(manager, email)
    manager.issue_reset(email, code, token)
    return token


def by_code(manager, code, email=EMAIL, change=None):
    """One reset attempt with a code; returns (result, the change callable)."""
    change = change or Promoter()
    return manager.reset_with_code(email, code, change), change


def keys_of(backend) -> list[str]:
    """Every key in the backend's Redis (none for memory)."""
    if not backend.is_redis:
        return []
    return sorted(k.decode() for k in backend.client.scan_iter(count=500))


# -- code -------------------------------------------------------------------------------------
def test_right_code_changes_once_and_kills_code_and_link(manager):
    """A right code reaches `change` once; afterwards neither the code nor the link works."""
    token = issue(manager)
    result, change = by_code(manager, CODE)
    assert result.status == "verified" and [r.email for r in change.calls] == [EMAIL]
    assert result.result == f"user:{EMAIL}"
    again, change = by_code(manager, CODE)
    assert again.status == "unknown" and not change.calls
    assert manager.get_reset_by_token(token) is None
    assert manager.reset_with_link(token, Promoter()).status == "unknown"


def test_wrong_codes_hit_the_per_code_cap(manager):
    """CODE_MAX_ATTEMPTS wrong codes kill the code: the right one is then refused too."""
    issue(manager)
    statuses = [by_code(manager, WRONG_CODE)[0] for _ in range(SMALL_LIMITS["code_max"])]
    assert [r.status for r in statuses] == ["wrong"] * SMALL_LIMITS["code_max"]
    assert [r.attempts_left for r in statuses] == [2, 1, 0]
    result, change = by_code(manager, CODE)
    assert result.status == "code_dead" and not change.calls


def test_per_address_cap_survives_a_new_reset(manager, backend):
    """REGISTRATION_MAX_ATTEMPTS wrong codes per address, whatever is reissued: then locked."""
    for _ in range(SMALL_LIMITS["registration_max"] // 2):
        issue(manager)
        for _ in range(2):
            assert by_code(manager, WRONG_CODE)[0].status == "wrong"
    issue(manager)  # a fresh code does not help
    result, change = by_code(manager, CODE)
    assert result.status == "locked" and not change.calls
    assert 0 < result.retry_after <= SMALL_LIMITS["pending_ttl"]


def test_unknown_address_counts_like_a_wrong_code(manager):
    """No reset for the address: the same refusals as for a reset's wrong codes ("not right",
    then "tried too many times" after CODE_MAX_ATTEMPTS), counted, and the address locks."""
    code_max, reg_max = SMALL_LIMITS["code_max"], SMALL_LIMITS["registration_max"]
    results = [by_code(manager, CODE, email="nobody@example.com")[0].status
               for _ in range(reg_max)]
    assert results == ["unknown"] * code_max + ["code_dead"] * (reg_max - code_max)
    assert by_code(manager, CODE, email="nobody@example.com")[0].status == "locked"
    issue(manager, email="other@example.com")
    wrongs = [by_code(manager, WRONG_CODE, email="other@example.com")[0].status
              for _ in range(code_max + 1)]
    assert wrongs == ["wrong"] * code_max + ["code_dead"]


def test_expired_code_is_refused_but_the_link_works(backend):
    """After CODE_TTL_SECONDS the code is refused; the link lives RESET_TTL_SECONDS."""
    manager = backend.manager(code_ttl=60, reset_ttl=600)
    token = issue(manager)
    backend.clock.advance(61)
    assert by_code(manager, CODE)[0].status == "expired"
    assert manager.get_reset_by_token(token) is not None
    result = manager.reset_with_link(token, Promoter())
    assert result.status == "verified"


def test_expired_link_is_unknown_while_the_code_lives_on(backend):
    """With a code that outlives the link, the link dies at RESET_TTL_SECONDS."""
    manager = backend.manager(code_ttl=600, reset_ttl=60)
    token = issue(manager)
    backend.clock.advance(61)
    assert manager.get_reset_by_token(token) is None
    assert manager.reset_with_link(token, Promoter()).status == "unknown"
    assert by_code(manager, CODE)[0].status == "verified"


def test_a_new_reset_kills_the_old_code_and_link(manager):
    """Asking again: the earlier code and link stop working, the new ones work."""
    old_token = issue(manager, code=CODE)
    new_token = issue(manager, code=OTHER_CODE)
    assert manager.get_reset_by_token(old_token) is None
    assert by_code(manager, CODE)[0].status == "wrong"
    assert manager.get_reset_by_token(new_token) is not None
    assert by_code(manager, OTHER_CODE)[0].status == "verified"


def test_change_that_fails_keeps_the_reset(manager):
    """The database fails during the change: the same code works again, nothing counted."""
    issue(manager)
    failing = Promoter(error=RuntimeError("database locked"))
    with pytest.raises(RuntimeError):
        manager.reset_with_code(EMAIL, CODE, failing)
    assert len(failing.calls) == 1
    result, change = by_code(manager, CODE)
    assert result.status == "verified" and len(change.calls) == 1


def test_concurrent_right_codes_change_once(manager):
    """Two requests with the right code at the same moment: exactly one reaches `change`."""
    issue(manager)
    change = Promoter(delay=0.3)
    results = []
    threads = [threading.Thread(target=lambda: results.append(
        manager.reset_with_code(EMAIL, CODE, change).status)) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(change.calls) == 1
    assert sorted(results) in (["busy", "verified"], ["unknown", "verified"])


def test_a_retried_check_is_not_counted_twice(backend, manager):
    """The same op id sent again (a lost reply) gets the same answer and counts once."""
    issue(manager)
    store = manager.fallback.resets(manager.store)
    address_id = manager.reset_id(EMAIL)
    digests = manager.digester.code_digests(address_id, WRONG_CODE, RESET_CODE)
    lim = manager.limits
    op_id = new_op_id()

    def check():
        return store.check_code(address_id, digests, now=backend.clock(), code_ttl=lim.code_ttl,
                                code_max=lim.code_max, reg_max=lim.registration_max,
                                window=lim.pending_ttl, claim_seconds=5, op_id=op_id)

    first, second = check(), check()
    assert first == second and first.attempts_left == 2
    assert by_code(manager, WRONG_CODE)[0].attempts_left == 1


# -- link -------------------------------------------------------------------------------------
def test_reading_the_link_changes_nothing(backend, manager):
    """get_reset_by_token (the GET of a link) leaves every key and counter as it was."""
    token = issue(manager)
    before = {k: backend.client.dump(k) for k in keys_of(backend)} if backend.is_redis else None
    for _ in range(3):
        reset = manager.get_reset_by_token(token)
        assert reset.email == EMAIL and reset.code_attempts == 0
    if backend.is_redis:
        assert {k: backend.client.dump(k) for k in keys_of(backend)} == before
    assert by_code(manager, CODE)[0].status == "verified"  # the code is untouched too


def test_link_is_not_affected_by_wrong_codes(manager):
    """Even with the address locked by wrong codes, the link still resets the password."""
    token = issue(manager)
    for _ in range(SMALL_LIMITS["registration_max"]):
        by_code(manager, WRONG_CODE)
    assert by_code(manager, CODE)[0].status == "locked"
    assert manager.reset_with_link(token, Promoter()).status == "verified"


def test_signup_codes_and_links_are_not_reset_ones(manager):
    """A pending signup's code and link never pass as a reset's, nor the other way round."""
    signup_token = register(manager, EMAIL, code=CODE)
    assert by_code(manager, CODE)[0].status == "unknown"
    assert manager.get_reset_by_token(signup_token) is None
    reset = issue(manager, code=OTHER_CODE)
    assert manager.get_registration_by_token(reset) is None
    assert manager.verify_and_remove(EMAIL, OTHER_CODE, Promoter()).status == "wrong"
    assert manager.reset_with_link(signup_token, Promoter()).status == "unknown"


def test_malformed_tokens_are_unknown(manager):
    """A token without an address id finds nothing and changes nothing."""
    for token in ("abc", "x" * 100, "0" * 32 + "-short"):
        assert manager.get_reset_by_token(token) is None
        assert manager.reset_with_link(token, Promoter()).status == "unknown"


# -- sign-in failures -------------------------------------------------------------------------
def test_login_attempts_are_capped_per_address_and_refunded_on_success(backend):
    """LOGIN_MAX_FAILURES failed sign-ins, then a wait; a success takes its own count off."""
    manager = backend.manager(login_max_failures=3, login_window=900)
    wait, op_id = manager.take_login_attempt(EMAIL)
    assert wait == 0
    manager.refund_login_attempt(EMAIL, op_id)
    manager.refund_login_attempt(EMAIL, op_id)  # once only
    for _ in range(3):
        assert manager.take_login_attempt(EMAIL)[0] == 0
    wait, refused = manager.take_login_attempt(EMAIL)
    assert 0 < wait <= 900
    manager.refund_login_attempt(EMAIL, refused)  # a refused sign-in has nothing to refund
    assert manager.take_login_attempt(EMAIL)[0] > 0
    assert manager.take_login_attempt("other@example.com")[0] == 0  # per address
    backend.clock.advance(901)
    if not backend.is_redis:  # Redis expires the counter by its own clock
        assert manager.take_login_attempt(EMAIL)[0] == 0


def test_a_completed_reset_lifts_the_sign_in_throttle(backend):
    """The reset's finishing step also deletes the address's sign-in failures."""
    manager = backend.manager(login_max_failures=2)
    for _ in range(2):
        manager.take_login_attempt(EMAIL)
    assert manager.take_login_attempt(EMAIL)[0] > 0
    issue(manager)
    assert by_code(manager, CODE)[0].status == "verified"
    assert manager.take_login_attempt(EMAIL)[0] == 0


# -- Redis layout -----------------------------------------------------------------------------
def test_redis_layout_shares_one_hash_tag_and_holds_no_secret(real, redis_server):
    """Every key of a reset carries its shard's tag; no address, code or token in clear."""
    redis_server.client().flushall()
    manager = real.manager()
    token = issue(manager)
    by_code(manager, WRONG_CODE)
    manager.take_login_attempt(EMAIL)
    address_id = manager.digester.address_id(EMAIL)
    keys = keys_of(real)
    assert keys and all(f"{{{address_id[0]}}}" in key for key in keys), keys
    assert all(key.startswith(PREFIX) and EMAIL not in key for key in keys)
    stored = " ".join(str(real.client.dump(k)) for k in keys)
    assert CODE not in stored and token.split("-", 1)[1] not in stored
    reset = real.client.hgetall(f"{PREFIX}reset:{{{address_id[0]}}}:{address_id}")
    assert set(reset) == {b"e", b"c", b"t", b"i", b"x", b"a"}
    ttl = real.client.ttl(f"{PREFIX}reset:{{{address_id[0]}}}:{address_id}")
    assert 0 < ttl <= max(SMALL_LIMITS["code_ttl"], 3600)


# -- fallback ---------------------------------------------------------------------------------
def test_fallback_holds_resets_and_moves_them_into_redis(real, redis_server):
    """During a fallback resets and counters live in memory; recovery moves them into Redis,
    where the code still works and the counters keep counting."""
    redis_server.client().flushall()
    manager = real.manager(login_max_failures=3)
    manager.fallback._probe_loop = lambda: None  # the test drives recovery itself
    manager.fallback.enter(StoreUnavailable("test outage"))
    try:
        token = issue(manager)
        assert by_code(manager, WRONG_CODE)[0].status == "wrong"
        for _ in range(2):
            manager.take_login_attempt(EMAIL)
        # Memory cannot tell "no reset" from "held in Redis": no wrong-code answer, no count.
        stranger = by_code(manager, CODE, email="held-in-redis@example.com")[0]
        assert stranger.status == "unavailable"
        assert keys_of(real) == []
        manager.fallback.recover()
        address_id = manager.digester.address_id(EMAIL)
        assert real.client.hget(f"{PREFIX}reset:{{{address_id[0]}}}:{address_id}", "a") == b"1"
        assert real.client.get(f"{PREFIX}reset-attempts:{{{address_id[0]}}}:{address_id}") == b"1"
        assert real.client.get(f"{PREFIX}login-failures:{{{address_id[0]}}}:{address_id}") == b"2"
        assert manager.fallback.memory_resets.export_held() == []
        other = real.manager()  # another process, reading Redis only
        assert other.get_reset_by_token(token).email == EMAIL
        assert other.reset_with_code(EMAIL, CODE, Promoter()).status == "verified"
        assert manager.take_login_attempt(EMAIL)[0] == 0  # lifted by the reset
    finally:
        manager.close()


def test_recovery_keeps_a_reset_issued_later_in_redis(real, redis_server):
    """A reset written to Redis after the one held in memory is not overwritten by it."""
    redis_server.client().flushall()
    manager = real.manager()
    manager.fallback._probe_loop = lambda: None
    manager.fallback.enter(StoreUnavailable("test outage"))
    try:
        issue(manager, code=CODE)
        real.clock.advance(5)
        other = real.manager()
        other.issue_reset(EMAIL, OTHER_CODE, reset_token(other))
        manager.fallback.recover()
        assert other.reset_with_code(EMAIL, CODE, Promoter()).status == "wrong"
        assert other.reset_with_code(EMAIL, OTHER_CODE, Promoter()).status == "verified"
    finally:
        manager.close()


def test_removing_a_reset_kills_its_code_and_link(manager):
    """remove_reset (an address without an account keeps no reset): code and link dead."""
    token = issue(manager)
    assert manager.remove_reset(EMAIL) is True
    assert manager.remove_reset(EMAIL) is False
    assert manager.get_reset_by_token(token) is None
    assert by_code(manager, CODE)[0].status == "unknown"
