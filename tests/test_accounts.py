"""The service layer without HTTP: `accounts` called directly, in a request context of the app
(the memory store, or a Redis that does not answer), reading the emails the SMTP server got."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import text

from app import accounts
from app.extensions import db
from app.pending import get_manager
from app.security import new_link_token
from app.signup_state import SignupState

from .conftest import PASSWORD
from .helpers import code_from, free_port, link_from

EMAIL = "ada@example.com"
BROWSER_KEY = "the-signing-up-browser"
RESET_LINK_RE = re.compile(r"/password/reset/([A-Za-z0-9_\-]+)")


@pytest.fixture
def ctx(app):
    """A request context of the app on the memory store (sessions work, url_for works)."""
    with app.test_request_context():
        yield app


def signed_up(smtp, email=EMAIL, count=1):
    """Sign `email` up from the browser BROWSER_KEY; its code and link token."""
    outcome = accounts.signup(email, PASSWORD, "Ada", "en", BROWSER_KEY)
    assert outcome == accounts.SignupOutcome(email_sent=True)
    message = smtp.wait_for(email, count)
    assert message["Subject"] == "Your verification code"
    return code_from(message), link_from(message).rsplit("/", 1)[1]


def wrong(code: str) -> str:
    """A code that is not `code`."""
    return f"{(int(code) + 1) % 1_000_000:06d}"


def test_signup_then_the_code_from_the_signing_up_browser_promotes(ctx, smtp):
    """Signup stores a pending registration and emails a code; the right code promotes it."""
    code, _token = signed_up(smtp)
    assert get_manager().get_registration(EMAIL).name == "Ada"
    assert accounts.find_user(EMAIL) is None

    result = accounts.verify_code(EMAIL, code, signup_email=EMAIL, browser_key=BROWSER_KEY)

    assert result.status == "verified"
    assert isinstance(result.result, accounts.Promotion)
    assert result.result.already_verified is False
    assert result.result.user.email == EMAIL == accounts.find_user(EMAIL).email
    assert get_manager().get_registration(EMAIL) is None


def test_the_manager_keeps_digests_only(ctx, smtp):
    """What signup stores holds neither the emailed code nor the link token."""
    code, token = signed_up(smtp)
    reg = get_manager().get_registration(EMAIL)
    assert code not in (reg.code_digest, reg.token_digest, reg.browser_digest)
    assert token not in (reg.code_digest, reg.token_digest, reg.browser_digest)
    assert BROWSER_KEY not in reg.browser_digest


def test_another_browser_needs_the_signup_password_with_the_code(ctx, smtp):
    """Without the signing-up browser's key, a right code needs the password too."""
    code, _token = signed_up(smtp)
    refused = accounts.verify_code(EMAIL, code, password="not the password")
    assert refused.status == "wrong_password"
    assert accounts.find_user(EMAIL) is None
    assert accounts.verify_code(EMAIL, code, password=PASSWORD).status == "verified"


def test_the_link_shows_its_registration_then_verifies(ctx, smtp):
    """registration_for_link reads without changing; verify_link promotes."""
    _code, token = signed_up(smtp)
    mine = accounts.registration_for_link(token, EMAIL, BROWSER_KEY)
    assert mine == accounts.LinkRegistration(EMAIL, same_browser=True)
    assert accounts.registration_for_link(token) == accounts.LinkRegistration(EMAIL, False)
    assert accounts.registration_for_link(token[:-1] + ("A" if token[-1] != "A" else "B")) is None
    assert accounts.registration_for_link("x" * 500) is None

    result = accounts.verify_link(token, signup_email=EMAIL, browser_key=BROWSER_KEY)

    assert result.status == "verified" and result.result.user.email == EMAIL
    assert accounts.registration_for_link(token, EMAIL, BROWSER_KEY) is None
    assert accounts.verify_link(token, signup_email=EMAIL, browser_key=BROWSER_KEY).status == \
        "unknown"


