"""Forgotten passwords, resets by code and by link, sign-in of an unfinished signup and the
per-account sign-in throttle, through the Flask test client on memory and a real redis-server.

The same flows over HTTP against gunicorn are in tests/e2e/test_password_reset_http.py.
"""

from __future__ import annotations

import html
import re

import pytest

from app import accounts

from .helpers import (PASSWORD, SignupActions, assert_redirect, code_from, csrf_token, free_port,
                      page_text, path_of, samples, signed_in_as, signed_up, text_of, users, value)

EMAIL = "ada@example.com"
NEW_PASSWORD = "a brand new long passphrase"
RESET_LINK_RE = re.compile(r"(https?://\S+/password/reset/[A-Za-z0-9_\-]+)")
NOT_RIGHT = "That code is not right (or has expired)."


class ResetActions(SignupActions):
    """SignupActions plus the forgotten-password pages."""

    def forgot(self, email):
        """Ask for help with a forgotten password."""
        return self.post("/password/forgot", {"email": email})

    def reset(self, email, code, password=NEW_PASSWORD, confirm=None):
        """Set a new password with a code."""
        return self.post("/password/reset", {
            "email": email, "code": code, "password": password,
            "confirm": password if confirm is None else confirm})

    def reset_by_link(self, link, password=NEW_PASSWORD, confirm=None):
        """Open the emailed link's page and set a new password there."""
        return self.post(path_of(link), {"password": password,
                                         "confirm": password if confirm is None else confirm})

    def reset_link_for(self, address, count=1):
        """The reset link in the `count`-th email to `address`."""
        match = RESET_LINK_RE.search(text_of(self.email_to(address, count)))
        assert match, "no reset link in the email"
        return match.group(1)


@pytest.fixture
def reset_app(build):
    """The app on the parametrised backend (memory, real redis-server)."""
    return build()


@pytest.fixture
def owner(reset_app, smtp):
    """A browser that signed up and verified EMAIL (signed in)."""
    actions = ResetActions(reset_app.test_client(), smtp)
    code, _link = signed_up(actions)
    assert_redirect(actions.verify(EMAIL, code), "/account")
    return actions


@pytest.fixture
def stranger(reset_app, smtp):
    """Another browser: the person who forgot the password, on another device."""
    return ResetActions(reset_app.test_client(), smtp)


def mails(smtp, address=EMAIL) -> list:
    """Every email to `address`, oldest first."""
    return smtp.to(address)


def masked_csrf(text: str) -> str:
    """A page with its CSRF tokens replaced (the only part that differs between visitors)."""
    return re.sub(r'(name="csrf_token"[^>]*value=")[^"]+"', r'\1…"', text)


def first_errors(response) -> list[str]:
    """The messages of the page's error summary."""
    found = re.findall(r"<li>(?:<a [^>]*>)?([^<]*)(?:</a>)?</li>", response.get_data(as_text=True))
    return [html.unescape(message).strip() for message in found]


# -- the way in -------------------------------------------------------------------------------
def test_login_page_links_to_forgot(reset_app):
    """/login offers the way back in."""
    page = reset_app.test_client().get("/login")
    assert 'href="/password/forgot"' in page.text


def test_reset_by_code_signs_in_with_the_new_password(owner, stranger, smtp, reset_app):
    """Forgot → reset code by email → new password → /account; the old password stops working,
    a "your password was changed" email arrives, the code and the link are dead afterwards."""
    before = len(mails(smtp))
    assert_redirect(stranger.forgot(EMAIL), "/password/reset")
    message = stranger.email_to(EMAIL, before + 1)
    assert message["Subject"] == "Your password reset code"
    code, link = code_from(message), stranger.reset_link_for(EMAIL, before + 1)
    page = stranger.client.get("/password/reset")
    assert "a***@example.com" in page_text(page) and 'value="ada@example.com"' in page.text

    assert_redirect(stranger.reset(EMAIL, code), "/account")
    assert signed_in_as(stranger)
    changed = stranger.email_to(EMAIL, before + 2)
    assert changed["Subject"] == "Your password was changed"
    assert "/password/forgot" in text_of(changed)

    assert stranger.login(EMAIL, PASSWORD).status_code == 400
    assert_redirect(ResetActions(reset_app.test_client(), smtp).login(EMAIL, NEW_PASSWORD),
                    "/account")
    again = stranger.reset(EMAIL, code, password="yet another long passphrase")
    assert again.status_code == 400 and NOT_RIGHT in page_text(again)
    assert stranger.client.get(path_of(link)).status_code == 404
    (row,) = users(reset_app)
    assert row[1].startswith("$argon2id$")


