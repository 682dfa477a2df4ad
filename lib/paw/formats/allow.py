"""Typed values: what a kept field may hold, and the audit of every text left in a slide.

paw fails closed on what it keeps (../shared/fail-closed.md): every value a vendor table keeps
has a kind — a number (with its unit), an enumeration, a strict product pattern — and a value of
another shape is emptied, or the slide refused where a reader needs it. The same tables explain,
during verification, every text left in the output: the scrubber keeps a value only if its kind
accepts it, and the audit (written separately, against the same table of what may stay, not
against the scrubber's code) refuses anything no kind accepts.

Reasons name the field, never the value: a value may be a patient's name.
"""

import re
from dataclasses import dataclass

_DECIMAL = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"


class Kind:
    """What one kept value may be. `accepts(text)` must be strict: a free text must never fit."""
    label = "a value"

    def accepts(self, text):
        raise NotImplementedError

    def __or__(self, other):
        return AnyOf((self, other))


@dataclass(frozen=True)
class Number(Kind):
    """A decimal number, optionally followed by one of `units` (after optional spaces), within
    [low, high] when given."""
    units: tuple = ()
    low: float = None
    high: float = None
    integer: bool = False
    label = "a number"

    def accepts(self, text):
        unit = "|".join(re.escape(u) for u in self.units)
        number = r"[-+]?\d+" if self.integer else _DECIMAL
        match = re.fullmatch(rf"\s*({number})\s*(?:{unit})?\s*" if unit else rf"\s*({number})\s*", text)
        if not match or len(text) > 40:
            return False
        value = float(match.group(1))
        return (self.low is None or value >= self.low) and (self.high is None or value <= self.high)


def Integer(low=None, high=None, units=()):
    return Number(units=units, low=low, high=high, integer=True)


@dataclass(frozen=True)
class OneOf(Kind):
    """One of a fixed set of words (exact, case-sensitive)."""
    values: frozenset
    label = "one of the known values"

    def __init__(self, *values):
        object.__setattr__(self, "values", frozenset(values))

    def accepts(self, text):
        return text in self.values


@dataclass(frozen=True)
class Pattern(Kind):
    """A strict pattern (full match), e.g. a vendor's product string with a version number."""
    regex: str
    label = "the vendor's pattern"

    def accepts(self, text):
        return re.fullmatch(self.regex, text) is not None


@dataclass(frozen=True)
class AnyOf(Kind):
    kinds: tuple
    label = "a typed value"

    def accepts(self, text):
        return any(k.accepts(text) for k in self.kinds)


EMPTY = OneOf("")


@dataclass(frozen=True)
class Base64(Kind):
    """Base64 of binary data (a codec table, an embedded JPEG): the characters must be Base64 and
    the decoded bytes must hold no printable run (text hidden in the encoding)."""
    label = "base64 binary data"

    def accepts(self, text):
        import base64
        import binascii
        compact = "".join(text.split())
        try:
            data = base64.b64decode(compact, validate=True)
        except (binascii.Error, ValueError):
            return False
        return not printable_runs(data)


def decode(raw):
    """Text as a reader shows it: UTF-8 when the bytes are valid UTF-8, else Latin-1 (every
    byte one character). Real "ASCII" TIFF values carry UTF-8 (OME's micro sign)."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def c_string(raw):
    """A stored text value as the whole of its bytes must be: the text, then only NULs. Returns
    the text, or None when something follows the first NUL (a reader that stops at the NUL
    hides it; tifffile and a byte search show it)."""
    text, nul, rest = raw.partition(b"\0")
    if rest.strip(b"\0"):
        return None
    return decode(text)


@dataclass(frozen=True)
class XmlElement:
    """What one XML element may carry: `attributes` maps each attribute name to its kind,
    `text` is the kind of its character data (None: only white space), `required` names the
    attributes a reader needs (a bad value refuses the slide instead of losing the attribute)."""
    attributes: dict = None
    text: Kind = None
    required: frozenset = frozenset()

    def attribute(self, name):
        return (self.attributes or {}).get(name)


def element_rule(elements, name):
    """The XmlElement for a local element name: an exact key of `elements`, or a key written as
    a pattern (`re:AOI\\d+`); None for an element the table does not know."""
    if name in elements:
        return elements[name]
    for key, rule in elements.items():
        if key.startswith("re:") and re.fullmatch(key[3:], name):
            return rule
    return None


@dataclass(frozen=True)
class Residual:
    """One text left in an anonymized slide, and where: `where` names the field for the reason
    ("directory 0 ImageDescription, key 'AppMag'"), `text` is the value (never printed)."""
    where: str
    text: str


def unexplained(residuals, explains):
    """Reasons for every residual text `explains(residual)` does not accept (one line each)."""
    return [f"{r.where}: text the allow-list does not explain" for r in residuals
            if r.text.strip("\0 \t\r\n") and not explains(r)]


# --- printable runs in bytes a person or reader could see --------------------------------------

MIN_RUN = 6
_UTF16LE_RUN = re.compile(rb"(?:[\x20-\x7e]\x00){%d,}" % MIN_RUN)
_UTF16BE_RUN = re.compile(rb"(?:\x00[\x20-\x7e]){%d,}" % MIN_RUN)
_LATIN1_RUN = re.compile(rb"[\x20-\x7e\xa0-\xff]{%d,}" % MIN_RUN)


def printable_runs(data):
    """(offset, text) of every run of at least MIN_RUN printable characters in `data`: ASCII
    and Latin-1 bytes, and UTF-16 in either byte order. Meant for bytes that should hold no
    text at all (an unknown blob, padding, a value of a text type paw does not read): on
    numeric tables runs occur by chance, so read those by their type instead."""
    runs = []
    for pattern, encoding in ((_LATIN1_RUN, "latin-1"), (_UTF16LE_RUN, "utf-16-le"),
                              (_UTF16BE_RUN, "utf-16-be")):
        for match in pattern.finditer(data):
            text = match.group().decode(encoding)
            if len(text.strip()) >= MIN_RUN:
                runs.append((match.start(), text))
    return runs
