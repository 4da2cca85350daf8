"""What a browser remembers of its signup, resend and reset requests, in its session cookie.

One class names every key, so the views read `state.signup_email` rather than spelling
`session["signup_email"]` in several modules. The key names are those the cookie has always
carried (a browser signed up before an upgrade keeps its state).
"""

from __future__ import annotations

import math
import time

from flask import current_app, session


class SignupState:
    """The signup state of one browser, over its session (or any dict, for tests)."""

    SIGNUP_EMAIL = "signup_email"  # the address this browser signed up with
    SIGNUP_KEY = "signup_key"  # its secret; the registration stores only a digest of it
    SIGNUP_AT = "signup_at"  # when it signed up (time.time())
    LAST_EMAIL = "last_email"  # the address the forms are filled in with
    NEXT_EMAIL_AT = "next_email_at"  # {"email", "at"}: when it may ask for another email
    RESET_EMAIL = "reset_email"  # the address a password reset was asked for

    def __init__(self, store=None):
        self._store = session if store is None else store

    @property
    def signup_email(self) -> str | None:
        """The address this browser signed up with, or None."""
        return self._store.get(self.SIGNUP_EMAIL)

    @property
    def signup_key(self) -> str | None:
        """The secret that marks this browser as the signing-up one, or None."""
        return self._store.get(self.SIGNUP_KEY)

    @property
    def signup_at(self) -> float | None:
        """When this browser signed up (seconds since the epoch), or None."""
        return self._store.get(self.SIGNUP_AT)

    @property
    def last_email(self) -> str | None:
        """The address this browser last gave, to fill in the next form with."""
        return self._store.get(self.LAST_EMAIL)

    @last_email.setter
    def last_email(self, email: str) -> None:
        self._store[self.LAST_EMAIL] = email

    @property
    def reset_email(self) -> str | None:
        """The address this browser last asked a password reset for."""
        return self._store.get(self.RESET_EMAIL)

    @reset_email.setter
    def reset_email(self, email: str) -> None:
        self._store[self.RESET_EMAIL] = email

    def signed_up(self, email: str | None) -> bool:
        """True when this browser signed up with `email` (it needs no password to verify)."""
        return bool(email) and self.signup_email == email

    def remember_signup(self, email: str, started: float, browser_key: str) -> None:
        """Mark this browser as the one that signed up with `email`, and when it started."""
        self._store[self.SIGNUP_EMAIL] = email
        self._store[self.SIGNUP_KEY] = browser_key
        self._store[self.LAST_EMAIL] = email
        # /verify/status reports "verified" only for an account created after this moment, so
        # an address that already had an account looks exactly like one still waiting (SPEC 3).
        self._store[self.SIGNUP_AT] = started

    def remember_email_allowance(self, email: str, retry_after: int = 0) -> None:
        """Remember when this browser may next ask for an email to `email` (the countdown).

        Every signup or resend takes one email from the address's allowance, whatever the
        branch, so this tells the browser nothing it did not already know.
        """
        wait = retry_after or current_app.config["RESEND_COOLDOWN_SECONDS"]
        self._store[self.NEXT_EMAIL_AT] = {"email": email, "at": time.time() + wait}

    def seconds_until_resend(self, email: str | None) -> int:
        """Seconds this browser should wait before asking for another email to `email`."""
        remembered = self._store.get(self.NEXT_EMAIL_AT)
        if not email or not isinstance(remembered, dict) or remembered.get("email") != email:
            return 0
        try:
            return max(0, math.ceil(float(remembered.get("at", 0)) - time.time()))
        except (TypeError, ValueError):
            return 0
