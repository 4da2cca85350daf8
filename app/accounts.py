"""Signup, verification, resend, promotion and sign-in, callable without HTTP."""

from __future__ import annotations

import hmac
import logging
import time
from dataclasses import dataclass

from flask import current_app, url_for
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from . import metrics
from .extensions import db
from .mail import send_email
from .models import User, utcnow
from .pending import PendingRegistration, StoreUnavailable, get_manager
from .security import Passwords, new_code, new_link_token

log = logging.getLogger(__name__)


class DatabaseUnavailable(Exception):
    """The users database could not be read or written (locked, read-only, down)."""


@dataclass
class SignupOutcome:
    """What the person is told after a signup or resend (the same for every branch)."""

    email_sent: bool
    retry_after: int = 0


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


def _absolute(endpoint: str) -> str:
    """An absolute URL for a page, on APP_BASE_URL (never on a request header)."""
    return current_app.config["APP_BASE_URL"] + url_for(endpoint)


def _mail_context(email: str, code: str | None, token: str | None) -> dict:
    cfg = current_app.config
    context = {"email": email, "code_minutes": cfg["CODE_TTL_SECONDS"] // 60,
               "link_hours": cfg["PENDING_TTL_SECONDS"] // 3600}
    if code:
        context.update(code=code, link=link_for(token))
    else:
        context["login_url"] = _absolute("account.login")
        context["signup_url"] = _absolute("signup.signup")
    return context


def signup(email: str, password: str, name: str, locale: str,
           browser_key: str = "") -> SignupOutcome:
    """Store (or replace) a pending registration and email its code; same answer for all.

    A verified address gets a "you already have an account" email instead, and nothing is
    stored. The password is hashed in every branch so the time taken does not tell them apart.
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

    # One id for the record, its code digest and its link token (which carries the id, so
    # the link finds the record in one read), even when a key rotation leaves several.
    address_id = manager.address_id(email)
    code, token = new_code(), new_link_token(address_id)
    now = time.time()
    reg = PendingRegistration(
        email=email, password_hash=password_hash, name=name, locale=locale,
        code_digest=manager.digester.code_digest(address_id, code),
        token_digest=manager.digester.token_digest(token),
        browser_digest=manager.digester.browser_digests(browser_key)[0] if browser_key else "",
        code_issued_at=now, created_at=now, updated_at=now,
        expires_at=now + manager.limits.pending_ttl, address_id=address_id,
    )
    retry = manager.add_registration(reg, take_email=True)
    if retry:
        return SignupOutcome(email_sent=False, retry_after=retry)
    sent = send_email("verification", email, locale, **_mail_context(email, code, token))
    return SignupOutcome(email_sent=sent)


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
        raise StoreUnavailable("pending registrations are only partly reachable")
    elif find_user(email) is not None:
        sent = send_email("existing_account", email, locale, **_mail_context(email, None, None))
    else:
        sent = send_email("no_registration", email, locale, **_mail_context(email, None, None))
    return SignupOutcome(email_sent=sent)


def promote(reg: PendingRegistration) -> User:
    """Insert and commit the user row; raises DatabaseUnavailable when that cannot be done.

    A unique violation means the address was verified concurrently: the existing user is
    returned so the pending record is removed and there is still exactly one row.
    """
    user = User(email=reg.email, password_hash=reg.password_hash, name=reg.name,
                created_at=utcnow(), verified_at=utcnow())
    try:
        db.session.add(user)
        db.session.commit()
        return user
    except IntegrityError:
        db.session.rollback()
        existing = find_user(reg.email)
        if existing is None:
            raise DatabaseUnavailable("integrity error without an existing user") from None
        existing.already_verified = True
        return existing
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
    if not (signup_email and browser_key and reg.email == signup_email and reg.browser_digest):
        return False
    return any(hmac.compare_digest(reg.browser_digest, digest)
               for digest in get_manager().digester.browser_digests(browser_key))


def completion_check(signup_email: str | None, password: str | None,
                     browser_key: str | None = None):
    """Who may complete: the signing-up browser as it is, any other with the signup password."""

    def check(reg: PendingRegistration) -> bool:
        if same_browser(reg, signup_email, browser_key):
            return True
        return bool(password) and passwords().verify(reg.password_hash, password)

    return check


def verify_code(email: str, code: str, *, signup_email=None, password=None, browser_key=None):
    """Verify by code; another browser than the signing-up one must give the password too."""
    result = get_manager().verify_and_remove(
        email, code, promote, check=completion_check(signup_email, password, browser_key))
    metrics.record_check(result.status, "code")
    return result


def verify_link(token: str, *, signup_email=None, password=None, browser_key=None):
    """Verify by link token, with the same claim/promote/delete sequence as a code."""
    result = get_manager().verify_link_and_remove(
        token, promote, check=completion_check(signup_email, password, browser_key))
    metrics.record_check(result.status, "link")
    return result


def authenticate(email: str, password: str) -> User | None:
    """The user when the address and password match; equal time when the address is unknown."""
    user = find_user(email)
    ok = passwords().verify(user.password_hash if user else None, password)
    return user if ok and user else None