def test_the_link_from_another_browser_with_a_wrong_password(ctx, smtp):
    """Another browser's link POST with a wrong password is refused and promotes nothing."""
    _code, token = signed_up(smtp)
    assert accounts.verify_link(token, password="not the password").status == "wrong_password"
    assert accounts.find_user(EMAIL) is None
    assert accounts.verify_link(token, password=PASSWORD).status == "verified"


def test_wrong_codes_count_down_then_kill_the_code(app, ctx, smtp):
    """Each wrong code is counted; after CODE_MAX_ATTEMPTS even the right one is dead."""
    code, _token = signed_up(smtp)
    tries = app.config["CODE_MAX_ATTEMPTS"]
    lefts = []
    for _ in range(tries):
        result = accounts.verify_code(EMAIL, wrong(code), signup_email=EMAIL,
                                      browser_key=BROWSER_KEY)
        assert result.status == "wrong"
        lefts.append(result.attempts_left)
    assert lefts == list(range(tries - 1, -1, -1))
    dead = accounts.verify_code(EMAIL, code, signup_email=EMAIL, browser_key=BROWSER_KEY)
    assert dead.status == "code_dead"
    assert accounts.find_user(EMAIL) is None


def test_resend_replaces_the_code_and_link(ctx, smtp):
    """A resend emails a new code and link; the old ones stop working, the new ones work."""
    old_code, old_token = signed_up(smtp)
    assert accounts.resend(EMAIL) == accounts.SignupOutcome(email_sent=True)
    message = smtp.wait_for(EMAIL, 2)
    new_code, new_token = code_from(message), link_from(message).rsplit("/", 1)[1]
    assert new_token != old_token
    assert accounts.registration_for_link(old_token) is None
    if new_code != old_code:  # one time in a million the same six digits come again
        refused = accounts.verify_code(EMAIL, old_code, signup_email=EMAIL,
                                       browser_key=BROWSER_KEY)
        assert refused.status == "wrong"
    result = accounts.verify_code(EMAIL, new_code, signup_email=EMAIL, browser_key=BROWSER_KEY)
    assert result.status == "verified"


def test_resend_answers_alike_for_every_address(ctx, smtp):
    """An unknown address and an account get the same answer, each its own email."""
    assert accounts.resend("nobody@example.com") == accounts.SignupOutcome(email_sent=True)
    assert smtp.wait_for("nobody@example.com")["Subject"] == \
        "No signup is waiting for this address"
    code, _token = signed_up(smtp)
    accounts.verify_code(EMAIL, code, signup_email=EMAIL, browser_key=BROWSER_KEY)
    assert accounts.resend(EMAIL) == accounts.SignupOutcome(email_sent=True)
    assert smtp.wait_for(EMAIL, 2)["Subject"] == "You already have an account"


def test_resend_over_the_allowance_sends_nothing(make_app, smtp):
    """Past RESEND_COOLDOWN_SECONDS' allowance the answer says when, and nothing is sent."""
    app = make_app(RESEND_COOLDOWN_SECONDS=60)
    with app.test_request_context():
        signed_up(smtp)
        outcome = accounts.resend(EMAIL)
        assert outcome.email_sent is False and 0 < outcome.retry_after <= 60
        assert len(smtp.to(EMAIL)) == 1


def test_promote_twice_gives_the_one_user_already_verified(ctx, smtp):
    """A second promotion of the same address returns the existing row, marked as such."""
    signed_up(smtp)
    reg = get_manager().get_registration(EMAIL)
    first = accounts.promote(reg)
    again = accounts.promote(reg)
    assert first.already_verified is False
    assert again.already_verified is True and again.user.id == first.user.id
    assert db.session.execute(text("SELECT COUNT(*) FROM users")).scalar_one() == 1


