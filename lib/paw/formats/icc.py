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


# --- explaining every byte of a profile (what a slide may keep) -------------------------------

# Tag types whose data is numbers only (ICC.1:2010 section 10): XYZ, curves, parametric curves,
# s15Fixed16 arrays, viewing conditions, measurement, signature, chromaticity, LUTs.
NUMERIC_TYPES = frozenset({b"XYZ ", b"curv", b"para", b"sf32", b"view", b"meas", b"sig ", b"chrm",
                           b"mft1", b"mft2", b"mAB ", b"mBA ", b"uf32", b"ui08", b"ui16", b"ui32"})
HEADER_FIELDS = 100   # size ... profile ID; bytes 100-127 are reserved and must be zero
SCRIPTCODE = 67


def unexplained(profile, known_texts):
    """What of `profile` a reader could see that is not explained: the header fields, the tag
    table, numeric tags and the text of `text`/`desc` tags that is in `known_texts` are; any
    other text (an unknown `desc`, `mluc`, a ScriptCode string), a tag of another type and any
    non-zero byte outside all of these are not. Returns names ("tag 'desc'", "bytes outside
    the tags"); FormatError if the tag table does not fit the profile."""
    found, covered = [], bytearray(len(profile))

    def cover(at, size):
        covered[at:at + size] = b"\1" * max(0, min(size, len(profile) - at))

    def text(at, size, decode, tag):
        value = profile[at:at + size].split(b"\0\0" if decode == "utf-16-be" else b"\0", 1)[0]
        if decode == "utf-16-be" and len(value) % 2:
            value += b"\0"
        if value.decode(decode, "replace") in known_texts:
            cover(at, len(value))
        elif value:
            found.append(f"tag {tag!r} text")

    entries = tags(profile)
    cover(0, HEADER_FIELDS)
    cover(HEADER, 4 + 12 * len(entries))
    for signature, kind, offset, size in entries:
        tag = signature.decode("latin-1")
        if kind in NUMERIC_TYPES:
            cover(offset, size)
            continue
        cover(offset, 4)  # the type signature; the 4 reserved bytes after it must be zero
        if kind == b"text":
            text(offset + 8, size - 8, "latin-1", tag)
        elif kind == b"desc" and size >= 12:
            (length,) = struct.unpack_from(">I", profile, offset + 8)
            cover(offset + 8, 4)
            text(offset + 12, min(length, size - 12), "latin-1", tag)
            unicode_at = offset + 12 + length
            if unicode_at + 8 <= offset + size:
                (units,) = struct.unpack_from(">I", profile, unicode_at + 4)
                cover(unicode_at, 8)  # language code and count
                text(unicode_at + 8, min(2 * units, offset + size - unicode_at - 8), "utf-16-be", tag)
                script_at = unicode_at + 8 + 2 * units
                if script_at + 3 <= offset + size:
                    cover(script_at, 3)  # ScriptCode code and count
                    count = min(profile[script_at + 2], SCRIPTCODE)
                    text(script_at + 3, count, "latin-1", tag)
        else:
            found.append(f"tag {tag!r} of type {kind.decode('latin-1')!r}")
    if any(b and not c for b, c in zip(profile, covered)):
        found.append("bytes outside the tags")
    return found
