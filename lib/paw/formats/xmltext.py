"""XML inside slide files (Philips, Ventana, Leica, iSyntax), edited in place in its raw text.

A published anonymizer turned every "1" of a description into "0"; an ElementTree round trip
re-serialises the whole document, which changes quoting and spacing, drops comments, and can
make it *longer* (a real Ventana DP 200 XMP grew and could not be written back). So paw never
re-serialises: `scan` reads the raw text into elements with the exact character span of every
element, attribute, value and text run; vendor modules decide which spans go; `splice` cuts
them out (or puts a shorter value in their place). Every byte paw keeps is the scanner's own,
and the result can only be shorter.

The scanner is strict (it is not a general XML parser): one root element, attributes quoted,
the five predefined entities and character references only. A DOCTYPE or entity declaration is
refused rather than expanded. Comments, processing instructions, CDATA sections and any text
after the root are reported as `extra` spans (places a name can hide that a reader never needs).
Positions are character offsets in the text as given; paw decodes TIFF text as Latin-1, so they
are byte offsets.
"""

import re

from ..errors import FormatError

_NAME = r"[A-Za-z_:][-A-Za-z0-9_.:]*"
_START = re.compile(rf"<({_NAME})")
_ATTRIBUTE = re.compile(rf"(\s+)({_NAME})\s*=\s*(?:\"([^\"<]*)\"|'([^'<]*)')")
_TAG_END = re.compile(r"\s*(/?)>")
_END = re.compile(rf"</({_NAME})\s*>")
_ENTITY = re.compile(r"&(?:(amp|lt|gt|quot|apos)|#(\d{1,7})|#x([0-9A-Fa-f]{1,6}));")
_PREDEFINED = {"amp": "&", "lt": "<", "gt": ">", "quot": '"', "apos": "'"}
_DECLARATION = re.compile(r"<\?xml(\s+[^?]*)?\?>")


class Attribute:
    """`value` with entities resolved; `span` the attribute with the white space before it (what
    deleting removes); `value_span` the raw value between the quotes."""
    __slots__ = ("name", "value", "span", "value_span")

    def __init__(self, name, value, span, value_span):
        self.name, self.value, self.span, self.value_span = name, value, span, value_span


class Element:
    """`start`/`end` span the whole element (end: after its end tag or "/>"); `texts` are the
    (start, end, resolved text) of its character data."""
    __slots__ = ("name", "start", "end", "attributes", "children", "texts", "parent")

    def __init__(self, name, start, parent=None):
        self.name, self.start, self.end, self.parent = name, start, 0, parent
        self.attributes, self.children, self.texts = [], [], []

    @property
    def local(self):
        return local(self.name)

    @property
    def text(self):
        return "".join(t for _, _, t in self.texts)

    def get(self, name, default=None):
        for attribute in self.attributes:
            if attribute.name == name:
                return attribute.value
        return default

    def attribute(self, name):
        return next((a for a in self.attributes if a.name == name), None)

    def iter(self):
        yield self
        for child in self.children:
            yield from child.iter()


class Document:
    """`declaration` is the span of `<?xml ...?>` (or None); `extra` the spans of comments,
    processing instructions, CDATA and text outside the root."""
    __slots__ = ("text", "root", "declaration", "extra")

    def __init__(self, text, root=None):
        self.text, self.root, self.declaration, self.extra = text, root, None, []


def local(name):
    """An element's name without namespace prefix (`d:scn` and `{ns}scn` -> `scn`)."""
    return name.rsplit("}", 1)[-1].rsplit(":", 1)[-1]


def _resolve(raw, what):
    if "&" not in raw:
        return raw

    def one(match):
        name, decimal, hexadecimal = match.groups()
        if name:
            return _PREDEFINED[name]
        code = int(decimal) if decimal else int(hexadecimal, 16)
        if not 0 < code <= 0x10FFFF:
            raise FormatError(f"{what}: XML character reference out of range")
        return chr(code)

    resolved = _ENTITY.sub(one, raw)
    if "&" in _ENTITY.sub("", raw):
        raise FormatError(f"{what}: XML entity paw does not know")
    return resolved


