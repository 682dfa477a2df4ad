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
SCRIPTCODE = 67


D50 = bytes.fromhex("0000f6d6000100000000d32d")   # the PCS illuminant every profile must name
HEADER_SIGNATURES = ((4, "CMM"), (40, "platform"), (48, "device manufacturer"),
                     (52, "device model"), (80, "creator"))


def header_unexplained(profile, signatures):
    """Names of the 128-byte header's fields that are not of their type: the signature fields
    one of `signatures` (4 bytes of a name would otherwise pass), class and colour spaces
    known, a plain date, flags and attributes only their defined bits, a rendering intent,
    the D50 illuminant, a profile ID that is zero or the profile's own MD5 (ICC.1:2010 7.2),
    the reserved bytes zero."""
    import hashlib
    found = [name for at, name in HEADER_SIGNATURES if profile[at:at + 4] not in signatures]
    if profile[8] not in (2, 4) or profile[10:12] != b"\0\0":
        found.append("version")
    if profile[12:16] not in CLASSES or profile[16:20] not in SPACES or profile[20:24] not in SPACES:
        found.append("class or colour space")
    year, month, day, hour, minute, second = struct.unpack_from(">6H", profile, 24)
    if not (1990 <= year <= 2100 and 1 <= month <= 12 and 1 <= day <= 31 and hour < 24 and minute < 60
            and second < 60) and profile[24:36] != bytes(12):
        found.append("date")
    flags, attributes, intent = struct.unpack_from(">I", profile, 44)[0], \
        struct.unpack_from(">Q", profile, 56)[0], struct.unpack_from(">I", profile, 64)[0]
    if flags & ~0x3 or attributes & ~0xF or intent > 3:
        found.append("flags, attributes or rendering intent")
    if profile[68:80] != D50:
        found.append("illuminant")
    if profile[84:100] != bytes(16):
        unset = bytearray(profile)
        unset[44:48], unset[64:68], unset[84:100] = bytes(4), bytes(4), bytes(16)
        if hashlib.md5(unset).digest() != profile[84:100]:
            found.append("profile ID")
    if profile[RESERVED[0]:RESERVED[1]] != bytes(RESERVED[1] - RESERVED[0]):
        found.append("reserved bytes")
    return [f"header {name}" for name in found]


