"""ICC colour profiles (ICC.1:2010, ISO 15076-1), read for the text they carry.

A profile is a 128-byte header, a tag count and a table of (signature, offset, size), then tag
data. The header's text-like fields are 4-byte signatures (CMM, platform, manufacturer, model,
creator). Text lives in tags of type `desc` (textDescriptionType, ICC v2: ASCII, then optional
Unicode and ScriptCode copies), `mluc` (multiLocalizedUnicodeType, v4: UTF-16BE records) and
`text` (textType: ASCII); the colour data itself (XYZ, curves, matrices, LUTs) is numbers.
"""

import struct

from ..errors import FormatError

HEADER = 128
MAX_TAGS = 256
TEXT_TYPES = (b"desc", b"mluc", b"text")


def tags(profile):
    """(signature, type signature, offset, size) of every tag; FormatError if the table does
    not fit the profile or the declared size."""
    if len(profile) < HEADER + 4:
        raise FormatError("ICC profile shorter than its header")
    (declared,) = struct.unpack_from(">I", profile, 0)
    if declared != len(profile) or profile[36:40] != b"acsp":
        raise FormatError("ICC profile header does not match the profile")
    (count,) = struct.unpack_from(">I", profile, HEADER)
    if count > MAX_TAGS or HEADER + 4 + 12 * count > len(profile):
        raise FormatError("ICC tag table does not fit the profile")
    found = []
    for i in range(count):
        signature, offset, size = struct.unpack_from(">4sII", profile, HEADER + 4 + 12 * i)
        if offset < HEADER + 4 + 12 * count or offset + size > len(profile) or size < 8:
            raise FormatError("an ICC tag lies outside the profile")
        found.append((signature, profile[offset:offset + 4], offset, size))
    return found


def texts(profile):
    """(tag signature, text) of every text-bearing tag, each text as a reader would show it."""
    found = []
    for signature, kind, offset, size in tags(profile):
        data = profile[offset:offset + size]
        name = signature.decode("latin-1")
        if kind == b"text":
            found.append((name, data[8:].split(b"\0", 1)[0].decode("latin-1")))
        elif kind == b"desc" and size >= 12:
            (length,) = struct.unpack_from(">I", data, 8)
            found.append((name, data[12:12 + length].split(b"\0", 1)[0].decode("latin-1")))
            unicode_at = 12 + length
            if unicode_at + 8 <= size:  # Unicode language code and count, then UTF-16BE
                (units,) = struct.unpack_from(">I", data, unicode_at + 4)
                raw = data[unicode_at + 8:unicode_at + 8 + 2 * units]
                found.append((name, raw.decode("utf-16-be", "replace").rstrip("\0")))
        elif kind == b"mluc" and size >= 16:
            records, record_size = struct.unpack_from(">II", data, 8)
            for r in range(min(records, 64)):
                at = 16 + r * record_size
                if at + 12 > size:
                    break
                length, where = struct.unpack_from(">II", data, at + 4)
                raw = profile[offset + where:offset + where + length] if where + length <= size else b""
                found.append((name, raw.decode("utf-16-be", "replace").rstrip("\0")))
        elif kind in TEXT_TYPES:
            found.append((name, ""))
    return found


def text_spans(profile):
    """(offset, size) of every text-bearing tag's data inside the profile (to empty them)."""
    return [(offset + 8, size - 8) for _, kind, offset, size in tags(profile) if kind in TEXT_TYPES]
