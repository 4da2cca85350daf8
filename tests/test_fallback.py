"""Answers while the manager serves from the memory fallback (Redis unreachable)."""

from .conftest import SignupActions
from .helpers import free_port


def test_resend_during_fallback_does_not_claim_there_is_no_registration(make_app, smtp):
    """A resend that finds nothing in memory answers 503 and sends no "no signup" email."""
    app = make_app(REDIS_URL=f"redis://127.0.0.1:{free_port()}/0", REDIS_TIMEOUT=0.2)
    assert app.extensions["pending"].degraded
    actions = SignupActions(app.test_client(), smtp)
    response = actions.resend("held-in-redis@example.com")
    assert response.status_code == 503
    assert "temporarily unavailable" in response.get_data(as_text=True)
    assert smtp.to("held-in-redis@example.com") == []


def test_resend_during_fallback_still_serves_memory_registrations(make_app, smtp):
    """A registration made during the fallback gets its new code as usual."""
    app = make_app(REDIS_URL=f"redis://127.0.0.1:{free_port()}/0", REDIS_TIMEOUT=0.2)
    actions = SignupActions(app.test_client(), smtp)
    assert actions.signup("fresh@example.com").status_code == 303
    assert actions.resend("fresh@example.com").status_code == 303
    code = actions.code_for("fresh@example.com", count=2)
    assert actions.verify("fresh@example.com", code).status_code == 303


def test_a_claim_is_finished_on_the_store_that_made_it():
    """Another request switching to the fallback just after this one's claim must not leave
    the promoted record behind in Redis (finish goes to the store that made the claim)."""
    from app.pending.manager import Limits, PendingRegistrationManager
    from app.pending.memory import MemoryStore
    from app.security import Digester

    from .test_store_contract import CODE, new_registration

    class SwitchAfterClaim(MemoryStore):
        """A primary store after whose claim another thread moves the manager to memory."""

        def check_code(self, *args, **kwargs):
            result = super().check_code(*args, **kwargs)
            manager.fallback.enter(RuntimeError("another request found Redis gone"))
            return result

    primary = SwitchAfterClaim()
    manager = PendingRegistrationManager(primary, Digester("k" * 64), Limits())
    manager.fallback._probe_loop = lambda: None  # keep the switch: no recovery in this test
    try:
        manager.add_registration(new_registration(manager, "ada@example.com"))
        address_id = manager.address_id("ada@example.com")
        result = manager.verify_and_remove("ada@example.com", CODE, lambda reg: "user")
        assert result.status == "verified" and manager.store is manager.fallback.memory
        assert primary.load(address_id) is None  # finished where it was claimed
    finally:
        manager.close()
