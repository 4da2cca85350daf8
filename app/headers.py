"""Security headers on every response."""

from flask import request

CSP = "default-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"


def add_security_headers(response):
    """CSP, nosniff, referrer policy (none at all on link pages), HSTS over HTTPS."""
    headers = response.headers
    headers.setdefault("Content-Security-Policy", CSP)
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("X-Frame-Options", "DENY")
    if request.endpoint == "verify.link":
        headers["Referrer-Policy"] = "no-referrer"
    else:
        headers.setdefault("Referrer-Policy", "same-origin")
    if request.is_secure:
        headers.setdefault("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
    if request.endpoint and request.endpoint != "static":
        headers.setdefault("Cache-Control", "no-store")
    return response


def init_app(app) -> None:
    """Register the header hook."""
    app.after_request(add_security_headers)