def test_reset_by_link_get_changes_nothing_post_resets(owner, stranger, smtp, reset_app,
                                                     redis_dump):
    """GET of the link shows the form and changes nothing (a mail scanner); POST resets."""
    stranger.forgot(EMAIL)
    link = stranger.reset_link_for(EMAIL, 2)
    state = redis_dump()
    for browser in (stranger, ResetActions(reset_app.test_client(), smtp)):
        page = browser.client.get(path_of(link))
        assert page.status_code == 200
        assert page.headers["Referrer-Policy"] == "no-referrer"
        assert 'name="password"' in page.text and 'name="confirm"' in page.text
        assert "a***@example.com" in page_text(page)
    redis_dump.assert_unchanged(state)
    assert stranger.login(EMAIL, PASSWORD).status_code in (302, 303)  # still the old password

    assert_redirect(stranger.reset_by_link(link), "/account")
    assert signed_in_as(stranger)
    dead = stranger.client.get(path_of(link))
    assert dead.status_code == 404 and "no longer valid" in page_text(dead)
    assert 'href="/password/forgot"' in dead.text


def test_a_successful_reset_ends_every_other_session(owner, stranger, smtp):
    """The owner's signed-in browser (and any copy of its cookie) is signed out by a reset."""
    copied = ResetActions(owner.client.application.test_client(), smtp)
    copied.client.set_cookie("session", owner.client.get_cookie("session").value)
    assert signed_in_as(owner) and signed_in_as(copied)
    stranger.forgot(EMAIL)
    assert_redirect(stranger.reset(EMAIL, stranger.code_for(EMAIL, 2)), "/account")
    assert_redirect(owner.client.get("/account"), "/login")
    assert_redirect(copied.client.get("/account"), "/login")
    assert signed_in_as(stranger)


@pytest.mark.parametrize("password, confirm, words", [
    ("short", "short", "Use at least 8 characters."),
    ("password123", "password123", "too common"),
    ("ada@example.com", "ada@example.com", "Don't use your email address"),
    (NEW_PASSWORD, "something else entirely", "not the same"),
])
def test_new_password_follows_the_signup_rules(owner, stranger, password, confirm, words):
    """A refused new password: 400 in words, and the code is not spent (it works afterwards)."""
    stranger.forgot(EMAIL)
    code = stranger.code_for(EMAIL, 2)
    response = stranger.reset(EMAIL, code, password=password, confirm=confirm)
    assert response.status_code == 400 and words in page_text(response)
    assert 'value="' + code not in response.text  # codes and passwords never come back
    link = stranger.reset_link_for(EMAIL, 2)
    response = stranger.reset_by_link(link, password=password, confirm=confirm)
    assert response.status_code == 400 and words in page_text(response)
    assert_redirect(stranger.reset(EMAIL, code), "/account")


# -- the same answer for every address --------------------------------------------------------
def test_forgot_and_reset_answers_are_byte_identical_for_every_state(reset_app, smtp):
    """One address, asked about while unknown, pending and verified: the forgot answer, the
    page it leads to and a wrong code's answer are the same bytes (but the CSRF tokens); only
    the email differs."""
    answers = []
    emails = []

    def ask():
        browser = ResetActions(reset_app.test_client(), smtp)
        count = len(mails(smtp))
        forgot = browser.forgot(EMAIL)
        page = browser.client.get("/password/reset")
        found = re.search(r"^\s{4}(\d{6})\s*$", text_of(browser.email_to(EMAIL, count + 1)),
                          re.MULTILINE)  # no code in the "no account" email
        wrong = browser.reset(EMAIL, "111111" if found and found.group(1) == "000000"
                              else "000000")
        answers.append([(r.status_code, r.headers.get("Location"),
                         sorted(k for k in r.headers.keys() if k != "Set-Cookie"),
                         masked_csrf(r.get_data(as_text=True))) for r in (forgot, page, wrong)])
        emails.append(browser.email_to(EMAIL, count + 1)["Subject"])
        with browser.client.session_transaction() as session:
            answers[-1].append(sorted(session.keys()))

    ask()  # unknown
    owner = ResetActions(reset_app.test_client(), smtp)
    code, _link = signed_up(owner)
    ask()  # pending
    assert owner.verify(EMAIL, owner.code_for(EMAIL, len(mails(smtp)))).status_code == 303
    ask()  # verified
    assert answers[0] == answers[1] == answers[2]
    assert answers[0][0][0] == 303 and answers[0][2][0] == 400
    assert emails == ["No account uses this address", "Your verification code",
                      "Your password reset code"]


