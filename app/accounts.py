"""Signup, verification, resend, promotion, sign-in, forgotten passwords and signed-in
sessions: the one door from the views to the logic.

Everything but the session functions is callable without HTTP; those (`sign_in`, `sign_out`,
`current_user`, `end_sessions`) work on the request's Flask session. Whatever a dependency's
outage looks like below (the pending store's `StoreUnavailable`, a database error), it leaves
this module as `Unavailable`. This module makes the secrets it emails (codes, link tokens); the
pending manager computes every digest of them.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from flask import current_app, g, request, session, url_for
from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from . import metrics
from .extensions import db
from .mail import send_email
from .models import User, utcnow
from .pending import CodeCheck, PasswordReset, PendingRegistration, StoreUnavailable, get_manager
from .security import Passwords, new_code, new_link_token

log = logging.getLogger(__name__)
MAX_TOKEN_LENGTH = 128  # a link token is 76 characters; anything much longer is not one


class Unavailable(Exception):
    """A dependency of the logic is down: nothing was changed, the person may try again."""


class DatabaseUnavailable(Unavailable):
    """The users database could not be read or written (locked, read-only, down)."""


class PendingStoreUnavailable(Unavailable):
    """The pending store cannot answer: Redis down with the fallback off, or only partly
    reachable (the memory fallback cannot say "there is none")."""


def _door(function):
    """Turn the pending store's StoreUnavailable into PendingStoreUnavailable, so callers
    catch one exception whatever is down."""

    @functools.wraps(function)
    def call(*args, **kwargs):
        try:
            return function(*args, **kwargs)
        except StoreUnavailable as exc:
            raise PendingStoreUnavailable(str(exc)) from exc

    return call


@dataclass
class SignupOutcome:
    """What the person is told after a signup, resend or forgotten-password request (the same
    for every branch)."""

    email_sent: bool
    retry_after: int = 0


@dataclass(frozen=True)
class Promotion:
    """What promoting a registration came to: the user, and whether the row was already there
    (the address was verified concurrently, or before)."""

    user: User
    already_verified: bool = False


@dataclass(frozen=True)
class LinkRegistration:
    """What the link page shows of the registration an emailed link belongs to."""

    email: str
    same_browser: bool


@dataclass
class SignInOutcome:
    """What a sign-in came to.

    status: ok (the user), wrong (address or password; counted), locked (too many failed
    sign-ins for the address: `retry_after`), unverified (the signup password of a pending
    registration: it was stored again for this browser and a new code sent, allowance
    permitting).
    """

    status: str
    user: User | None = None
    retry_after: int = 0
    email_sent: bool = False


def passwords() -> Passwords:
    """The app's password hasher and rules."""
    return current_app.extensions["passwords"]


def find_user(email: str) -> User | None:
    """The verified user with this normalised address, or None."""
    try:
        return db.session.execute(select(User).where(User.email == email)).scalar_one_or_none()
    except SQLAlchemyError as exc:
        db.session.rollback()
        raise DatabaseUnavailable(str(exc.__class__.__name__)) from exc


def link_for(token: str) -> str:
    """The verification link, on APP_BASE_URL (never on a request header)."""
    return current_app.config["APP_BASE_URL"] + url_for("verify.link", token=token)


def _absolute(endpoint: str, **values) -> str:
    """An absolute URL for a page, on APP_BASE_URL (never on a request header)."""
    return current_app.config["APP_BASE_URL"] + url_for(endpoint, **values)


