"""ICC colour profiles (ICC.1:2010, ISO 15076-1), read for the text they carry.

A profile is a 128-byte header, a tag count and a table of (signature, offset, size), then tag
data. The header's text-like fields are 4-byte signatures (CMM, platform, manufacturer, model,
creator). Text lives in tags of type `desc` (textDescriptionType, ICC v2: ASCII, then optional
Unicode and ScriptCode copies), `mluc` (multiLocalizedUnicodeType, v4: UTF-16BE records) and
`text` (textType: ASCII); the colour data itself (XYZ, curves, matrices, LUTs) is numbers.
"""

import re
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
# platform or maker. A text tag is kept only if *every* byte of it is known texts in their
# declared places (text after a NUL, a leading NUL, UTF-16 in an ASCII field, a ScriptCode
# string, bytes past an mluc record's length all make it unknown); otherwise the whole tag is
# blanked in place (same length). A tag whose signature the ICC tag table (SIGNATURE_TYPES)
# does not list, or that means nothing in the profile's colour space, is removed from the tag
# table; colour tags must hold plausible numbers (`plausible`: ranges, monotonic curves, LUT
# sizes that fit) or the slide is refused. Dates are zeroed (a profile written at scan time
# carries the scan date). Sources: ICC.1:2010 sections 7, 9 and 10; lcms2 2.19's built-in sRGB
# (byte-identical to the real boxes.tiff profile but for its date); the classic HP sRGB profile
# (the DICOM fixture sm_image); the ICC's sRGB v4 preference profile (mAB/mBA LUTs).