def test_forgot_for_a_pending_signup_sends_a_fresh_verification_code(reset_app, smtp):
    """The pending signup can be finished: a new code (the old one dead), nothing else."""
    signer = ResetActions(reset_app.test_client(), smtp)
    old_code, _ = signed_up(signer)
    other = ResetActions(reset_app.test_client(), smtp)
    assert_redirect(other.forgot(EMAIL), "/password/reset")
    message = other.email_to(EMAIL, 2)
    assert message["Subject"] == "Your verification code"
    new_code = code_from(message)
    if new_code != old_code:
        assert signer.verify(EMAIL, old_code).status_code == 400
    assert_redirect(signer.verify(EMAIL, new_code), "/account")


def test_forgot_for_an_unknown_address_says_sign_up(reset_app, smtp, stranger):
    """No account: the email says so and links to signup; nothing is stored."""
    assert_redirect(stranger.forgot("nobody@example.com"), "/password/reset")
    message = stranger.email_to("nobody@example.com")
    assert message["Subject"] == "No account uses this address"
    assert "no account uses this address" in text_of(message)
    assert "/signup" in text_of(message)
    with reset_app.app_context():
        manager = reset_app.extensions["pending"]
        assert manager.get_registration("nobody@example.com") is None
        resets = manager.fallback.resets(manager.store)
        assert not resets.exists(manager.reset_id("nobody@example.com"))


def test_already_have_an_account_email_points_to_the_reset_page(owner, stranger):
    """A signup with a taken address: the email offers sign-in and a new password."""
    stranger.signup(EMAIL, password="another long passphrase")
    message = text_of(stranger.email_to(EMAIL, 2))
    assert "/login" in message and "/password/forgot" in message


def test_every_forgot_counts_against_the_email_allowance(build, smtp):
    """Inside the cooldown the answer is 429 with Retry-After for every address, and no email."""
    app = build(RESEND_COOLDOWN_SECONDS=60)
    signer = ResetActions(app.test_client(), smtp)
    signed_up(signer, "pending@example.com")
    owner = ResetActions(app.test_client(), smtp)
    signed_up(owner, "owner@example.com")
    # The signup emails took the allowance of both; an unknown address takes it now.
    assert_redirect(owner.forgot("unknown@example.com"), "/password/reset")
    for address in ("pending@example.com", "owner@example.com", "unknown@example.com"):
        count = len(smtp.to(address))
        response = ResetActions(app.test_client(), smtp).forgot(address)
        assert response.status_code == 429, address
        assert 0 < int(response.headers["Retry-After"]) <= 60
        assert "You can ask for a new code in" in page_text(response)
        assert len(smtp.to(address)) == count


# -- wrong codes ------------------------------------------------------------------------------
def test_wrong_reset_codes_hit_the_caps(build, smtp):
    """CODE_MAX_ATTEMPTS wrong codes kill the code; REGISTRATION_MAX_ATTEMPTS lock the address
    (429, Retry-After, in words) whatever is asked again; the link still works."""
    app = build(CODE_MAX_ATTEMPTS=2, REGISTRATION_MAX_ATTEMPTS=4)
    owner = ResetActions(app.test_client(), smtp)
    code, _ = signed_up(owner)
    assert_redirect(owner.verify(EMAIL, code), "/account")
    guesser = ResetActions(app.test_client(), smtp)
    guesser.forgot(EMAIL)
    code = guesser.code_for(EMAIL, 2)
    wrong = f"{(int(code) + 1) % 10**6:06d}"
    for _ in range(2):
        assert guesser.reset(EMAIL, wrong).status_code == 400
    dead = guesser.reset(EMAIL, code)
    assert dead.status_code == 400 and NOT_RIGHT in page_text(dead)
    guesser.forgot(EMAIL)
    code, link = guesser.code_for(EMAIL, 3), guesser.reset_link_for(EMAIL, 3)
    assert guesser.reset(EMAIL, wrong if wrong != code else "999999").status_code == 400
    locked = guesser.reset(EMAIL, code)
    assert locked.status_code == 429
    assert int(locked.headers["Retry-After"]) > 0
    assert "Too many wrong codes for this address" in page_text(locked)
    assert_redirect(guesser.reset_by_link(link), "/account")


