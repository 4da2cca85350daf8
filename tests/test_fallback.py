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