def unexplained(profile, known_texts, signatures=None):
    """What of `profile` a reader could see that is not explained: the header fields typed
    (header_unexplained, with `signatures`: SIGNATURES when None), the tag
    table, numeric tags and the text of `text`/`desc` tags that is in `known_texts` are; any
    other text (an unknown `desc`, `mluc`, a ScriptCode string), a tag of another type and any
    non-zero byte outside all of these are not (`mluc`, the v4 type, is explained record by
    record like `desc`). Returns names ("tag 'desc'", "bytes outside
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
    found += header_unexplained(profile, SIGNATURES if signatures is None else signatures)
    cover(0, HEADER)
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
        elif kind == b"mluc" and size >= 16:  # v4: records (language, country, length, offset)
            records, record_size = struct.unpack_from(">II", profile, offset + 8)
            if record_size != 12 or 16 + 12 * records > size:
                found.append(f"tag {tag!r} records")
                continue
            cover(offset + 8, 8 + 12 * records)
            for r in range(records):
                length, where = struct.unpack_from(">II", profile, offset + 16 + 12 * r + 4)
                if where + length > size or length % 2:
                    found.append(f"tag {tag!r} text")
                elif profile[offset + where:offset + where + length].decode("utf-16-be", "replace") in known_texts:
                    cover(offset + where, length)
                elif length:
                    found.append(f"tag {tag!r} text")
        else:
            found.append(f"tag {tag!r} of type {kind.decode('latin-1')!r}")
    if any(b and not c for b, c in zip(profile, covered)):
        found.append("bytes outside the tags")
    return found


# --- what a kept profile may hold (shared by the TIFF scrubber and the residual audit) --------
#
# Colour data is numbers (XYZ, curves, matrices, LUTs) and stays as it is. Text is typed: a
# profile's text tags may only say one of KNOWN_TEXTS (the descriptions and copyright lines of
# widely shipped profiles); the header's 4-byte signature fields only name a registered CMM,
# platform or maker. Anything else is blanked in place (same length), dates are zeroed (a
# profile written at scan time carries the scan date), and a profile with a tag type paw does
# not know is dropped whole. Sources: ICC.1:2010 sections 7 and 10; lcms2 2.19's built-in sRGB
# (byte-identical to the real boxes.tiff profile but for its date); the classic HP sRGB profile.

KNOWN_TEXTS = frozenset({
    "", "sRGB built-in", "No copyright, use freely",                         # lcms2 built-in sRGB
    "sRGB IEC61966-2.1", "Copyright (c) 1998 Hewlett-Packard Company",        # HP/Microsoft sRGB
    "IEC http://www.iec.ch", "IEC 61966-2.1 Default RGB colour space - sRGB",
    "Reference Viewing Condition in IEC61966-2.1",
    "Adobe RGB (1998)", "Copyright 1999 Adobe Systems Incorporated",
    "Display P3", "Copyright Apple Inc., 2017",
})
SIGNATURES = frozenset({
    b"\0\0\0\0", b"lcms", b"appl", b"APPL", b"MSFT", b"ADBE", b"KODA", b"HP  ", b"SGI ",
    b"SUNW", b"argl", b"Lino", b"IEC ", b"sRGB", b"TGNT", b"*nix",
})
CLASSES = frozenset({b"scnr", b"mntr", b"prtr", b"link", b"spac", b"abst", b"nmcl"})
SPACES = frozenset({b"XYZ ", b"Lab ", b"Luv ", b"YCbr", b"Yxy ", b"RGB ", b"GRAY", b"HSV ",
                    b"HLS ", b"CMYK", b"CMY "})
TECHNOLOGIES = frozenset({b"fscn", b"dcam", b"rscn", b"ijet", b"twax", b"epho", b"esta",
                          b"dsub", b"rpho", b"fprn", b"vidm", b"vidc", b"pjtv", b"CRT ",
                          b"PMD ", b"AMD ", b"KPCD", b"imgs", b"grav", b"offs", b"silk",
                          b"flex", b"mpfs", b"mpfr", b"dmpc", b"dcpj"})
# Tag types a kept TIFF profile may hold: numbers (NUMERIC_TYPES above, ICC.1:2010 section
# 10), colorant order and 64-bit arrays, and dateTime (zeroed by scrub: a calibration date).
KEPT_TYPES = NUMERIC_TYPES | frozenset({b"clro", b"ui64", b"dtim"})
SIGNATURE_FIELDS = ((4, "CMM"), (40, "platform"), (48, "device manufacturer"),
                    (52, "device model"), (80, "creator"))
DATE = (24, 36)
PROFILE_ID = (84, 100)
RESERVED = (100, 128)


def string_spans(profile):
    """(tag signature, offset, length, text) of every string a text-bearing tag holds, with the
    span of its characters in the profile; FormatError if a string runs outside its tag."""
    found = []
    for signature, kind, offset, size in tags(profile):
        name = signature.decode("latin-1")
        end = offset + size
        if kind == b"text":
            raw = profile[offset + 8:end]
            found.append((name, offset + 8, size - 8, raw.split(b"\0", 1)[0].decode("latin-1")))
        elif kind == b"desc":
            if size < 12:
                raise FormatError("ICC desc tag is too short")
            (length,) = struct.unpack_from(">I", profile, offset + 8)
            at = offset + 12
            if at + length > end:
                raise FormatError("ICC desc text runs outside its tag")
            found.append((name, at, length, profile[at:at + length].split(b"\0", 1)[0].decode("latin-1")))
            at += length
            if at + 8 <= end:
                (units,) = struct.unpack_from(">I", profile, at + 4)
                if at + 8 + 2 * units > end:
                    raise FormatError("ICC desc Unicode text runs outside its tag")
                raw = profile[at + 8:at + 8 + 2 * units]
                found.append((name, at + 8, 2 * units, raw.decode("utf-16-be", "replace").rstrip("\0")))
                at += 8 + 2 * units
            if at + 3 <= end:  # ScriptCode: code (2), count (1), 67 bytes
                found.append((name, at + 3, min(67, end - at - 3),
                              profile[at + 3:at + 3 + min(67, end - at - 3)].split(b"\0", 1)[0].decode("latin-1")))
        elif kind == b"mluc":
            if size < 16:
                raise FormatError("ICC mluc tag is too short")
            records, record_size = struct.unpack_from(">II", profile, offset + 8)
            if record_size != 12 or 16 + 12 * records > size:
                raise FormatError("ICC mluc records do not fit their tag")
            for r in range(records):
                length, where = struct.unpack_from(">II", profile, offset + 16 + 12 * r + 4)
                if where + length > size:
                    raise FormatError("ICC mluc text runs outside its tag")
                raw = profile[offset + where:offset + where + length]
                found.append((name, offset + where, length, raw.decode("utf-16-be", "replace").rstrip("\0")))
    return found


def covered(profile):
    """(start, end) spans of the profile its structure accounts for: header, tag table and
    every tag's data. Bytes outside them are padding that must be zero."""
    (count,) = struct.unpack_from(">I", profile, HEADER)
    spans = [(0, HEADER + 4 + 12 * count)]
    spans += [(offset, offset + size) for _, _, offset, size in tags(profile)]
    return spans