KNOWN_TEXTS = frozenset({
    "", "sRGB built-in", "No copyright, use freely",                         # lcms2 built-in sRGB
    "sRGB IEC61966-2.1", "Copyright (c) 1998 Hewlett-Packard Company",        # HP/Microsoft sRGB
    "IEC http://www.iec.ch", "IEC 61966-2.1 Default RGB colour space - sRGB",
    "Reference Viewing Condition in IEC61966-2.1",
    "Adobe RGB (1998)", "Copyright 1999 Adobe Systems Incorporated",
    "Display P3", "Copyright Apple Inc., 2017",
    "sRGB v4 ICC preference perceptual intent beta",                         # the ICC's own v4 sRGB
    "Copyright 2007 International Color Consortium",
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
SIGNATURE_FIELDS = ((4, "CMM"), (40, "platform"), (48, "device manufacturer"),
                    (52, "device model"), (80, "creator"))
DATE = (24, 36)
PROFILE_ID = (84, 100)
RESERVED = (100, 128)


# --- the ICC tag table: which signature may hold which type (ICC.1:2010 section 9, v2 tags) ---

LUTS = frozenset({b"mft1", b"mft2", b"mAB ", b"mBA "})
CURVES = frozenset({b"curv", b"para"})
TEXTS = frozenset(TEXT_TYPES)
_RGB_ONLY = {b"rXYZ", b"gXYZ", b"bXYZ", b"rTRC", b"gTRC", b"bTRC"}
_GRAY_ONLY = {b"kTRC"}
SIGNATURE_TYPES = {
    **{s: LUTS for s in (b"A2B0", b"A2B1", b"A2B2", b"B2A0", b"B2A1", b"B2A2", b"gamt",
                          b"pre0", b"pre1", b"pre2")},
    **{s: frozenset({b"XYZ "}) for s in (b"rXYZ", b"gXYZ", b"bXYZ", b"wtpt", b"bkpt", b"lumi")},
    **{s: CURVES for s in (b"rTRC", b"gTRC", b"bTRC", b"kTRC")},
    b"chad": frozenset({b"sf32"}), b"chrm": frozenset({b"chrm"}), b"view": frozenset({b"view"}),
    b"meas": frozenset({b"meas"}), b"tech": frozenset({b"sig "}), b"rig0": frozenset({b"sig "}),
    b"calt": frozenset({b"dtim"}),
    **{s: TEXTS for s in (b"desc", b"cprt", b"dmnd", b"dmdd", b"vued", b"targ")},
}
# Signature values a `sig ` tag may hold: technologies (tech), and the perceptual reference
# medium gamut (rig0, `prmg`, in the ICC's own sRGB v4 profile).
SIG_VALUES = {b"tech": TECHNOLOGIES, b"rig0": frozenset({b"prmg"})}


def out_of_place(signature, space):
    """Whether a known signature means nothing in a profile of this colour space (a grey TRC
    in an RGB profile, an RGB colorant in a grey one): such a tag is removed like an unknown one."""
    return (signature in _GRAY_ONLY and space != b"GRAY") or (signature in _RGB_ONLY and space != b"RGB ")


class Implausible(FormatError):
    """A colour tag whose numbers no real profile holds (a curve that is not monotonic, an XYZ
    of thousands): the slide is refused — paw never silently changes a slide's colour."""


def _s15(data, at, count):
    return [v / 65536 for v in struct.unpack_from(f">{count}i", data, at)]


def _u16f16(data, at, count):
    return [v / 65536 for v in struct.unpack_from(f">{count}I", data, at)]


def _fits(data, expected):
    """The tag is `expected` bytes long, or that rounded up to 4 with zero padding."""
    return expected <= len(data) <= expected + 3 and not data[expected:].strip(b"\0")


def _within(values, low, high):
    return all(low <= v <= high for v in values)


def plausible(signature, kind, data):
    """Why a numeric tag's data is not what a real profile holds (None: it is). The numbers
    are checked by range and shape; LUT contents (a GT450's 13 MB CLUT) are numbers like
    tiles, checked only for their structure."""
    size = len(data)
    if data[4:8].strip(b"\0"):
        return "reserved bytes are not zero"
    if kind == b"XYZ ":
        if size < 20 or (size - 8) % 12:
            return "not whole XYZ numbers"
        high = 10000 if signature == b"lumi" else 2.5
        return None if _within(_s15(data, 8, (size - 8) // 4), -0.5 if high < 10 else 0, high) \
            else "an XYZ value out of range"
    if kind == b"curv":
        (count,) = struct.unpack_from(">I", data, 8)
        if count > 65536 or not _fits(data, 12 + 2 * count):
            return "a curve whose size does not fit"
        entries = struct.unpack_from(f">{count}H", data, 12)
        if count == 1:
            return None if 0.1 <= entries[0] / 256 <= 10 else "a gamma out of range"
        steps = [b - a for a, b in zip(entries, entries[1:])]
        return None if all(s >= 0 for s in steps) or all(s <= 0 for s in steps) else "a curve that is not monotonic"
    if kind == b"para":
        function, reserved = struct.unpack_from(">HH", data, 8)
        counts = {0: 1, 1: 3, 2: 4, 3: 5, 4: 7}
        if function not in counts or reserved or not _fits(data, 12 + 4 * counts[function]):
            return "a parametric curve of unknown shape"
        values = _s15(data, 12, counts[function])
        # Real parameters reach ±137 (the ICC's sRGB v4 B2A1); text read as s15Fixed16 is at
        # least 8192 (a printable high byte), so ±1024 keeps every real curve and no text.
        return None if 0.1 <= values[0] <= 10 and _within(values[1:], -1024, 1024) else "a curve parameter out of range"
    if kind == b"sf32":
        if signature != b"chad" or size != 44:
            return "not a 3x3 adaptation matrix"
        return None if _within(_s15(data, 8, 9), -4, 4) else "a matrix value out of range"
    if kind == b"chrm":
        channels, phosphor = struct.unpack_from(">HH", data, 8)
        if not 1 <= channels <= 15 or phosphor > 4 or not _fits(data, 12 + 8 * channels):
            return "chromaticities of unknown shape"
        return None if _within(_u16f16(data, 12, 2 * channels), 0, 1) else "a chromaticity out of range"
    if kind == b"view":
        if not _fits(data, 36):
            return "viewing conditions of unknown shape"
        return None if _within(_s15(data, 8, 6), 0, 10000) and struct.unpack_from(">I", data, 32)[0] <= 8 \
            else "a viewing condition out of range"
    if kind == b"meas":
        if not _fits(data, 36):
            return "a measurement of unknown shape"
        observer, = struct.unpack_from(">I", data, 8)
        geometry, flare, illuminant = struct.unpack_from(">III", data, 24)
        return None if observer <= 2 and geometry <= 2 and flare <= 65536 and illuminant <= 8 \
            and _within(_s15(data, 12, 3), 0, 2.5) else "a measurement out of range"
    if kind in (b"mft1", b"mft2"):
        inputs, outputs, grid = data[8], data[9], data[10]
        if not (1 <= inputs <= 15 and 1 <= outputs <= 15 and 2 <= grid) or data[11]:
            return "a LUT of unknown shape"
        if not _within(_s15(data, 12, 9), -16, 16):
            return "a LUT matrix value out of range"
        if kind == b"mft1":
            expected = 48 + 256 * inputs + grid ** inputs * outputs + 256 * outputs
        else:
            entries_in, entries_out = struct.unpack_from(">HH", data, 48)
            expected = 52 + 2 * (entries_in * inputs + grid ** inputs * outputs + entries_out * outputs)
        return None if _fits(data, expected) else "a LUT whose size does not fit"
    if kind in (b"mAB ", b"mBA "):
        return _lut_ab(kind, data)
    if kind == b"sig ":  # an unknown value is zeroed by scrub, never a reason to refuse
        known = data[8:12] in SIG_VALUES.get(signature, ()) or not data[8:12].strip(b"\0")
        return None if known and _fits(data, 12) else "an unknown signature value"
    if kind == b"dtim":
        return None  # zeroed
    return "a type paw does not read"


def _curve_set(data, at, count):
    """Why the `count` curves (curv or para, each padded to 4 bytes) at `at` are not plausible
    ones, or None."""
    for _ in range(count):
        kind = data[at:at + 4]
        if kind == b"curv" and at + 12 <= len(data):
            length = 12 + 2 * struct.unpack_from(">I", data, at + 8)[0]
        elif kind == b"para" and at + 12 <= len(data):
            length = 12 + 4 * {0: 1, 1: 3, 2: 4, 3: 5, 4: 7}.get(struct.unpack_from(">H", data, at + 8)[0], 99)
        else:
            return "a LUT curve of unknown type"
        if at + length > len(data):
            return "a LUT curve outside its tag"
        problem = plausible(b"", kind, data[at:at + length])
        if problem:
            return f"a LUT curve: {problem}"
        at += length + (-length % 4)
    return None


def _lut_ab(kind, data):
    """lutAtoBType / lutBtoAType (ICC.1:2010 10.10, 10.11): every curve set plausible, the
    matrix in range, the CLUT's size fitting its grid; the CLUT's numbers are colour data."""
    size, inputs, outputs = len(data), data[8], data[9]
    if not (1 <= inputs <= 15 and 1 <= outputs <= 15) or data[10:12].strip(b"\0"):
        return "a LUT of unknown shape"
    b, matrix, m, clut, a = struct.unpack_from(">5I", data, 12)
    if any(o and not 32 <= o < size for o in (b, matrix, m, clut, a)):
        return "a LUT of unknown shape"
    first, last = (outputs, inputs) if kind == b"mAB " else (inputs, outputs)
    for offset, count in ((b, first), (m, first), (a, last)):
        problem = offset and _curve_set(data, offset, count)
        if problem:
            return problem
    if matrix and (matrix + 48 > size or not _within(_s15(data, matrix, 12), -16, 16)):
        return "a LUT matrix value out of range"
    if clut:
        grid = data[clut:clut + 16]  # grid points per input channel, in both directions
        points = 1
        for g in grid[:inputs]:
            points *= g
        precision = data[clut + 16] if clut + 16 < size else 0
        if precision not in (1, 2) or grid[inputs:].strip(b"\0") or not all(grid[:inputs]) \
                or clut + 20 + points * outputs * precision > size:
            return "a LUT grid of unknown shape"
    return None


# --- text tags: kept only when every byte is a known text -------------------------------------

def _known(text):
    return text.strip() in KNOWN_TEXTS


def _latin(raw):
    """A fixed-length ASCII field as a known text followed only by NULs, or None."""
    text, _, rest = raw.partition(b"\0")
    return text.decode("latin-1") if not rest.strip(b"\0") and _known(text.decode("latin-1")) else None


def _utf16(raw):
    if len(raw) % 2:
        return None
    units = [raw[i:i + 2] for i in range(0, len(raw), 2)]
    while units and units[-1] == b"\0\0":
        units.pop()
    if b"\0\0" in units:
        return None
    try:
        text = b"".join(units).decode("utf-16-be")
    except UnicodeDecodeError:
        return None
    return text if _known(text) else None


_LANGUAGE = re.compile(rb"[a-z]{2}[A-Z]{2}")


def known_text_tag(kind, data):
    """Whether a text tag's data is, byte for byte, known texts in their declared places and
    zeros everywhere else: a `text` string, a `desc` ASCII/Unicode/ScriptCode triple, `mluc`
    records. Text after a NUL, a leading NUL, UTF-16 in an ASCII field, a ScriptCode string or
    bytes past a record's declared length make it unknown."""
    size = len(data)
    if data[4:8].strip(b"\0"):
        return False
    if kind == b"text":
        return _latin(data[8:]) is not None
    if kind == b"desc":
        if size < 12:
            return False
        (count,) = struct.unpack_from(">I", data, 8)
        at = 12 + count
        if at > size or _latin(data[12:at]) is None:
            return False
        if at == size or not data[at:].strip(b"\0"):
            return True
        if at + 8 > size:
            return False
        language, units = data[at:at + 4], struct.unpack_from(">I", data, at + 4)[0]
        if language.strip(b"\0") and not _LANGUAGE.fullmatch(language):
            return False
        at += 8
        if at + 2 * units > size or (units and _utf16(data[at:at + 2 * units]) is None):
            return False
        at += 2 * units
        rest = data[at:]
        if not rest.strip(b"\0"):
            return True
        if len(rest) < 70 or rest[0] or rest[2] > 67 or _latin(rest[3:70]) is None:
            return False  # ScriptCode: code (a small number), count, 67 bytes
        return not rest[70:].strip(b"\0")
    if kind == b"mluc":
        if size < 16:
            return False
        records, record_size = struct.unpack_from(">II", data, 8)
        if record_size != 12 or records > 64 or 16 + 12 * records > size:
            return False
        covered = bytearray(size)
        covered[:16 + 12 * records] = b"\1" * (16 + 12 * records)
        for r in range(records):
            at = 16 + 12 * r
            length, where = struct.unpack_from(">II", data, at + 4)
            if not _LANGUAGE.fullmatch(data[at:at + 4]) or where + length > size or \
                    _utf16(data[where:where + length]) is None:
                return False
            covered[where:where + length] = b"\1" * length
        return not any(b and not c for b, c in zip(data, covered))
    return False


def blank_text_tag(kind, size):
    """A text tag's data in its place, emptied: the type, then zeros (an empty `text`/`desc`),
    or an `mluc` with no records."""
    if kind == b"mluc":
        return (kind + bytes(4) + struct.pack(">II", 0, 12)).ljust(size, b"\0")
    return (kind + bytes(size - 4))[:size]


def scrub(profile):
    """The profile with every text tag that is not, byte for byte, known texts blanked in place,
    every tag whose signature the ICC table does not list (or that means nothing in this
    colour space) removed from the tag table, unknown header signatures, the creation date, the
    profile ID (an MD5 the edits would falsify), the reserved bytes and every byte no kept tag
    covers zeroed, calibration dates and unknown signature values zeroed. Same length. Returns
    (profile, texts blanked, tags removed). FormatError if it cannot be read (drop it then);
    Implausible if a colour tag holds numbers no real profile holds (refuse the slide)."""
    if profile[12:16] not in CLASSES or profile[16:20] not in SPACES or profile[20:24] not in SPACES:
        raise FormatError("ICC profile header is not one paw knows")
    space = profile[16:20]
    out = bytearray(profile)
    kept, removed, blanked = [], 0, 0
    for signature, kind, offset, size in tags(profile):
        allowed = SIGNATURE_TYPES.get(signature)
        if allowed is None or out_of_place(signature, space):
            removed += 1
            continue
        if kind not in allowed:
            if allowed is TEXTS:
                removed += 1
                continue
            raise Implausible(f"ICC tag {signature.decode('latin-1')!r} is not of a type it may have")
        if kind == b"sig " and not _fits(profile[offset:offset + size], 12):
            removed += 1  # a signature with more after it: not colour, removed
            continue
        kept.append((signature, kind, offset, size))
    for signature, kind, offset, size in kept:
        data = profile[offset:offset + size]
        if kind in TEXTS:
            if not known_text_tag(kind, data):
                if any(o < offset + size and offset < o + n and (o, n) != (offset, size)
                       for _, _, o, n in kept):
                    raise FormatError("ICC text tag shares bytes with another tag")
                out[offset:offset + size] = blank_text_tag(kind, size)
                blanked += 1
            continue
        if kind == b"sig " and plausible(signature, kind, data):
            out[offset + 8:offset + size] = bytes(size - 8)  # a technology paw does not know
            continue
        problem = plausible(signature, kind, data)
        if problem:
            raise Implausible(f"ICC tag {signature.decode('latin-1')!r}: {problem}")
        if kind == b"dtim":
            out[offset + 8:offset + size] = bytes(size - 8)
    table = b"".join(struct.pack(">4sII", s, o, n) for s, _, o, n in kept)
    (count,) = struct.unpack_from(">I", profile, HEADER)
    out[HEADER:HEADER + 4 + 12 * count] = (struct.pack(">I", len(kept)) + table).ljust(4 + 12 * count, b"\0")
    for at, _ in SIGNATURE_FIELDS:
        if bytes(out[at:at + 4]) not in SIGNATURES:
            out[at:at + 4] = bytes(4)
    covered = sorted([(0, HEADER + 4 + 12 * len(kept))] + [(o, o + n) for _, _, o, n in kept])
    position = 0
    for start, end in covered + [(len(out), len(out))]:
        if start > position:
            out[position:start] = bytes(start - position)
        position = max(position, end)
    for start, end in (DATE, PROFILE_ID, RESERVED, VERSION_RESERVED):
        out[start:end] = bytes(end - start)
    _typed_header_numbers(out)
    return bytes(out), blanked, removed


FLAGS, ATTRIBUTES, INTENT, ILLUMINANT = (44, 48), (56, 64), (64, 68), (68, 80)
VERSION_RESERVED = (10, 12)    # after major and minor.bug-fix version: zero (ICC.1:2010 7.2.4)
FLAG_BITS, ATTRIBUTE_BITS, LAST_INTENT = 0x3, 0xF, 3   # the bits and values ICC.1:2010 defines


def _typed_header_numbers(out):
    """The header's number fields hold only what the ICC defines (12 bytes of a name fit in the
    illuminant, 8 in the device attributes): flags and attributes keep their defined bits, a
    rendering intent past 3 becomes perceptual (0), the illuminant is D50 (the only one a
    profile may name). None of this changes how a reader converts colour."""
    (flags,) = struct.unpack_from(">I", out, FLAGS[0])
    (attributes,) = struct.unpack_from(">Q", out, ATTRIBUTES[0])
    (intent,) = struct.unpack_from(">I", out, INTENT[0])
    struct.pack_into(">I", out, FLAGS[0], flags & FLAG_BITS)
    struct.pack_into(">Q", out, ATTRIBUTES[0], attributes & ATTRIBUTE_BITS)
    struct.pack_into(">I", out, INTENT[0], intent if intent <= LAST_INTENT else 0)
    out[ILLUMINANT[0]:ILLUMINANT[1]] = D50