def scan(text, what):
    """The document's elements and extra spans; FormatError if it is not one well-formed root
    element (the reason names `what`, never the text)."""
    if "<!DOCTYPE" in text or "<!ENTITY" in text:
        raise FormatError(f"{what}: XML with a DOCTYPE is refused")
    document = Document(text, None)
    stack, position, size = [], 0, len(text)
    head = len(text) - len(text.lstrip())
    declaration = _DECLARATION.match(text, head)
    if declaration:
        document.declaration = declaration.span()
        position = declaration.end()
    while position < size:
        lt = text.find("<", position)
        end = size if lt < 0 else lt
        if end > position:
            _character_data(document, stack, position, end, what)
        if lt < 0:
            break
        if text.startswith("<!--", lt):
            close = text.find("-->", lt + 4)
            if close < 0:
                raise FormatError(f"{what}: unterminated XML comment")
            document.extra.append((lt, close + 3))
            position = close + 3
        elif text.startswith("<![CDATA[", lt):
            close = text.find("]]>", lt + 9)
            if close < 0 or not stack:
                raise FormatError(f"{what}: misplaced or unterminated CDATA section")
            document.extra.append((lt, close + 3))
            position = close + 3
        elif text.startswith("<?", lt):
            close = text.find("?>", lt + 2)
            if close < 0:
                raise FormatError(f"{what}: unterminated XML processing instruction")
            document.extra.append((lt, close + 2))
            position = close + 2
        elif text.startswith("</", lt):
            match = _END.match(text, lt)
            if not match or not stack or stack[-1].name != match.group(1):
                raise FormatError(f"{what}: XML end tag does not match its start tag")
            element = stack.pop()
            element.end = match.end()
            position = match.end()
        elif text.startswith("<!", lt):
            raise FormatError(f"{what}: XML declaration paw does not read")
        else:
            position = _start_tag(document, stack, lt, what)
    if stack or document.root is None:
        raise FormatError(f"{what}: XML is not one complete element")
    return document


def _character_data(document, stack, start, end, what):
    raw = document.text[start:end]
    if not stack:  # outside the root: only white space belongs there
        if raw.strip():
            document.extra.append((start, end))
        return
    stack[-1].texts.append((start, end, _resolve(raw, what)))


def _start_tag(document, stack, lt, what):
    text = document.text
    match = _START.match(text, lt)
    if not match:
        raise FormatError(f"{what}: malformed XML tag")
    element = Element(match.group(1), lt, parent=stack[-1] if stack else None)
    position, seen = match.end(), set()
    while True:
        attribute = _ATTRIBUTE.match(text, position)
        if not attribute:
            break
        name = attribute.group(2)
        if name in seen:
            raise FormatError(f"{what}: XML attribute given twice")
        seen.add(name)
        group = 3 if attribute.group(3) is not None else 4
        element.attributes.append(Attribute(
            name, _resolve(attribute.group(group), what), attribute.span(),
            attribute.span(group)))
        position = attribute.end()
    close = _TAG_END.match(text, position)
    if not close:
        raise FormatError(f"{what}: malformed XML tag")
    if stack:
        stack[-1].children.append(element)
    elif document.root is None:
        document.root = element
    else:
        raise FormatError(f"{what}: XML has more than one root element")
    if close.group(1):
        element.end = close.end()
    else:
        stack.append(element)
    return close.end()


def escape(value):
    return value.replace("&", "&amp;").replace("<", "&lt;").replace('"', "&quot;")


def splice(text, edits):
    """`text` with every (start, end, replacement) applied. A replacement is never longer than
    what it replaces; an edit inside another (an attribute of a deleted element) is dropped."""
    result, position = [], 0
    for start, end, replacement in sorted(edits, key=lambda e: (e[0], -e[1])):
        if start < position:
            if end <= position:
                continue
            raise FormatError("overlapping XML edits")
        if len(replacement) > end - start:
            raise FormatError("an XML edit would make the document longer")
        result += [text[position:start], replacement]
        position = end
    result.append(text[position:])
    return "".join(result)


def delete(span):
    return (span[0], span[1], "")
