"""Hypothesis strategies for the shapes a POST body can take, shared by the in-process fuzz
suite (tests/test_fuzz.py) and its gunicorn counterpart (tests/e2e/test_bad_input.py).

Four families (issue 11, item 7): multipart bodies with file parts among text parts; JSON of
every type sent with a valid CSRF header; urlencoded or multipart text bodies with repeated
fields; odd content types. Every request carries a valid CSRF token (as the first form field,
or in the `X-CSRFToken` header), so it reaches the app's own handling rather than stopping at
the CSRF check.

Generated text never holds "@": no generated address is valid, so no generated request can be
a signup, resend, verification or sign-in that the app should accept. Whatever answers, nothing
may then be stored or emailed, and a test can say so after every request.
"""

from __future__ import annotations

import json
import secrets
import string
from dataclasses import dataclass, field
from urllib.parse import urlencode

from hypothesis import strategies as st

# Every POST route and the fields its form reads. The link route is probed with a token of the
# right shape that no registration has (and the reset link's, with one no reset has): the body is judged before the token is looked up.
UNKNOWN_LINK = "/verify/" + "0" * 32 + "-" + "A" * 43
UNKNOWN_RESET_LINK = "/password/reset/" + "0" * 32 + "-" + "A" * 43
POST_ROUTES = {
    "/signup": ["email", "password", "confirm", "name", "typed_email", "choice"],
    "/verify": ["email", "code", "password"],
    UNKNOWN_LINK: ["password"],
    "/resend": ["email"],
    "/login": ["email", "password"],
    "/logout": [],
    "/lang": ["lang", "next"],
    "/account/password": ["current_password", "password", "confirm"],
    "/account/delete": ["password"],
    "/password/forgot": ["email"],
    "/password/reset": ["email", "code", "password", "confirm"],
    UNKNOWN_RESET_LINK: ["password", "confirm"],
}
# One generated body goes to every route: it holds fields of any of them (each form reads its
# own and ignores the rest), so generating it once serves one request per route.
ALL_FIELDS = sorted({name for fields in POST_ROUTES.values() for name in fields})
# Routes that redirect whatever a valid-token body holds (they store nothing on the server).
# The account forms send a signed-out visitor (as the fuzzer is) to the sign-in page.
REDIRECT_ANY_BODY = {"/lang", "/logout", "/account/password", "/account/delete"}
NOT_TEXT_MESSAGES = ("Every field of this form must be text typed into the page",
                     "Bu formun her alanı sayfaya yazılmış bir metin olmalı")

NASTY = st.sampled_from([
    "", " ", "\x00", "\r\n", "a(at)b.c\r\nBcc: victim(at)evil.test", "１２３４５６", "١٢٣٤٥٦",
    "123 456", "123456", "tr", "en", "/", "//evil.test", "/signup", "x" * 3000, "\u2028",
    "\u202e", "\ufeff", "<script>alert(1)</script>", "' OR 1=1 --", "%00", "suggested",
])
TEXT = st.one_of(st.text(max_size=40), NASTY, st.text(alphabet=string.printable, max_size=20),
                 st.integers().map(str)).map(lambda text: text.replace("@", "(at)"))
# Strings JSON can carry but a form field never holds: a lone surrogate (one alone, as a pair
# of them would decode to one character beyond the BMP).
SURROGATE_TEXT = st.tuples(TEXT, st.characters(categories=["Cs"]), TEXT).map("".join)
JSON_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.integers(-2**70, 2**70),
                         st.floats(allow_nan=True, allow_infinity=True), TEXT, SURROGATE_TEXT)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=6)
JSON_CONTENT_TYPES = st.sampled_from([
    "application/json", "application/json; charset=utf-8", "application/vnd.api+json",
    "application/merge-patch+json", "APPLICATION/JSON"])
ODD_CONTENT_TYPES = st.one_of(st.sampled_from([
    "text/plain", "text/plain; charset=utf-8", "text/html", "application/xml",
    "application/octet-stream", "multipart/form-data", "multipart/form-data; boundary=",
    "multipart/form-data; boundary=\"\"", "multipart/mixed; boundary=zzz", "multipart/related",
    "application/x-www-form-urlencoded; charset=utf-16", "application/json; charset=utf-16",
    "application/x-www-form-urlencoded;;;", "application/json, text/plain", "form-data",
    "*/*", "", "text/json", "application/jsonx",
]), st.text(alphabet=string.ascii_letters + string.digits + "/;=+-. \"", max_size=40)
  .map(str.strip))  # a header value cannot start with a space (HTTP clients refuse it)
PART_CONTENT_TYPES = st.sampled_from([None, "text/plain", "application/octet-stream",
                                      "application/json", "text/plain; charset=utf-16"])
FILENAMES = st.one_of(st.just(""), st.text(alphabet=string.ascii_letters + string.digits + "._- ",
                                           max_size=20))


@dataclass
class Shaped:
    """One generated request body: what to send and what the answer must be."""

    family: str
    body: bytes
    content_type: str | None
    headers: dict = field(default_factory=dict)
    # True when the body holds something that is not text (a file part, a JSON value that is
    # not a string, a JSON body that is not an object): the answer must be the 400 page.
    not_text: bool = False

    def as_request(self) -> dict:
        """Keyword arguments for Flask's test client and for `requests` alike."""
        headers = dict(self.headers)
        if self.content_type is not None:
            headers["Content-Type"] = self.content_type
        return {"data": self.body, "headers": headers}