def _mail_context(email: str, code: str | None, token: str | None) -> dict:
    cfg = current_app.config
    context = {"email": email, "code_minutes": cfg["CODE_TTL_SECONDS"] // 60,
               "link_hours": cfg["PENDING_TTL_SECONDS"] // 3600}
    if code:
        context.update(code=code, link=link_for(token))
    else:
        context["login_url"] = _absolute("account.login")
        context["signup_url"] = _absolute("signup.signup")
        context["forgot_url"] = _absolute("password.forgot")
    return context


@_door
def signup(email: str, password: str, name: str, locale: str,
           browser_key: str = "") -> SignupOutcome:
    """Store (or replace) a pending registration and email its code; same answer for all.

    A verified address gets a "you already have an account" email instead, and nothing is
    stored. The password is hashed in every branch so the time taken does not tell them apart.
    Over the address's email allowance nothing is sent and nothing changes (the answer says
    when to ask again): a registration already pending keeps its code and link.
    """
    password_hash = passwords().hash(password)
    metrics.STARTED.inc()
    manager = get_manager()
    existing = find_user(email)
    if existing is not None:
        retry = manager.reserve_email(email)
        if retry:
            return SignupOutcome(email_sent=False, retry_after=retry)
        sent = send_email("existing_account", email, locale, **_mail_context(email, None, None))
        return SignupOutcome(email_sent=sent)
    return _register(email, password_hash, name, locale, browser_key)


def _register(email: str, password_hash: str, name: str, locale: str,
              browser_key: str) -> SignupOutcome:
    """Store (or replace) the pending registration, taking one email from the allowance in the
    same step, and email its new code and link."""
    manager = get_manager()
    # One id for the record, its code digest and its link token (which carries the id, so
    # the link finds the record in one read), even when a key rotation leaves several.
    code, token = new_code(), new_link_token(manager.address_id(email))
    retry = manager.register(email, password_hash, name, locale, code, token, browser_key)
    if retry:
        return SignupOutcome(email_sent=False, retry_after=retry)
    sent = send_email("verification", email, locale, **_mail_context(email, code, token))
    return SignupOutcome(email_sent=sent)


@_door
def resend(email: str, locale: str = "en") -> SignupOutcome:
    """New code and link for a pending registration; the answer never says whether one exists.

    The allowance is taken per requested address whether or not a registration exists, and
    every branch sends exactly one email (a new code; "you already have an account"; "no signup
    is waiting for this address"), so neither the answer nor its timing tells them apart.
    """
    manager = get_manager()
    code, token = new_code(), new_link_token(manager.address_id(email))
    result = manager.resend(email, code, token)
    if result.status == "wait":
        return SignupOutcome(email_sent=False, retry_after=result.retry_after)
    metrics.RESENDS.inc()
    if result.status == "updated":
        sent = send_email("verification", email, result.locale or locale,
                          **_mail_context(email, code, token))
    elif manager.uncertain:
        # Memory (fallback) cannot tell "no registration" from "held in Redis": say nothing.
        raise PendingStoreUnavailable("pending registrations are only partly reachable")
    elif find_user(email) is not None:
        sent = send_email("existing_account", email, locale, **_mail_context(email, None, None))
    else:
        sent = send_email("no_registration", email, locale, **_mail_context(email, None, None))
    return SignupOutcome(email_sent=sent)


def promote(reg: PendingRegistration) -> Promotion:
    """Insert and commit the user row; raises DatabaseUnavailable when that cannot be done.

    A unique violation means the address was verified concurrently: the existing user is
    returned (`already_verified`) so the pending record is removed and there is still exactly
    one row.
    """
    user = User(email=reg.email, password_hash=reg.password_hash, name=reg.name,
                created_at=utcnow(), verified_at=utcnow())
    try:
        db.session.add(user)
        db.session.commit()
        return Promotion(user)
    except IntegrityError:
        db.session.rollback()
        existing = find_user(reg.email)
        if existing is None:
            raise DatabaseUnavailable("integrity error without an existing user") from None
        return Promotion(existing, already_verified=True)
    except SQLAlchemyError as exc:
        db.session.rollback()
        log.error("promotion failed, registration kept: %s", exc.__class__.__name__)
        raise DatabaseUnavailable(exc.__class__.__name__) from exc


def same_browser(reg: PendingRegistration, signup_email: str | None,
                 browser_key: str | None) -> bool:
    """True when this browser signed up *this* registration (not merely the same address).

    A later signup for the address (by anyone) replaces the record and its browser digest, so
    the first browser then has to give the password like any other.
    """
    if not (signup_email and reg.email == signup_email):
        return False
    return get_manager().is_signup_browser(reg, browser_key)


@_door
def registration_for_link(token: str, signup_email: str | None = None,
                          browser_key: str | None = None) -> LinkRegistration | None:
    """The registration an emailed link belongs to, or None; reading it changes nothing.

    Raises PendingStoreUnavailable when the memory fallback cannot say the link is dead.
    """
    manager = get_manager()
    reg = manager.get_registration_by_token(token) if len(token) <= MAX_TOKEN_LENGTH else None
    if reg is None:
        if manager.uncertain:
            raise PendingStoreUnavailable("pending registrations are only partly reachable")
        return None
    return LinkRegistration(reg.email, same_browser(reg, signup_email, browser_key))


def signup_status(signup_email: str | None, signup_at) -> str:
    """"none", "pending" or "verified" for a browser's own signup, never another address.

    `signup_email` and `signup_at` are what the browser remembers of its signup. "verified"
    means an account for that address was created after the signup. An address that already
    had an account stays "pending" like one that is still waiting, so the answer tells nothing
    the signup itself did not (SPEC 3: no enumeration). One users-table lookup in every case,
    so the time taken does not tell the cases apart either.
    """
    if not signup_email or not isinstance(signup_at, (int, float)):
        return "none"
    user = find_user(signup_email)
    if user is None:
        return "pending"
    verified_at = user.verified_at
    if verified_at.tzinfo is None:  # SQLite returns naive UTC datetimes
        verified_at = verified_at.replace(tzinfo=timezone.utc)
    return "verified" if verified_at.timestamp() >= signup_at else "pending"


def completion_check(signup_email: str | None, password: str | None,
                     browser_key: str | None = None):
    """Who may complete: the signing-up browser as it is, any other with the signup password."""

    def check(reg: PendingRegistration) -> bool:
        if same_browser(reg, signup_email, browser_key):
            return True
        return bool(password) and passwords().verify(reg.password_hash, password)

    return check


@_door
def verify_code(email: str, code: str, *, signup_email=None, password=None, browser_key=None):
    """Verify by code; another browser than the signing-up one must give the password too.

    A right code with a wrong password is refused like a wrong code (wrong_password, counted
    and answered alike): nothing may confirm a code to someone without the password. A
    "verified" check carries the `Promotion` in `result`.
    """
    result = get_manager().verify_and_remove(
        email, code, promote, check=completion_check(signup_email, password, browser_key))
    if password and result.status not in ("verified", "wrong_password"):
        # The password is hashed only once a code is right: hash it for a refused code too,
        # so the time taken does not tell a right code from a wrong one either.
        passwords().verify(None, password)
    metrics.record_check(result.status, "code")
    return result


@_door
def verify_link(token: str, *, signup_email=None, password=None, browser_key=None):
    """Verify by link token, with the same claim/promote/delete sequence as a code.

    A browser that gives the password (not the signing-up one) is held to the address's
    REGISTRATION_MAX_ATTEMPTS: its wrong passwords count, and once they are spent it is
    refused ("locked") like code entry. The signing-up browser gives none and is not.
    """
    result = get_manager().verify_link_and_remove(
        token, promote, check=completion_check(signup_email, password, browser_key),
        with_password=bool(password))
    metrics.record_check(result.status, "link")
    return result


@_door
def attempt_sign_in(email: str, password: str, browser_key: str) -> SignInOutcome:
    """Check a sign-in, counted against the address's LOGIN_MAX_FAILURES (known or not).

    The attempt is counted as failed before the password is checked, so parallel guesses cannot
    pass the cap together, and uncounted when it was not a failure. A verified user with the
    right password is ok. An address with a pending registration whose signup password this
    is gets "not verified yet": the registration is stored again for this browser (a new code,
    allowance permitting), so it verifies as the browser that signed up. Anything else is
    "wrong address or password", so nothing is learnt without the password; one users lookup,
    one registration read and one argon2 verification in every branch.
    """
    manager = get_manager()
    try:
        wait, op_id = manager.take_login_attempt(email)
    except StoreUnavailable:
        # Redis down with PENDING_FALLBACK=off: sign-in keeps working on the per-IP limit alone.
        log.warning("sign-in failures cannot be counted: the pending store is unavailable")
        wait, op_id = 0, None
    if wait:
        metrics.LOGIN_FAILURES.labels(reason="throttled").inc()
        return SignInOutcome("locked", retry_after=wait)
    user = find_user(email)
    try:
        # Read in every branch (not only without a user), so the time taken does not tell.
        reg = manager.get_registration(email)
    except StoreUnavailable:
        reg = None  # answered like an unknown address: the password cannot be checked
    stored = user.password_hash if user is not None else reg.password_hash if reg else None
    if not passwords().verify(stored, password):
        metrics.LOGIN_FAILURES.labels(reason="password").inc()
        return SignInOutcome("wrong")
    if op_id is not None:
        manager.refund_login_attempt(email, op_id)
    if user is not None:
        return SignInOutcome("ok", user=user)
    outcome = _register(email, reg.password_hash, reg.name, reg.locale, browser_key)
    return SignInOutcome("unverified", retry_after=outcome.retry_after,
                         email_sent=outcome.email_sent)


# -- forgotten passwords ----------------------------------------------------------------------


def _reset_mail_context(email: str, code: str, token: str) -> dict:
    cfg = current_app.config
    return {"email": email, "code": code, "code_minutes": cfg["CODE_TTL_SECONDS"] // 60,
            "link": _absolute("password.reset_link", token=token),
            "link_minutes": cfg["RESET_TTL_SECONDS"] // 60,
            "reset_url": _absolute("password.reset")}


@_door
def forgot_password(email: str, locale: str) -> SignupOutcome:
    """Email what helps with a forgotten password; the answer is the same for every address.

    One email from the address's allowance in every branch (taken first, whether or not
    anything exists): a verified user gets a reset code and link; an address with a pending
    signup a new verification code instead (as resend), so the signup can be finished; any
    other address "no account uses this address — sign up here". Each branch does the same
    work: one users lookup, the allowance step, one write to the address's reset (a new one,
    or removing any left from a deleted account) and one email, so the time taken tells them
    apart no more than the answer does (`make bench`, figure `forgot_branches`).
    """
    manager = get_manager()
    user = find_user(email)
    code, token = new_code(), new_link_token(manager.address_id(email))
    result = manager.resend(email, code, token)
    if result.status == "wait":
        return SignupOutcome(email_sent=False, retry_after=result.retry_after)
    if user is not None:
        reset_code, reset_token = new_code(), new_link_token(manager.reset_id(email))
        manager.issue_reset(email, reset_code, reset_token)
        metrics.PASSWORD_RESETS.labels(stage="requested").inc()
        sent = send_email("password_reset", email, locale,
                          **_reset_mail_context(email, reset_code, reset_token))
        return SignupOutcome(email_sent=sent)
    manager.remove_reset(email)
    if result.status == "updated":
        metrics.RESENDS.inc()
        sent = send_email("verification", email, result.locale or locale,
                          **_mail_context(email, code, token))
    elif manager.uncertain:
        # Memory (fallback) cannot tell "no registration" from "held in Redis": say nothing.
        raise PendingStoreUnavailable("pending registrations are only partly reachable")
    else:
        sent = send_email("no_account", email, locale, **_mail_context(email, None, None))
    return SignupOutcome(email_sent=sent)


@_door
def reset_for_link(token: str) -> PasswordReset | None:
    """The reset an emailed link belongs to, or None; reading it changes nothing.

    Raises PendingStoreUnavailable when the memory fallback cannot say the link is dead.
    """
    manager = get_manager()
    reset = manager.get_reset_by_token(token) if len(token) <= MAX_TOKEN_LENGTH else None
    if reset is None and manager.uncertain:
        raise PendingStoreUnavailable("resets are only partly reachable")
    return reset


@_door
def reset_password(password: str, locale: str, *, email: str | None = None,
                   code: str | None = None, token: str | None = None) -> CodeCheck:
    """Set a new password with a reset code (`email`, `code`) or link (`token`).

    On success ("verified", the user in `result`) the new argon2id hash is stored and every
    session of the user ended in one UPDATE, then the code and link die and the account's
    sign-in throttle is lifted; a "your password was changed" email follows. Refused codes count
    as at signup. If the database fails, nothing changed and the same code or link works again.
    """
    def change(reset: PasswordReset) -> User | None:
        user = find_user(reset.email)
        if user is not None:  # None: the account was deleted since; the reset just ends
            set_password(user, password)
        return user

    manager = get_manager()
    if token is not None:
        result = manager.reset_with_link(token, change)
    else:
        result = manager.reset_with_code(email, code, change)
    if result.status == "verified" and result.result is None:
        result = CodeCheck("unknown")
    if result.status == "verified":
        metrics.PASSWORD_RESETS.labels(stage="completed").inc()
        user = result.result
        send_email("password_changed", user.email, locale, email=user.email,
                   forgot_url=_absolute("password.forgot"))
    elif result.status in ("wrong", "unknown", "expired", "code_dead", "locked"):
        metrics.PASSWORD_RESETS.labels(stage="refused").inc()
    return result


# -- signed-in sessions -------------------------------------------------------------------------
# A session names its user and carries the user's session version and creation time from when
# it signed in. Bumping the version (sign-out, a password change) ends every session made
# before; deleting the row ends them too, and the creation time keeps an id that the database
# hands out again (SQLite may, after a deletion) from reopening an old session on a new account.
SESSION_USER, SESSION_VERSION, SESSION_SINCE = "user_id", "session_version", "user_since"
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def _since(user: User) -> int:
    """The account's creation time in whole microseconds (SQLite returns it naive, in UTC)."""
    created = user.created_at
    if created.tzinfo is None:
        created = created.replace(tzinfo=timezone.utc)
    return (created - EPOCH) // timedelta(microseconds=1)


def _fresh_session() -> None:
    """Empty the session (signed out), keeping only the language the person chose."""
    lang = session.get("lang")
    session.clear()
    if lang:
        session["lang"] = lang
    g.user = None


def sign_in(user: User) -> None:
    """Start a fresh session for the user (nothing from before sign-in is carried over)."""
    _fresh_session()
    session[SESSION_USER] = user.id
    session[SESSION_VERSION] = user.session_version
    session[SESSION_SINCE] = _since(user)
    g.user = user


def current_user() -> User | None:
    """The signed-in user, or None (checked once per request, see `check_session`)."""
    if "user" not in g:
        check_session()
    return g.user


def check_session() -> None:
    """Before each request: a session whose user is gone or whose version is old is signed out.

    A database outage leaves the session as it is (the person is not signed out by it) but
    treats this request as signed out.
    """
    g.user = None
    # Static files, and requests without a cookie (probes, scrapers), leave the session
    # untouched: reading it would add `Vary: Cookie` to answers that do not depend on it.
    if (request.endpoint == "static"
            or current_app.config["SESSION_COOKIE_NAME"] not in request.cookies):
        return
    user_id = session.get(SESSION_USER)
    if user_id is None:
        return
    try:
        user = db.session.get(User, user_id) if isinstance(user_id, int) else None
    except SQLAlchemyError:
        db.session.rollback()
        return
    if (user is None or session.get(SESSION_VERSION) != user.session_version
            or session.get(SESSION_SINCE) != _since(user)):
        _fresh_session()
    else:
        g.user = user


def end_sessions(user: User) -> None:
    """End every session of the user, this browser's included (bump the session version).

    `sign_in(user)` afterwards starts a session with the new version, for a flow that keeps
    this browser signed in. Raises DatabaseUnavailable when the version cannot be stored.
    """
    _bump_version(user.id)
    db.session.refresh(user)


def _bump_version(user_id: int, **values) -> None:
    """Add one to the user's session version (in SQL: no read-modify-write race), storing
    `values` in the same UPDATE; raises DatabaseUnavailable when that cannot be done."""
    try:
        db.session.execute(update(User).where(User.id == user_id)
                           .values(session_version=User.session_version + 1, **values))
        db.session.commit()
    except SQLAlchemyError as exc:
        db.session.rollback()
        raise DatabaseUnavailable(exc.__class__.__name__) from exc


def set_password(user: User, password: str) -> None:
    """Store a new argon2id hash for the user and end all of the user's sessions at once.

    Raises DatabaseUnavailable when it cannot be stored (nothing changed then).
    """
    _bump_version(user.id, password_hash=passwords().hash(password))
    db.session.refresh(user)


def verify_password(user: User, password: str) -> bool:
    """True when `password` is the user's: the check before a change on the account page."""
    return passwords().verify(user.password_hash, password)


def change_password(user: User, current_password: str, new_password: str, locale: str) -> bool:
    """Change the signed-in user's password; False (nothing changed) when `current` is wrong.

    Every other session ends; this browser stays signed in, with the new version. The owner
    gets a "your password was changed" email. It is a security notice, so the email allowance
    does not hold it back (it cannot be used to flood an address: only the signed-in owner,
    with the password, reaches it, within the per-IP limit).
    """
    if not verify_password(user, current_password):
        return False
    set_password(user, new_password)
    sign_in(user)
    send_email("password_changed", user.email, locale, **_mail_context(user.email, None, None))
    return True


def delete_account(user: User, password: str, locale: str) -> bool:
    """Delete the signed-in user's account; False (nothing changed) when `password` is wrong.

    Every session ends, this browser's included, and the owner gets a goodbye email.
    """
    if not verify_password(user, password):
        return False
    remove_user(user, locale)
    _fresh_session()
    return True


def remove_user(user: User, locale: str = "en") -> None:
    """Delete the users row (every session of it ends) and send the goodbye email.

    The address is then free: it can sign up again like a new one. Raises DatabaseUnavailable
    when the row could not be deleted (nothing changed, nothing sent).
    """
    user_id, email = user.id, user.email  # the object cannot be read once its row is gone
    try:
        db.session.execute(delete(User).where(User.id == user_id))
        db.session.commit()
    except SQLAlchemyError as exc:
        db.session.rollback()
        raise DatabaseUnavailable(exc.__class__.__name__) from exc
    metrics.ACCOUNTS_DELETED.inc()
    log.info("account deleted (user id %d)", user_id)
    send_email("account_deleted", email, locale, **_mail_context(email, None, None))


def sign_out() -> None:
    """Sign this browser out and end the user's other sessions too (SPEC section 8).

    This browser is signed out even when the database cannot store the new version; then
    DatabaseUnavailable is raised so the person can be told the other sessions still stand.
    """
    user_id = session.get(SESSION_USER)
    _fresh_session()
    if isinstance(user_id, int):
        _bump_version(user_id)


def init_app(app) -> None:
    """Check the signed-in session before every request."""
    app.before_request(check_session)
