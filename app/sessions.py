"""Flask's signed-cookie sessions, with the signing serializer built once rather than per use.

Flask builds a new `URLSafeTimedSerializer` every time it opens or saves a session, and
itsdangerous checks each new serializer by encoding a sample: about a fifth of a blank page's
time went there. The cookie format, keys and key rotation (SECRET_KEY_FALLBACKS) are Flask's own.
"""

from __future__ import annotations

from flask.sessions import SecureCookieSessionInterface


class CachedSessionInterface(SecureCookieSessionInterface):
    """`SecureCookieSessionInterface` keeping one serializer per set of keys."""

    def __init__(self):
        self._serializers: dict[tuple, object] = {}

    def get_signing_serializer(self, app):
        """The serializer for the app's current keys (built again if the keys change)."""
        key = (app.secret_key, tuple(app.config.get("SECRET_KEY_FALLBACKS") or ()))
        serializer = self._serializers.get(key)
        if serializer is None and app.secret_key:
            # Keys change only in tests that build several apps: keep the cache from growing.
            self._serializers.clear()
            serializer = self._serializers[key] = super().get_signing_serializer(app)
        return serializer


def init_app(app) -> None:
    """Use the cached interface for this app's sessions."""
    app.session_interface = CachedSessionInterface()
