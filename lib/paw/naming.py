"""Output names: a fresh pseudonym plus only the identifier groups the lab chose to keep.

Nothing of the original name reaches the output except what `naming.pattern` captures in named
groups that `naming.template` uses. Captured text is reduced to letters, digits, '.', '-' and '_'
so a name can never smuggle a path or a shell character.
"""

import re
import secrets

from .errors import NamingError

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford base32: no I, L, O, U
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def new_pseudonym(prefix, length=10):
    body = "".join(secrets.choice(_ALPHABET) for _ in range(length))
    return f"{prefix}-{body}" if prefix else body


def kept_identifiers(pattern, stem):
    """The named groups of `pattern` found in the original file name (without extension)."""
    if pattern is None:
        return {}
    match = pattern.search(stem)
    if match is None:
        raise NamingError("the file name does not match naming.pattern")
    return {k: _UNSAFE.sub("_", v or "").strip("._") for k, v in match.groupdict().items()}


def render(template, pseudonym, kept, extension):
    name = template.format(pseudonym=pseudonym, **kept)
    name = _UNSAFE.sub("_", name).strip("._") or pseudonym
    return name + extension.lower()


def printable(text):
    """A name safe for a one-line log: control and format characters (newlines, bidi
    overrides) and undecodable bytes (surrogate escapes) are shown as escapes."""
    return "".join(c if c.isprintable() and not 0xD800 <= ord(c) <= 0xDFFF
                   else repr(c)[1:-1] for c in text)
