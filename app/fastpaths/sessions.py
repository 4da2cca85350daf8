"""Flask's signed-cookie sessions with the signing serializer built once per set of keys.

Flask builds a new `URLSafeTimedSerializer` every time it opens or saves a session (twice per
request), and itsdangerous checks each new serializer by encoding a sample: about a fifth of a
blank page's time went there (docs/performance.md). This subclass overrides Flask's documented
`SecureCookieSessionInterface.get_signing_serializer` and asks Flask's own for each new set of
keys, so the cookie format, salt, keys and key rotation (SECRET_KEY_FALLBACKS) stay Flask's;
`tests/test_fastpaths.py` checks both interfaces write the same cookie and read each other's.
"""

from __future__ import annotations

from flask.sessions import SecureCookieSessionInterface


class CachedSessionInterface(SecureCookieSessionInterface):
    """`SecureCookieSessionInterface` keeping the serializer Flask builds, per set of keys."""

    def __init__(self):
        self._serializers: dict[tuple, object] = {}

    def get_signing_serializer(self, app):
        """Flask's serializer for the app's current keys (asked again if the keys change)."""
        key = (app.secret_key, tuple(app.config.get("SECRET_KEY_FALLBACKS") or ()))
        serializer = self._serializers.get(key)
        if serializer is None:
            serializer = super().get_signing_serializer(app)
            if serializer is not None:
                # One app's keys change only in tests: keep the cache at one entry.
                self._serializers = {key: serializer}
        return serializer