def test_unknown_and_dead_links_are_a_404_page_in_words(stranger):
    """A link that never existed, or a signup's verification link, answers 404 (GET and POST)
    with a page offering a new one."""
    _code, verification_link = signed_up(stranger)
    signup_token = verification_link.rsplit("/", 1)[1]
    token = csrf_token(stranger.client.get("/password/forgot").text)
    for bad in ("0" * 32 + "-" + "a" * 43, "not-a-token", "x" * 300, signup_token):
        for page in (stranger.client.get(f"/password/reset/{bad}"),
                     stranger.client.post(f"/password/reset/{bad}", data={
                         "password": NEW_PASSWORD, "confirm": NEW_PASSWORD,
                         "csrf_token": token})):
            assert page.status_code == 404
            assert "This reset link is no longer valid" in page_text(page)
            assert 'href="/password/forgot"' in page.text


# -- sign-in of an unfinished signup ----------------------------------------------------------
def test_login_with_the_signup_password_of_a_pending_address_goes_to_verify(reset_app, smtp):
    """The right signup password: "not verified yet", a new code, /verify as the signing-up
    browser (the code alone verifies here)."""
    signer = ResetActions(reset_app.test_client(), smtp)
    signed_up(signer)
    other = ResetActions(reset_app.test_client(), smtp)
    response = other.login(EMAIL, PASSWORD)
    assert_redirect(response, "/verify")
    page = other.client.get("/verify")
    assert "not verified yet" in page_text(page)
    assert 'name="password"' not in page.text  # this browser needs no password now
    code = other.code_for(EMAIL, 2)
    assert_redirect(other.verify(EMAIL, code), "/account")
    assert signed_in_as(other)


def test_login_with_a_wrong_password_for_a_pending_address_says_nothing(reset_app, smtp):
    """A wrong password: the ordinary "do not match" answer, no email, nothing changed."""
    signer = ResetActions(reset_app.test_client(), smtp)
    code, _ = signed_up(signer)
    other = ResetActions(reset_app.test_client(), smtp)
    pending = other.login(EMAIL, "not the signup password")
    unknown = other.login("nobody@example.com", "not the signup password")
    for response in (pending, unknown):
        assert response.status_code == 400
        assert "do not match an account" in page_text(response)
    assert masked_csrf(pending.text).replace(EMAIL, "") == \
        masked_csrf(unknown.text).replace("nobody@example.com", "")
    assert len(mails(smtp)) == 1
    assert_redirect(signer.verify(EMAIL, code), "/account")


# -- per-account sign-in throttling -----------------------------------------------------------
def test_failed_sign_ins_are_capped_per_account_and_a_reset_lifts_it(build, smtp):
    """LOGIN_MAX_FAILURES wrong passwords, from any browser: then 429 in words with Retry-After,
    even with the right password, for a known and an unknown address alike; a reset lifts it."""
    app = build(LOGIN_MAX_FAILURES=3)
    owner = ResetActions(app.test_client(), smtp)
    code, _ = signed_up(owner)
    assert_redirect(owner.verify(EMAIL, code), "/account")
    for address in (EMAIL, "nobody@example.com"):
        for _ in range(3):
            attacker = ResetActions(app.test_client(), smtp)
            assert attacker.login(address, "guessed password").status_code == 400
        refused = ResetActions(app.test_client(), smtp).login(address, PASSWORD)
        assert refused.status_code == 429, address
        assert 0 < int(refused.headers["Retry-After"]) <= 900
        assert "Too many failed sign-ins for this address" in page_text(refused)
        assert 'href="/password/forgot"' in refused.text
    assert signed_in_as(owner)  # sessions already signed in are not touched
    other = ResetActions(app.test_client(), smtp).login("other@example.com", PASSWORD)
    assert other.status_code == 400  # counted per address
    person = ResetActions(app.test_client(), smtp)
    assert_redirect(person.forgot(EMAIL), "/password/reset")  # the reset path always works
    assert_redirect(person.reset(EMAIL, person.code_for(EMAIL, 2)), "/account")
    assert_redirect(ResetActions(app.test_client(), smtp).login(EMAIL, NEW_PASSWORD), "/account")


