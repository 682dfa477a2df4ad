"""Output names: fresh pseudonyms plus only the identifier groups the lab chose to keep.

Nothing of the original name reaches the output except what `naming.pattern` captures in named
groups that `naming.template` uses. Captured text is reduced to letters, digits, '.', '-' and '_'
so a name can never smuggle a path or a shell character.

Two pseudonyms: `{pseudonym}` is new for every slide; `{case}` (with `naming.case`) is the same
for every slide whose case group (e.g. the specimen number) has the same value, compared after
trimming and case-folding (`case_key`). The case group's own value never reaches a name or a
label: the ledger keeps the mapping (`Ledger.case_pseudonym`), like every other key back.
"""

import re
import secrets
import unicodedata

from .errors import NamingError

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford base32: no I, L, O, U
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
TEMPLATE_FIELD = re.compile(r"{([^{}]*)}")
PAW_FIELDS = ("pseudonym", "case")  # what paw fills in; a pattern group may not take these names
MIN_FOLDED = 4  # a shorter value ("A1", "HE") is in many folder names by chance and identifies nobody


def new_pseudonym(prefix, length=10):
    body = "".join(secrets.choice(_ALPHABET) for _ in range(length))
    return f"{prefix}-{body}" if prefix else body


def template_fields(template):
    """The `{field}` names of a template, in order, each once."""
    return list(dict.fromkeys(TEMPLATE_FIELD.findall(template)))


def identifiers(pattern, stem):
    """The named groups of `pattern` found in the original name (without extension), as written."""
    if pattern is None:
        return {}
    match = pattern.search(stem)
    if match is None:
        raise NamingError(f"name '{printable(stem)}' does not match naming.pattern "
                          f"'{printable(pattern.pattern)}'")
    return {k: v or "" for k, v in match.groupdict().items()}


def kept_identifiers(pattern, stem):
    """The named groups, each reduced to the characters a file name may hold."""
    return safe(identifiers(pattern, stem))


def safe(groups):
    return {k: _UNSAFE.sub("_", v).strip("._") for k, v in groups.items()}


def case_key(value):
    """What identifies a case: the case group's value trimmed, inner white space collapsed,
    Unicode-normalised (NFC) and case-folded, so `S26-050002`, ` s26-050002` and a Mac's
    decomposed spelling are one case. An undecodable byte of the name is kept as its escape
    (`\\udcff`), so the key is plain UTF-8 in every ledger."""
    key = " ".join(unicodedata.normalize("NFC", value).split()).casefold()
    return key.encode("utf-8", "backslashreplace").decode("utf-8")


def fields(pseudonym, case, kept, case_group):
    """The values a template or label text may use: the pseudonyms and the kept groups, never
    the case group itself (it is what `{case}` stands for)."""
    values = {k: v for k, v in kept.items() if k != case_group}
    values.update(pseudonym=pseudonym, case=case)
    return values


def render(template, values, extension):
    """The output file name: the template filled in, made safe, the extension in lower case."""
    name = template.format(**values)
    name = _UNSAFE.sub("_", name).strip("._") or values["pseudonym"]
    return name + extension.lower()


def withheld(groups, case_group, *templates):
    """The groups whose value neither the output name nor the label shows (the case group
    always; `templates` are naming.template and anonymize.label_text), as {group: value as
    written}: verification searches the slide for them, and neither a folder name nor a kept
    group may hold them."""
    shown = {name for text in templates for name in template_fields(text)} - {case_group}
    return {k: v for k, v in groups.items() if k not in shown and v.strip()}


def holding(text, values):
    """The description of the first value in `values` ((what, value) pairs) that `text` (a
    folder path, an output name) holds, compared on letters and digits only, Unicode-normalised
    (NFKC) and case-folded (`S26_050002` holds `s26-050002`), or None. Values with fewer than
    MIN_FOLDED letters and digits are not compared."""
    folded = _folded(text)
    for what, value in values:
        needle = _folded(value)
        if len(needle) >= MIN_FOLDED and needle in folded:
            return what
    return None


def _folded(text):
    return "".join(c for c in unicodedata.normalize("NFKC", text).casefold() if c.isalnum())


def printable(text):
    """A name safe for a one-line log: control and format characters (newlines, bidi
    overrides) and undecodable bytes (surrogate escapes) are shown as escapes."""
    return "".join(c if c.isprintable() and not 0xD800 <= ord(c) <= 0xDFFF
                   else repr(c)[1:-1] for c in text)