def gaps(profile):
    """(start, end) of every byte range of the profile its structure does not account for."""
    spans, position, found = sorted(covered(profile)), 0, []
    for start, end in spans:
        if start > position:
            found.append((position, start))
        position = max(position, end)
    if position < len(profile):
        found.append((position, len(profile)))
    return found


def unknown_type(profile):
    """The signature of the first tag whose type is neither numbers nor typed text, or None."""
    for signature, kind, _, _ in tags(profile):
        if kind not in KEPT_TYPES and kind not in TEXT_TYPES:
            return signature.decode("latin-1")
    return None


def scrub(profile):
    """The profile with every text not in KNOWN_TEXTS blanked, unknown header signatures, the
    creation date, the profile ID (an MD5 the edits would falsify), the reserved bytes and any
    padding zeroed; calibration dates and unknown technology signatures zeroed. Same length.
    FormatError if it cannot be read or holds a tag type paw does not know (drop it then)."""
    kind = unknown_type(profile)
    if kind is not None:
        raise FormatError(f"ICC profile has a tag of unknown type ({len(kind)}-byte signature)")
    if profile[12:16] not in CLASSES or profile[16:20] not in SPACES or profile[20:24] not in SPACES:
        raise FormatError("ICC profile header is not one paw knows")
    out = bytearray(profile)
    blanked = 0
    for _, at, length, text in string_spans(profile):
        if text not in KNOWN_TEXTS:
            out[at:at + length] = bytes(length)
            blanked += 1
    for at, _ in SIGNATURE_FIELDS:
        if bytes(out[at:at + 4]) not in SIGNATURES:
            out[at:at + 4] = bytes(4)
    for start, end in (DATE, PROFILE_ID, RESERVED, *gaps(profile)):
        out[start:end] = bytes(end - start)
    for _, kind, offset, size in tags(profile):
        if kind == b"dtim":
            out[offset + 8:offset + size] = bytes(size - 8)
        elif kind == b"sig " and bytes(out[offset + 8:offset + 12]) not in TECHNOLOGIES:
            out[offset + 8:offset + size] = bytes(size - 8)
    return bytes(out), blanked
