"""Compile the translation catalogues for tests run without `make` (which compiles them)."""

from __future__ import annotations

from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

ROOT = Path(__file__).resolve().parent.parent
TRANSLATIONS = ROOT / "translations"


def po_files() -> list[Path]:
    """Every language's messages.po."""
    return sorted(TRANSLATIONS.glob("*/LC_MESSAGES/messages.po"))


def compile_catalogs() -> list[Path]:
    """Write each messages.mo that is missing or older than its .po, as `make translations`."""
    written = []
    for po in po_files():
        mo = po.with_suffix(".mo")
        if mo.exists() and mo.stat().st_mtime >= po.stat().st_mtime:
            continue
        with po.open("rb") as handle:
            catalog = read_po(handle, locale=po.parts[-3])
        with mo.open("wb") as handle:
            write_mo(handle, catalog)
        written.append(mo)
    return written
