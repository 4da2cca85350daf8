"""Typo hints for email domains: "ada@gmial.com" → "ada@gmail.com?" before anything is stored.

A small list of the domains most people use and an edit distance, rather than a library: the
PyPI packages for this (pymailcheck, email-typo-fixer) are small, unmaintained or rewrite the
address silently. Here the person always decides (see views/signup.py).
"""

from __future__ import annotations

# Popular mailbox providers, most used first (a tie in distance goes to the earlier one).
# Legitimate domains close to these (mail.com, email.com, ymail.com, …) are listed too, so they
# are never "corrected".
COMMON_DOMAINS = (
    "gmail.com", "hotmail.com", "outlook.com", "yahoo.com", "icloud.com", "live.com",
    "googlemail.com", "msn.com", "aol.com", "me.com", "mac.com", "ymail.com",
    "protonmail.com", "proton.me", "pm.me", "yandex.com", "yandex.com.tr", "yandex.ru",
    "mynet.com", "mail.com", "email.com", "gmx.com", "gmx.net", "gmx.de", "web.de",
    "zoho.com", "fastmail.com", "tutanota.com", "hey.com", "mail.ru", "qq.com", "163.com",
    "hotmail.co.uk", "hotmail.fr", "hotmail.de", "hotmail.it", "outlook.fr", "outlook.de",
    "yahoo.co.uk", "yahoo.fr", "yahoo.de", "live.co.uk", "live.fr", "comcast.net",
    "verizon.net", "att.net", "sbcglobal.net", "btinternet.com", "orange.fr", "free.fr",
)
KNOWN = frozenset(COMMON_DOMAINS)
# Only domains whose name before the TLD is this long are fuzzy-matched: a 2-3 letter name
# (me, aol, qq, gmx) is one keystroke away from too many real domains.
MIN_FUZZY_NAME = 4
# Top-level domains that do not exist but are a slip away from one that does.
TLD_TYPOS = {
    "con": "com", "cmo": "com", "cpm": "com", "ocm": "com", "vom": "com", "xom": "com",
    "comm": "com", "coom": "com", "cim": "com", "copm": "com", "nte": "net", "nett": "net",
    "ner": "net", "ogr": "org", "rog": "org", "orgg": "org",
}


def distance(a: str, b: str) -> int:
    """Edit distance counting a swap of two neighbouring letters as one edit (OSA)."""
    previous2: list[int] = []
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i] + [0] * len(b)
        for j, cb in enumerate(b, 1):
            cost = 0 if ca == cb else 1
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
            if i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb:
                current[j] = min(current[j], previous2[j - 2] + 1)
        previous2, previous = previous, current
    return previous[-1]


def _tld(domain: str) -> str:
    return domain.rsplit(".", 1)[-1]


def suggest_domain(domain: str) -> str | None:
    """A likely intended domain for `domain`, or None when it looks as meant."""
    domain = domain.lower().rstrip(".")
    if domain in KNOWN or "." not in domain:
        return None
    best, best_distance = None, 3
    for candidate in COMMON_DOMAINS:
        if len(candidate.split(".", 1)[0]) < MIN_FUZZY_NAME:
            continue
        found = distance(domain, candidate)
        # Two edits only within the same TLD: yahoo.fr or live.fr must never become .com.
        if found == 1 or (found == 2 and _tld(domain) == _tld(candidate)):
            if found < best_distance:
                best, best_distance = candidate, found
    if best:
        return best
    name, _, tld = domain.rpartition(".")
    if tld in TLD_TYPOS:
        fixed = f"{name}.{TLD_TYPOS[tld]}"
        return suggest_domain(fixed) or fixed
    return None


def suggest(email: str) -> str | None:
    """The address with its domain corrected, or None when there is nothing to suggest."""
    local, at, domain = email.rpartition("@")
    if not at or not local:
        return None
    fixed = suggest_domain(domain)
    return f"{local}@{fixed}" if fixed else None