def test_signup_status_follows_this_browsers_signup(ctx, smtp):
    """none before a signup, pending until the account exists, then verified."""
    state = SignupState({})
    assert accounts.signup_status(state.signup_email, state.signup_at) == "none"
    code, _token = signed_up(smtp)
    state.remember_signup(EMAIL, 0.0, BROWSER_KEY)
    assert state.signed_up(EMAIL) and not state.signed_up("eve@example.com")
    assert accounts.signup_status(state.signup_email, state.signup_at) == "pending"
    accounts.verify_code(EMAIL, code, signup_email=EMAIL, browser_key=BROWSER_KEY)
    assert accounts.signup_status(state.signup_email, state.signup_at) == "verified"


def test_signup_state_remembers_the_allowance_per_address(ctx):
    """The resend countdown holds for the address it was taken for, not another."""
    state = SignupState({})
    state.remember_email_allowance(EMAIL, 30)
    assert 29 <= state.seconds_until_resend(EMAIL) <= 30
    assert state.seconds_until_resend("eve@example.com") == 0
    assert state.seconds_until_resend(None) == 0


def verified_user(smtp):
    """A verified account for EMAIL with PASSWORD."""
    code, _token = signed_up(smtp)
    return accounts.verify_code(EMAIL, code, signup_email=EMAIL,
                                browser_key=BROWSER_KEY).result.user


def test_sign_in(ctx, smtp):
    """The right password signs in; a wrong one and an unknown address read alike."""
    user = verified_user(smtp)
    ok = accounts.attempt_sign_in(EMAIL, PASSWORD, "key")
    assert ok.status == "ok" and ok.user.id == user.id
    assert accounts.attempt_sign_in(EMAIL, "not the password", "key").status == "wrong"
    assert accounts.attempt_sign_in("nobody@example.com", PASSWORD, "key").status == "wrong"
    accounts.sign_in(ok.user)
    assert accounts.current_user().id == user.id
    accounts.sign_out()
    assert accounts.current_user() is None


def test_sign_in_with_the_signup_password_before_verifying(ctx, smtp):
    """A pending registration's password gets "unverified" and a new code for this browser."""
    signed_up(smtp)
    outcome = accounts.attempt_sign_in(EMAIL, PASSWORD, "another-browser")
    assert outcome.status == "unverified" and outcome.email_sent
    code = code_from(smtp.wait_for(EMAIL, 2))
    result = accounts.verify_code(EMAIL, code, signup_email=EMAIL, browser_key="another-browser")
    assert result.status == "verified"


def test_too_many_failed_sign_ins_lock_the_address(make_app, smtp):
    """Past LOGIN_MAX_FAILURES the address is locked, right password or not."""
    app = make_app(LOGIN_MAX_FAILURES=2)
    with app.test_request_context():
        verified_user(smtp)
        for _ in range(2):
            assert accounts.attempt_sign_in(EMAIL, "not the password", "k").status == "wrong"
        locked = accounts.attempt_sign_in(EMAIL, PASSWORD, "k")
        assert locked.status == "locked" and locked.retry_after > 0


def test_reset_with_the_emailed_code_and_link(ctx, smtp):
    """A forgotten password is reset by code, then by link; the new password signs in."""
    verified_user(smtp)
    assert accounts.forgot_password(EMAIL, "en") == accounts.SignupOutcome(email_sent=True)
    message = smtp.wait_for(EMAIL, 2)
    assert message["Subject"] == "Your password reset code"
    result = accounts.reset_password("a brand new passphrase", "en", email=EMAIL,
                                     code=code_from(message))
    assert result.status == "verified" and result.result.email == EMAIL
    assert smtp.wait_for(EMAIL, 3)["Subject"] == "Your password was changed"
    assert accounts.attempt_sign_in(EMAIL, "a brand new passphrase", "k").status == "ok"
    assert accounts.attempt_sign_in(EMAIL, PASSWORD, "k").status == "wrong"

    accounts.forgot_password(EMAIL, "en")
    token = RESET_LINK_RE.search(smtp.wait_for(EMAIL, 4).get_body(("plain",)).get_content())[1]
    assert accounts.reset_for_link(token).email == EMAIL
    assert accounts.reset_password("yet another passphrase", "en", token=token).status == \
        "verified"
    assert accounts.reset_for_link(token) is None
    assert accounts.attempt_sign_in(EMAIL, "yet another passphrase", "k").status == "ok"