def field_names(fields: list[str]):
    """A field of the route, the CSRF field, or one it does not have."""
    return st.sampled_from(fields + ["csrf_token", "extra", ""])


def encode_multipart(parts: list[tuple]) -> tuple[bytes, str]:
    """A multipart/form-data body from (name, filename or None, content type, bytes) parts."""
    boundary = "shape-" + secrets.token_hex(16)  # content cannot contain it by chance
    chunks = []
    for name, filename, content_type, content in parts:
        disposition = f'form-data; name="{name}"'
        if filename is not None:
            disposition += f'; filename="{filename}"'
        head = f"--{boundary}\r\nContent-Disposition: {disposition}\r\n"
        if content_type:
            head += f"Content-Type: {content_type}\r\n"
        chunks.append(head.encode() + b"\r\n" + content + b"\r\n")
    chunks.append(f"--{boundary}--\r\n".encode())
    return b"".join(chunks), f"multipart/form-data; boundary={boundary}"


def _text_part(fields):
    return st.tuples(field_names(fields), st.none(), PART_CONTENT_TYPES,
                     st.one_of(TEXT.map(str.encode), st.binary(max_size=40)))


@st.composite
def multipart_with_files(draw, fields: list[str], token: str) -> Shaped:
    """Text parts and at least one file part, in any order, names repeated or unknown."""
    files = draw(st.lists(st.tuples(field_names(fields), FILENAMES, PART_CONTENT_TYPES,
                                    st.one_of(TEXT.map(str.encode), st.binary(max_size=100))),
                          min_size=1, max_size=2))
    texts = draw(st.lists(_text_part(fields), max_size=4))
    parts = draw(st.permutations(files + texts))
    body, content_type = encode_multipart([("csrf_token", None, None, token.encode()), *parts])
    return Shaped("multipart", body, content_type, not_text=True)


@st.composite
def json_not_text(draw, fields: list[str], token: str) -> Shaped:
    """JSON of every type with the CSRF header: an object holding at least one value that is
    not text (a number, bool, null, list, object or lone surrogate), or a body of another type.
    """
    if draw(st.booleans()):
        obj = draw(st.dictionaries(field_names(fields), JSON_VALUES, max_size=4))
        name = draw(field_names(fields))
        obj[name] = draw(JSON_VALUES.filter(lambda value: not isinstance(value, str))
                         | SURROGATE_TEXT)
        value = draw(st.permutations(list(obj.items()))) if obj else []
        value = dict(value)
    else:
        value = draw(JSON_VALUES.filter(lambda value: not isinstance(value, dict)))
    body = json.dumps(value, indent=draw(st.sampled_from([None, 1]))).encode()
    return Shaped("json", body, draw(JSON_CONTENT_TYPES), {"X-CSRFToken": token},
                  not_text=True)


@st.composite
def repeated_fields(draw, fields: list[str], token: str) -> Shaped:
    """Text only, each field up to three times (the CSRF token too), urlencoded or multipart."""
    pairs = [("csrf_token", token)]
    for name in fields + ["csrf_token"]:
        pairs += [(name, value) for value in draw(st.lists(TEXT, max_size=3))]
    pairs = pairs[:1] + draw(st.permutations(pairs[1:]))
    if draw(st.booleans()):
        return Shaped("repeated", urlencode(pairs).encode(), draw(st.sampled_from([
            "application/x-www-form-urlencoded",
            "application/x-www-form-urlencoded; charset=utf-8"])))
    body, content_type = encode_multipart([(name, None, None, value.encode())
                                           for name, value in pairs])
    return Shaped("repeated", body, content_type)


@st.composite
def odd_content_types(draw, fields: list[str], token: str) -> Shaped:
    """A form, JSON or random body under a content type the app does not expect (or none)."""
    data = {name: draw(TEXT) for name in fields}
    body = draw(st.one_of(st.just(urlencode({"csrf_token": token, **data}).encode()),
                          st.just(json.dumps(data).encode()),
                          st.just(encode_multipart([(k, None, None, v.encode())
                                                    for k, v in data.items()])[0]),
                          st.binary(max_size=300)))
    content_type = draw(st.one_of(st.none(), ODD_CONTENT_TYPES))
    return Shaped("odd", body, content_type, {"X-CSRFToken": token})


FAMILIES = {
    "multipart": multipart_with_files,
    "json": json_not_text,
    "repeated": repeated_fields,
    "odd": odd_content_types,
}


def judge(shaped: Shaped, path: str, status: int, text: str) -> None:
    """The answer a generated request must get (not what is stored: the caller checks that)."""
    assert status < 500, (shaped, path, status)
    assert "Traceback" not in text
    if shaped.not_text:
        assert status == 400, (shaped, path, status)
        assert any(message in text for message in NOT_TEXT_MESSAGES), (shaped, path, text[:500])
    elif path not in REDIRECT_ANY_BODY:
        # No generated address is valid, so no other route may accept one.
        assert 400 <= status < 500, (shaped, path, status)
