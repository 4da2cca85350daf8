"""The request's language: the one chosen on the site, else the browser's preference.

Flask-Babel calls `select_locale` once per request; the browser's preference is worked out
once per distinct Accept-Language header. Translated text is Flask-Babel's own `gettext`.
"""

from __future__ import annotations

import functools

from babel import Locale
from flask import current_app, request, session
from werkzeug.datastructures import LanguageAccept
from werkzeug.http import parse_accept_header


def select_locale() -> Locale:
    """The language chosen on the site, else the browser's preference among ours."""
    languages = tuple(current_app.config["LANGUAGES"])
    chosen = session.get("lang")
    if chosen in languages:
        return _locale(chosen)
    return _preferred_locale(request.headers.get("Accept-Language", ""), languages)


@functools.lru_cache(maxsize=1024)
def _preferred_locale(accept_language: str, languages: tuple) -> Locale:
    # Browsers send few distinct headers: the answer is kept per header (bounded).
    accept = parse_accept_header(accept_language, LanguageAccept)
    return _locale(accept.best_match(languages) or "en")


@functools.lru_cache(maxsize=None)
def _locale(code: str) -> Locale:
    # Only codes from LANGUAGES reach here, so the cache stays as small as that list.
    return Locale.parse(code)