def test_forgot_password_for_an_unknown_address(ctx, smtp):
    """No account: the same answer, and a "no account uses this address" email."""
    assert accounts.forgot_password("nobody@example.com", "en") == \
        accounts.SignupOutcome(email_sent=True)
    assert smtp.wait_for("nobody@example.com")["Subject"] == "No account uses this address"


def test_change_password(ctx, smtp):
    """A wrong current password changes nothing; the right one changes it and emails."""
    user = verified_user(smtp)
    assert accounts.change_password(user, "not the password", "a new passphrase", "en") is False
    assert accounts.verify_password(user, PASSWORD)
    assert accounts.change_password(user, PASSWORD, "a new passphrase", "en") is True
    assert accounts.verify_password(user, "a new passphrase")
    assert smtp.wait_for(EMAIL, 2)["Subject"] == "Your password was changed"


def test_delete_account(ctx, smtp):
    """A wrong password deletes nothing; the right one removes the row and says goodbye."""
    user = verified_user(smtp)
    assert accounts.delete_account(user, "not the password", "en") is False
    assert accounts.find_user(EMAIL) is not None
    assert accounts.delete_account(user, PASSWORD, "en") is True
    assert accounts.find_user(EMAIL) is None
    assert smtp.wait_for(EMAIL, 2)["Subject"] == "Your account was deleted"


def test_a_store_that_does_not_answer_is_unavailable(make_app, smtp):
    """Redis down with the fallback off: every store operation raises accounts.Unavailable."""
    app = make_app(REDIS_URL=f"redis://127.0.0.1:{free_port()}/0", REDIS_TIMEOUT=0.2,
                   PENDING_FALLBACK=False)
    with app.test_request_context():
        for call in (lambda: accounts.signup(EMAIL, PASSWORD, "", "en", BROWSER_KEY),
                     lambda: accounts.resend(EMAIL),
                     lambda: accounts.verify_code(EMAIL, "123456"),
                     lambda: accounts.forgot_password(EMAIL, "en")):
            with pytest.raises(accounts.PendingStoreUnavailable):
                call()
    assert smtp.to(EMAIL) == []


def test_the_fallback_cannot_say_there_is_none(make_app, smtp):
    """Serving from memory, "no registration" may be wrong: resend and links are Unavailable."""
    app = make_app(REDIS_URL=f"redis://127.0.0.1:{free_port()}/0", REDIS_TIMEOUT=0.2)
    with app.test_request_context():
        assert get_manager().degraded
        with pytest.raises(accounts.Unavailable):
            accounts.resend("held-in-redis@example.com")
        # A well-formed link token for an address this process holds nothing for.
        token = new_link_token(get_manager().address_id("held-in-redis@example.com"))
        with pytest.raises(accounts.Unavailable):
            accounts.registration_for_link(token)
    assert smtp.to("held-in-redis@example.com") == []


def test_a_database_that_does_not_answer_is_unavailable(ctx, smtp):
    """The users table gone: signup raises DatabaseUnavailable, an accounts.Unavailable."""
    db.session.execute(text("DROP TABLE users"))
    db.session.commit()
    with pytest.raises(accounts.DatabaseUnavailable) as raised:
        accounts.signup(EMAIL, PASSWORD, "", "en", BROWSER_KEY)
    assert isinstance(raised.value, accounts.Unavailable)
    assert smtp.to(EMAIL) == []