def test_successful_sign_ins_do_not_count(build, smtp):
    """Only failures count: many right sign-ins leave room for the cap's mistakes."""
    app = build(LOGIN_MAX_FAILURES=2)
    owner = ResetActions(app.test_client(), smtp)
    code, _ = signed_up(owner)
    assert_redirect(owner.verify(EMAIL, code), "/account")
    for _ in range(4):
        assert_redirect(ResetActions(app.test_client(), smtp).login(EMAIL), "/account")
    browser = ResetActions(app.test_client(), smtp)
    assert browser.login(EMAIL, "typo in it").status_code == 400
    assert_redirect(browser.login(EMAIL), "/account")


# -- outages ----------------------------------------------------------------------------------
def test_during_the_fallback_unknown_resets_answer_503(make_app, smtp):
    """Redis unreachable: a forgot for an address memory knows nothing of, and a code or link
    that memory does not hold, answer 503 in words (not "no account", not "wrong code")."""
    app = make_app(REDIS_URL=f"redis://127.0.0.1:{free_port()}/0", REDIS_TIMEOUT=0.2)
    assert app.extensions["pending"].degraded
    browser = ResetActions(app.test_client(), smtp)
    for response in (browser.forgot("held-in-redis@example.com"),
                     browser.reset("held-in-redis@example.com", "123456"),
                     browser.client.get("/password/reset/" + "0" * 32 + "-" + "a" * 43)):
        assert response.status_code == 503
        assert "temporarily unavailable" in page_text(response)
    assert smtp.to("held-in-redis@example.com") == []


def test_during_the_fallback_a_registered_address_resets_from_memory(make_app, smtp):
    """Redis unreachable: the reset is kept in memory, and its code works in this process."""
    app = make_app(REDIS_URL=f"redis://127.0.0.1:{free_port()}/0", REDIS_TIMEOUT=0.2)
    owner = ResetActions(app.test_client(), smtp)
    code, _ = signed_up(owner)
    assert_redirect(owner.verify(EMAIL, code), "/account")
    person = ResetActions(app.test_client(), smtp)
    assert_redirect(person.forgot(EMAIL), "/password/reset")
    assert_redirect(person.reset(EMAIL, person.code_for(EMAIL, 2)), "/account")


def test_database_failure_during_a_reset_keeps_the_code(owner, stranger, monkeypatch):
    """The users database fails while the password is stored: 503, and the code works later."""
    stranger.forgot(EMAIL)
    code = stranger.code_for(EMAIL, 2)

    def broken(user, password):
        raise accounts.DatabaseUnavailable("OperationalError")

    monkeypatch.setattr(accounts, "set_password", broken)
    response = stranger.reset(EMAIL, code)
    assert response.status_code == 503 and "temporarily unavailable" in page_text(response)
    monkeypatch.undo()
    assert_redirect(stranger.reset(EMAIL, code), "/account")


