"""A password reset while the test's redis-server is stopped: the memory fallback of SPEC
section 4 holds the reset, answers 503 where memory cannot know, and moves what it holds into
Redis when Redis returns."""

from __future__ import annotations

import re
import time

import pytest

from ..e2e.conftest import PASSWORD, code_and_link, new_address
from ..e2e.test_password_reset_http import NEW_PASSWORD, Person, assert_redirect, reset_email
from .test_redis_faults import (  # noqa: F401 (fixtures)
    DIGESTER,
    RECOVERY_LIMIT,
    UNAVAILABLE,
    _redis_binary,
    assert_degraded,
    healthy_on_redis,
    redis_servers,
    start_app,
    wait_until,
)

pytestmark = [pytest.mark.slow, pytest.mark.redis]


def reset_key(email: str) -> str:
    """The Redis key of an address's reset (the app runs with the fault suite's SECRET)."""
    address_id = DIGESTER.address_id(email)
    return f"signup:reset:{{{address_id[0]}}}:{address_id}"


def counted(server, row) -> Person:
    """A Person whose every response is counted in the fault report's row."""
    person = Person(server.base_url)

    def count(response, *args, **kwargs):
        row.count(response.status_code)  # a hook that returns nothing keeps the response

    person.session.hooks["response"].append(count)
    return person


def verified(server, row, smtp_server, label: str) -> tuple[Person, str]:
    """A person who signed up and verified a new address."""
    person = counted(server, row)
    address = new_address(label)
    assert_redirect(person.signup(address), "/verify")
    code, _link = code_and_link(smtp_server, address)
    assert_redirect(person.verify(address, code), "/account")
    return person, address


def test_reset_during_a_redis_outage_follows_the_fallback_rules(redis_servers, start_app,
                                                                smtp_server, fault_report):
    """Redis stopped: a registered address still gets its reset (kept in memory) and can use
    it; an address memory knows nothing of answers 503 (no "no account" email, no wrong code
    counted); a reset asked for during the outage is moved into Redis when it returns, where
    its link works."""
    row = fault_report.row(
        "Password reset during a Redis outage (1 worker)",
        "redis-server SIGTERM (AOF on) after two accounts were made; restarted on the same port")
    redis_server = redis_servers.start(["--appendonly", "yes"])
    server = start_app(redis_server.url, workers=1, env={"REGISTRATION_MAX_ATTEMPTS": "3"})
    owner, first = verified(server, row, smtp_server, "outage-first")
    _other, second = verified(server, row, smtp_server, "outage-second")

    redis_server.stop()
    person = counted(server, row)
    assert_redirect(person.forgot(first), "/password/reset")
    assert_degraded(server)
    code, _link = reset_email(smtp_server, first, 2)

    # Memory cannot tell an unknown address from one held in Redis: 503, nothing sent, and
    # no attempt counted (with REGISTRATION_MAX_ATTEMPTS=3, four counted tries would lock).
    stranger = counted(server, row)
    unknown = new_address("outage-unknown")
    answer = stranger.forgot(unknown)
    assert answer.status_code == 503 and UNAVAILABLE in answer.text
    for _ in range(4):
        answer = stranger.reset(second, "123456")
        assert answer.status_code == 503 and UNAVAILABLE in answer.text
    assert smtp_server.to(unknown) == []

    assert_redirect(person.reset(first, code), "/account")
    assert_redirect(owner.get("/account"), "/login")  # the old session ended
    assert_redirect(counted(server, row).login(first, NEW_PASSWORD), "/account")

    # A reset asked for during the outage, used after it.
    late = counted(server, row)
    assert_redirect(late.forgot(second), "/password/reset")
    second_code, second_link = reset_email(smtp_server, second, 2)
    redis_server = redis_servers.restart(redis_server)
    answered = time.monotonic()
    wait_until(lambda: healthy_on_redis(server), RECOVERY_LIMIT + 2, 0.1, "healthy on redis")
    row.time_to_recover_s = round(time.monotonic() - answered, 2)
    assert row.time_to_recover_s <= RECOVERY_LIMIT
    client = redis_server.client()
    stored = client.hgetall(reset_key(second))
    assert stored and stored[b"e"].decode() == second, "the reset was not moved into Redis"
    assert not client.exists(reset_key(first))  # used during the outage: gone
    assert re.fullmatch(rb"\d+", stored[b"i"])
    # The 503 tries during the outage were not counted: the code is not locked out.
    assert_redirect(late.reset(second, second_code), "/account")
    assert late.get(second_link).status_code in (404, 503)  # dead (503 within the grace)
    assert_redirect(counted(server, row).login(second, NEW_PASSWORD), "/account")
    assert counted(server, row).login(second, PASSWORD).status_code == 400
    row.notes = ("5 expected 503s: a forgot for an unknown address and 4 reset codes for an "
                 "address with no reset in memory during the outage (none counted); a reset "
                 "held in memory was used during the outage, another was moved into Redis and "
                 "used after it; its dead link answers 404, or 503 within the grace")
    assert row.outcomes["5xx"] in (5, 6)
