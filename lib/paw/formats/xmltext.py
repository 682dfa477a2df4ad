"""XML inside TIFF tags (Philips, Ventana, Leica): parsed, edited as a tree, written back shorter.

Values are changed at their element or attribute, never by searching the text for them (a
published anonymizer turned every "1" in a description into "0" that way). Documents with a
DOCTYPE or entity declarations are refused rather than expanded.
"""

import xml.etree.ElementTree as ET

from ..errors import FormatError


def parse(text, what):
    if "<!DOCTYPE" in text or "<!ENTITY" in text:
        raise FormatError(f"{what}: XML with a DOCTYPE is refused")
    try:
        return ET.fromstring(text.strip("\0").strip())
    except ET.ParseError as exc:
        raise FormatError(f"{what}: XML does not parse ({exc})") from None


def serialize(root, original):
    """The tree as text, with the original's XML declaration and default namespace kept."""
    if root.tag.startswith("{"):
        ET.register_namespace("", root.tag[1:].split("}")[0])
    # ElementTree writes empty elements as "<a />"; "/>" keeps a scrubbed document from growing
    # (">" inside attribute values is always escaped, so this only touches tag ends).
    body = ET.tostring(root, encoding="unicode").replace(" />", "/>")
    head = original.lstrip()
    if head.startswith("<?xml"):
        body = head[: head.index("?>") + 2] + "\n" + body
    return body


def local(tag):
    return tag.rsplit("}", 1)[-1]