# -- metrics and languages --------------------------------------------------------------------
def test_metrics_count_resets_and_failed_sign_ins(build, smtp):
    """signup_password_resets_total{stage} and signup_login_failures_total follow the flow."""
    app = build(LOGIN_MAX_FAILURES=1)
    client = app.test_client()
    before = samples(client.get("/metrics").get_data(as_text=True))
    owner = ResetActions(app.test_client(), smtp)
    code, _ = signed_up(owner)
    assert_redirect(owner.verify(EMAIL, code), "/account")
    person = ResetActions(app.test_client(), smtp)
    person.login(EMAIL, "wrong password here")
    assert person.login(EMAIL, "wrong password here").status_code == 429
    person.forgot(EMAIL)
    person.reset(EMAIL, "000000" if person.code_for(EMAIL, 2) != "000000" else "111111")
    person.reset(EMAIL, person.code_for(EMAIL, 2))
    after = samples(client.get("/metrics").get_data(as_text=True))

    def grew(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    assert grew("signup_password_resets_total", stage="requested") == 1
    assert grew("signup_password_resets_total", stage="refused") == 1
    assert grew("signup_password_resets_total", stage="completed") == 1
    assert grew("signup_login_failures_total", reason="password") == 1
    assert grew("signup_login_failures_total", reason="throttled") == 1
    assert grew("signup_emails_sent_total", kind="password_reset") == 1
    assert grew("signup_emails_sent_total", kind="password_changed") == 1


def test_turkish_reset_email_and_pages(owner, reset_app, smtp):
    """A Turkish browser gets the reset pages and emails in Turkish."""
    turkish = ResetActions(reset_app.test_client(), smtp)
    turkish.client.environ_base["HTTP_ACCEPT_LANGUAGE"] = "tr-TR,tr;q=0.9"
    page = turkish.client.get("/password/forgot")
    assert 'lang="tr"' in page.text and "Parolanızı mı unuttunuz?" in page_text(page)
    turkish.forgot(EMAIL)
    message = turkish.email_to(EMAIL, 2)
    assert message["Subject"] == "Parola sıfırlama kodunuz"
    assert_redirect(turkish.reset(EMAIL, code_from(message)), "/account")
    assert turkish.email_to(EMAIL, 3)["Subject"] == "Parolanız değiştirildi"


class StoreState:
    """The pending store's whole state now (`state()`), and a check that it has not changed
    since an earlier one (`assert_unchanged(earlier)`)."""

    def __init__(self, state, assert_unchanged):
        self.state = state
        self._assert_unchanged = assert_unchanged

    def __call__(self):
        return self.state()

    def assert_unchanged(self, earlier) -> None:
        """Nothing written since `earlier` (TTLs only counted down)."""
        self._assert_unchanged(earlier, self.state())


@pytest.fixture
def redis_dump(backend, request, reset_app):
    """Every Redis key, value and TTL (the manager's memory for memory), as a StoreState."""
    if backend == "redis":
        from .e2e.conftest import assert_unchanged, dump_redis

        client = request.getfixturevalue("redis_server").client()
        return StoreState(lambda: dump_redis(client), assert_unchanged)

    def memory_state():
        manager = reset_app.extensions["pending"]
        resets = manager.fallback.memory_resets
        return (repr(sorted(resets.records.items())), repr(sorted(resets.attempts.items())),
                repr(sorted(manager.fallback.memory.records.items())))

    def assert_equal(before, after):
        assert after == before

    return StoreState(memory_state, assert_equal)


def test_csrf_token_is_required_on_every_reset_form(owner, stranger):
    """No CSRF token: 400 in words, nothing sent or changed."""
    for path, data in (("/password/forgot", {"email": EMAIL}),
                       ("/password/reset", {"email": EMAIL, "code": "123456",
                                            "password": NEW_PASSWORD, "confirm": NEW_PASSWORD})):
        response = stranger.client.post(path, data=data)
        assert response.status_code == 400
    assert len(stranger.smtp.to(EMAIL)) == 1
    assert csrf_token(stranger.client.get("/password/forgot").text)


def test_reset_link_tokens_are_redacted_from_logs():
    """redact() (app log filter and gunicorn's access log) also hides reset-link tokens."""
    from app.redaction import redact
    from app.security import new_link_token

    token = new_link_token("0" * 32)
    cleaned = redact(f'"GET /password/reset/{token} HTTP/1.1" 200 and POST /password/reset/{token}?x=1')
    assert token not in cleaned and token.split("-", 1)[1] not in cleaned
    assert cleaned.count("/password/reset/…") == 2
    assert redact("POST /password/reset HTTP/1.1") == "POST /password/reset HTTP/1.1"
    assert redact("GET /verify/abc HTTP/1.1") == "GET /verify/… HTTP/1.1"


def test_reset_link_pages_send_no_referrer(owner, stranger, build):
    """Every answer under /password/reset/<token> says Referrer-Policy: no-referrer, whatever
    its status (the token must not leak to another site)."""
    stranger.forgot(EMAIL)
    link = stranger.reset_link_for(EMAIL, 2)
    for response in (stranger.client.get(path_of(link)),
                     stranger.reset_by_link(link, password="short"),
                     stranger.client.get("/password/reset/" + "0" * 32 + "-" + "a" * 43)):
        assert response.headers["Referrer-Policy"] == "no-referrer", response.status_code
