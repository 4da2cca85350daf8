"""Blank form pages rendered once per language and reused, with the CSRF token put in per request.

A blank form page (`GET /signup`, `GET /login`) is the same for every visitor except for its
CSRF token: rendering it through Jinja macros and WTForms widgets each time cost about ten
times what serving it does. So the first request for a page in a language renders it with a
placeholder where the token goes, and every later one substitutes this session's token into
that text. Anything that makes a page personal (flashed messages, a query string, a signed-in
header, a form that was submitted) is rendered normally instead.
"""

from __future__ import annotations

import hashlib
import os
import secrets

from flask import (current_app, g, has_request_context, render_template, request, session,
                   url_for)
from flask_babel import get_locale
from itsdangerous import URLSafeTimedSerializer

# Flask-WTF's salt for its tokens (flask_wtf.csrf.generate_csrf): tokens made here are checked
# by Flask-WTF's own validate_csrf, and a test holds the two together across upgrades.
CSRF_SALT = "wtf-csrf-token"


class BlankPages:
    """The cache of rendered blank pages, one per app: (template, path, language) -> text."""

    def __init__(self):
        # Random per process, so no visitor can type it into a field and have it replaced.
        self.placeholder = f"csrf-placeholder-{secrets.token_hex(16)}"
        self.pages: dict[tuple, str] = {}
        self._serializer = (None, None)

    def csrf_token(self) -> str:
        """This request's CSRF token, as Flask-WTF's `generate_csrf()` makes it.

        The same steps with the signing serializer kept between requests: Flask-WTF builds a
        new one per call, which cost more than everything else this page does.
        """
        config = current_app.config
        field = config.get("WTF_CSRF_FIELD_NAME", "csrf_token")
        token = g.get(field)
        if token is not None:
            return token
        secret = config.get("WTF_CSRF_SECRET_KEY") or current_app.secret_key
        cached_secret, serializer = self._serializer
        if cached_secret != secret:
            serializer = URLSafeTimedSerializer(secret, salt=CSRF_SALT)
            self._serializer = (secret, serializer)
        if not isinstance(session.get(field), str):
            session[field] = hashlib.sha1(os.urandom(64)).hexdigest()
        token = serializer.dumps(session[field])
        setattr(g, field, token)
        return token

    @staticmethod
    def cacheable() -> bool:
        """Whether this request would get the same page as everyone else in its language."""
        return (request.method == "GET" and not request.query_string
                and "_flashes" not in session and not session.get("user_id")
                and not current_app.debug and not current_app.config.get("TEMPLATES_AUTO_RELOAD"))

    def render(self, template: str, make_form) -> str:
        """The page with this session's CSRF token; `make_form()` builds the blank form."""
        if not self.cacheable():
            return render_template(template, form=make_form())
        key = (template, request.path, str(get_locale()))
        page = self.pages.get(key)
        if page is None:
            page = self._render_with_placeholder(template, make_form)
            # Bounded: the keys are our templates, their fixed paths and our languages.
            self.pages[key] = page
        return page.replace(self.placeholder, self.csrf_token())

    def _render_with_placeholder(self, template, make_form) -> str:
        # Flask-WTF keeps the request's token in g and hands it to every csrf_token() call:
        # setting it first makes the form's field and the language switcher use the placeholder.
        field = current_app.config.get("WTF_CSRF_FIELD_NAME", "csrf_token")
        saved = g.pop(field, None)
        setattr(g, field, self.placeholder)
        try:
            return render_template(template, form=make_form())
        finally:
            g.pop(field, None)
            if saved is not None:
                setattr(g, field, saved)


def blank_page(template: str, make_form) -> str:
    """Render a blank form page through the app's cache (see the module's docstring)."""
    pages = current_app.extensions.get("blank_pages")
    if pages is None:
        pages = current_app.extensions.setdefault("blank_pages", BlankPages())
    return pages.render(template, make_form)


def template_url_for(endpoint: str, **values) -> str:
    """`url_for` for templates, remembering the URLs that never change.

    A page builds a dozen URLs (stylesheet, script, navigation, form actions) that depend only
    on the endpoint and where the app is mounted; each cost as much as a gettext did. URLs with
    values other than a static file's name (a link token, say) are built every time, so the
    memo is bounded by the app's endpoints and static files.
    """
    if not has_request_context() or (values and (endpoint != "static" or len(values) != 1
                                                  or "filename" not in values)):
        return url_for(endpoint, **values)
    memo = current_app.extensions["template_urls"]
    key = (request.script_root, endpoint, values.get("filename"))
    found = memo.get(key)
    if found is None:
        found = url_for(endpoint, **values)
        if len(memo) < 1024:  # the mount point comes from the server: a bound all the same
            memo[key] = found
    return found


def init_app(app) -> None:
    """Templates build their fixed URLs through the memo."""
    app.extensions["template_urls"] = {}
    app.jinja_env.globals["url_for"] = template_url_for
