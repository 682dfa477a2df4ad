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

_DECIMAL = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"


class Kind:
    """What one kept value may be. `accepts(text)` must be strict: a free text must never fit.

    Kinds are plain immutable-by-convention classes, not dataclasses: every vendor table is
    built at import, and a dataclass costs a generated-code compile per method in each process
    that starts (a `paw.py run` imports every table once)."""
    label = "a value"
    __slots__ = ()

    def accepts(self, text):
        raise NotImplementedError

    def __or__(self, other):
        return AnyOf((self, other))


class Number(Kind):
    """A decimal number, optionally followed by one of `units` (after optional spaces), within
    [low, high] when given, with at most `decimals` digits after the point (and then no
    exponent) when given: the precision real scanners write, so a date (19700101), a phone
    number or a 31-digit payload is not "a number" of a field that holds millimetres."""
    __slots__ = ("units", "low", "high", "integer", "decimals", "_regex")

    def __init__(self, units=(), low=None, high=None, integer=False, decimals=None):
        self.units, self.low, self.high, self.integer = tuple(units), low, high, integer
        self.decimals = decimals
        unit = "|".join(re.escape(u) for u in self.units)
        if integer:
            number = r"[-+]?\d+"
        elif decimals is not None:
            number = rf"[-+]?\d+(?:\.\d{{0,{decimals}}})?"
        else:
            number = _DECIMAL
        self._regex = rf"\s*({number})\s*(?:{unit})?\s*" if unit else rf"\s*({number})\s*"

    @property
    def label(self):
        bounded = (self.low, self.high, self.decimals) != (None, None, None)
        return "a number in its range" if bounded else "a number"

    def accepts(self, text):
        match = re.fullmatch(self._regex, text, re.ASCII)  # 0-9 only: no Arabic-Indic or full-width digits
        if not match or len(text) > 40:
            return False
        value = float(match.group(1))
        return (self.low is None or value >= self.low) and (self.high is None or value <= self.high)

    def __repr__(self):
        return f"Number(units={self.units!r}, low={self.low!r}, high={self.high!r}, integer={self.integer!r})"


def Integer(low=None, high=None, units=()):
    return Number(units=units, low=low, high=high, integer=True)


class NumberList(Kind):
    """`count` numbers (None: one or more) of `item`'s kind, joined by `separator`, each
    optionally in double quotes (Philips `"0.25" "0.25"`)."""
    label = "numbers"
    __slots__ = ("item", "count", "separator", "quoted")

    def __init__(self, item, count=None, separator=",", quoted=False):
        self.item, self.count, self.separator, self.quoted = item, count, separator, quoted

    def accepts(self, text):
        if len(text) > 4096:
            return False
        parts = text.split(self.separator)
        if self.count is not None and len(parts) != self.count:
            return False
        for part in parts:
            if self.quoted:
                if len(part) < 2 or part[0] != '"' or part[-1] != '"':
                    return False
                part = part[1:-1]
            if part != part.strip() or not self.item.accepts(part):
                return False
        return True


class OneOf(Kind):
    """One of a fixed set of words (exact, case-sensitive)."""
    label = "one of the known values"
    __slots__ = ("values",)

    def __init__(self, *values):
        self.values = frozenset(values)

    def accepts(self, text):
        return text in self.values

    def __repr__(self):
        return f"OneOf{tuple(sorted(self.values))!r}"


class Pattern(Kind):
    """A strict pattern (full match), e.g. a vendor's product string with a version number."""
    label = "the vendor's pattern"
    __slots__ = ("regex",)

    def __init__(self, regex):
        self.regex = regex

    def accepts(self, text):
        return re.fullmatch(self.regex, text) is not None

    def __repr__(self):
        return f"Pattern({self.regex!r})"


class AnyOf(Kind):
    label = "a typed value"
    __slots__ = ("kinds",)

    def __init__(self, kinds):
        self.kinds = tuple(kinds)

    def accepts(self, text):
        return any(k.accepts(text) for k in self.kinds)


EMPTY = OneOf("")


class Base64(Kind):
    """Base64 of binary data (a codec table): the characters must be Base64 and the decoded
    bytes must hold no printable run (text hidden in the encoding)."""
    label = "base64 binary data"
    __slots__ = ()

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


class XmlElement:
    """What one XML element may carry: `attributes` maps each attribute name to its kind,
    `text` is the kind of its character data (None: only white space), `required` names the
    attributes a reader needs (a bad value refuses the slide instead of losing the attribute)."""
    __slots__ = ("attributes", "text", "required")

    def __init__(self, attributes=None, text=None, required=frozenset()):
        self.attributes, self.text, self.required = attributes, text, frozenset(required)

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


class Residual:
    """One text left in an anonymized slide, and where: `where` names the field for the reason
    ("directory 0 ImageDescription, key 'AppMag'"), `text` is the value (never printed)."""
    __slots__ = ("where", "text")

    def __init__(self, where, text):
        self.where, self.text = where, text

    def __eq__(self, other):
        return isinstance(other, Residual) and (self.where, self.text) == (other.where, other.text)

    def __hash__(self):
        return hash((self.where, self.text))

    def __repr__(self):
        return f"Residual(where={self.where!r}, text=...)"  # the text may be a name


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
