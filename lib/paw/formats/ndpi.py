"""Hamamatsu NDPI (NanoZoomer, NDP.scan), including files over 4 GiB.

OpenSlide (openslide-vendor-hamamatsu.c, tifflike.c) detects NDPI by tag 65420 in directory 0,
read with 8-byte header and next-directory pointers. Each directory is one JPEG strip;
SourceLens (65421) > 0 is a pyramid level, -1 the macro, -2 the map. There is no separate
label: the macro photo shows it. Only same-length-or-shorter, in-place edits are made, which is
all that is safe above 4 GiB (offsets there are 32-bit with implied high bits).

What paw keeps, per directory, each value typed (TAGS, PROPERTIES):
- levels by geometry: SourceLens > 0 and level 0's size shrunk by a power of two (focal planes
  share a level's size); the macro (-1) unless `keep_macro`; the map (-2) and any other
  directory are destroyed (unlinked, bytes zeroed);
- image structure; Make exactly `Hamamatsu`, Model a NanoZoomer product number, Software an
  `NDP.scan` version; the numeric vendor tags of geometry and optics (SourceLens, offsets from
  the slide centre, focal plane, MCU starts, focus points, exposure, ...) as numbers;
- dropped: DateTime, SlideLabel/Reference (65427, the barcode text), AuthCode (65428), the
  fluorescence filter name (65434, free text no reader uses), ScannerSerialNumber (65442),
  FirmwareVersion (65448), tags of unknown meaning (65433, 65443, ...), any other text;
- the properties text (65449, `key=value` lines, OpenSlide's `hamamatsu.*`) keeps a line only
  if its whole key is one of PROPERTIES and its value has the key's type; Created/Updated
  dates, NDP.S/N and Macro.S/N serials, the MHLN strings (16 arbitrary characters), the shading
  block (a date, the serial and a name), a new key under a kept prefix (`roi.patient`) and a
  kept key with extra text go;
- the JPEG strips are never changed: their COM segment must be one of STRIP_COMMENTS (the
  vendor strings every real strip carries), else the slide is refused (tileheaders.py).

Sources: the real NanoZoomer C9600-12 sample (test3-DAPI-2-(387).ndpi), tifffile's
TIFF.NDPI_TAGS, OpenSlide's hamamatsu reader; /work/notes/tiff-fail-closed.md §1.3, §3.2.
"""

import re

from .allow import Integer, Number, NumberList, OneOf, Pattern
from .base import found
from .tiffallow import INTEGERS, NUMBERS, STRUCTURE, Numbers, Text, Vendor
from .tifftags import Tag, Type

NAME = "ndpi"
TITLE = "Hamamatsu NDPI"
LABEL_PLACE = None  # no label image: the label is photographed in the macro

LENS, PROPERTIES = Tag.NDPI_SOURCE_LENS, Tag.NDPI_PROPERTY_MAP
_LONG = Numbers(frozenset({Type.LONG}))
_SLONG = Numbers(frozenset({Type.SLONG}))
_FLOAT = Numbers(frozenset({Type.FLOAT}))
TAGS = {
    **STRUCTURE,
    # tifffile (the independent reader) takes a file for NDPI only with Make present: text
    # appended to it refuses the slide by name, never a dropped Make and a confused check.
    Tag.MAKE: Text(OneOf("Hamamatsu"), required=True),
    Tag.MODEL: Text(Pattern(r"C\d{4,5}(?:-\d{2})?")),                   # C9600-12, C13210-01
    Tag.SOFTWARE: Text(Pattern(r"NDP\.scan \d+(?:\.\d+){1,3}")),        # NDP.scan 2.5.89
    Tag.NDPI_FORMAT_FLAG: Numbers(frozenset({Type.SHORT, Type.LONG})),
    Tag.NDPI_SOURCE_LENS: _FLOAT,
    Tag.NDPI_X_OFFSET: _SLONG, Tag.NDPI_Y_OFFSET: _SLONG, Tag.NDPI_Z_OFFSET: _SLONG,
    Tag.NDPI_TISSUE_INDEX: _LONG,
    Tag.NDPI_MCU_STARTS: Numbers(INTEGERS, count=None, scan=False),
    Tag.NDPI_MCU_STARTS_HIGH: Numbers(INTEGERS, count=None, scan=False),
    Tag.NDPI_EXPOSURE_RATIO: _LONG, Tag.NDPI_RED_MULTIPLIER: _LONG,
    Tag.NDPI_GREEN_MULTIPLIER: _LONG, Tag.NDPI_BLUE_MULTIPLIER: _LONG,
    Tag.NDPI_FOCUS_POINTS: Numbers(frozenset({Type.SLONG}), count=None, most=4096),
    Tag.NDPI_FOCUS_POINT_REGIONS: Numbers(frozenset({Type.SLONG}), count=None, most=4096),
    Tag.NDPI_CAPTURE_MODE: _LONG, Tag.NDPI_JPEG_QUALITY: _LONG,
    Tag.NDPI_REFOCUS_INTERVAL: _SLONG, Tag.NDPI_FOCUS_OFFSET: _SLONG,
    Tag.NDPI_BLANK_LINES: Numbers(NUMBERS, count=None, most=4096),
    Tag.NDPI_LABEL_OBSCURED: _LONG, Tag.NDPI_WAVELENGTH: _FLOAT,
    Tag.NDPI_LAMP_AGE: _LONG, Tag.NDPI_EXPOSURE_TIME: _LONG, Tag.NDPI_FOCUS_TIME: _LONG,
    Tag.NDPI_SCAN_TIME: _LONG, Tag.NDPI_WRITE_TIME: _LONG, Tag.NDPI_FULLY_AUTO_FOCUS: _LONG,
    Tag.NDPI_DEFAULT_GAMMA: Numbers(NUMBERS),
    PROPERTIES: Vendor("ndpi properties"),
}


def _ints(n, low, high):
    return NumberList(Integer(low=low, high=high), count=n)


def _int(low, high):
    return Integer(low=low, high=high)


_STAGE = (-10 ** 7, 10 ** 7)  # stage positions: 485849, 685288 in the sample (14x margin)
# The 65449 properties OpenSlide shows as hamamatsu.<key>: (key pattern, value kind). Every key
# and value of the real sample's kept lines fits, each number within the range real NanoZoomer
# files write (the sample's value in the comment); nothing else does.
PROPERTY_TYPES = (
    (r"Product", Pattern(r"C\d{4,5}(?:-\d{2})?")),                        # C9600-12
    (r"system\.version", Pattern(r"\d{1,3}(?:\.\d{1,4}){0,3}")),            # 1.0
    (r"roi\.(?:slide|barcode)\.macro", _ints(4, 0, 65535)),              # 68,279,1256,685 (macro pixels)
    (r"slide\.tickness", _int(0, 9999)),                                 # 0 (sic)
    (r"PSHV(?:\.10x|\.40x|\.ploidy|\.ploidy\.10x)?", _int(0, 999)),       # 179, 200, 140
    (r"exposure\.(?:slide|barcode|slide\.darkfield)\.macro", _int(0, 9999)),  # 20, 320, 90
    (r"Objective\.Lens\.Magnificant", Number(low=0, high=200, decimals=4)),  # 35.16 (sic)
    (r"ccd\.(?:width|height|width\.ploidy)", _int(0, 65535)),            # 9346, 0, 9302
    (r"valid\.(?:DDKP|DSHP|DLTP)", OneOf("0", "1")),
    (r"(?:coarse|fine)\.focus\.pitch", _int(0, 65535)),                  # 4870, 250
    (r"(?:YRNP|zCoarse|zFine)\[\d\]", _ints(4, -10 ** 7, 10 ** 7)),          # 1,295680,0,100
    (r"(?:slant|focalplane)\.(?:lefttop|leftbottom|righttop|rightbottom)", _ints(3, *_STAGE)),
    (r"AHEX\[\d\](?:\.fluorescence|\.ploidy)?", Pattern(r"(?:[0-9A-F]{2}){1,512}")),
    (r"stage\.center", _ints(2, *_STAGE)),                               # 177617,585288
    (r"lane\.shift\.amount", _int(-999, 999)),                           # -3
    (r"cube\.kind|colorfilterID|variable\.exposuretime", _int(0, 99)),   # 0, 1, 0
    (r"target\.white\.intensity", _int(0, 255)),                         # 235
    (r"calibration\.version", _int(0, 9999)),                            # 249
)
# Removed keys the ledger may name (others are only counted).
KNOWN_REMOVED = ("Created", "Updated", "NDP.S/N", "Macro.S/N")
MHLN = r"MHLN\[\d\]\.(?:24|36)bit"  # 16 arbitrary characters each: cannot be typed, removed
# The comment segment of every real NDPI JPEG strip (levels, then macro): vendor strings.
STRIP_COMMENTS = Pattern(r"Hamamatsu NanoZoomer Digital Pathology\x00"
                         r"|Hamamatsu JPEG Library, version \[\d+(?:\.\d+){3}\]\x00")


def property_kind(key):
    for pattern, kind in PROPERTY_TYPES:
        if re.fullmatch(pattern, key):
            return kind
    return None


def refused_variant(tiff):
    if Tag.NDPI_FORMAT_FLAG in tiff.directories[0].entries and not tiff.ndpi:
        return "Hamamatsu NDPI in classic TIFF layout"
    return None


def detect(tiff):
    return tiff.ndpi


def scrub_properties(text):
    """(kept text, removed values, names of removed known keys, count of other removed lines)."""
    kept, removed, names, others = [], [], [], 0
    for line in text.split("\r\n"):
        if not line:
            continue
        key, sep, value = line.partition("=")
        kind = property_kind(key) if sep and not line.startswith(";") else None
        if kind is not None and _hex_without_text(key, value) and kind.accepts(value):
            kept.append(line)
            continue
        if line.startswith(";"):  # the shading block: ";key=value" items split by "\r"
            removed.extend(found(f"shading data {k.lstrip(';')}", v) for k, _, v in
                           (item.partition("=") for item in line.split("\r")))
        else:
            removed.append(found(key, value))
            if key not in KNOWN_REMOVED and property_kind(key) is None:
                removed.append(found("an unknown key", key))  # a key may itself be an identifier
        if key in KNOWN_REMOVED:
            names.append(KNOWN_REMOVED[KNOWN_REMOVED.index(key)])
        elif re.fullmatch(MHLN, key):
            names.append("MHLN strings")
        elif line.startswith(";"):
            names.append("the shading-data block")
        else:
            others += 1
    return "".join(line + "\r\n" for line in kept), [v for v in removed if _worth_searching(v)], names, others


def _worth_searching(value):
    """Removed values verification searches for: a short number (an exposure, a shading
    average) matches kept numbers by chance and identifies nobody; a serial has six digits."""
    value = value.strip()
    return len(value) >= (6 if re.fullmatch(r"[-+\d.,:/ ]+", value) else 4)


def _hex_without_text(key, value):
    """AHEX values are hex: they must not spell text (4A616E65 is 'Jane')."""
    if not key.startswith("AHEX"):
        return True
    from .allow import printable_runs
    try:
        return not printable_runs(bytes.fromhex(value))
    except ValueError:
        return False


def role(tiff, directory):
    from .aperio import shrinks_by_power_of_two
    lens = tiff.number(directory, LENS)
    if lens is None:
        return "unknown"
    if lens > 0:
        levels = [d for d in tiff.directories if (tiff.number(d, LENS) or 0) > 0]
        size = _size(tiff, directory)
        biggest = max((_size(tiff, d) for d in levels), key=lambda s: s[0])
        return "level" if shrinks_by_power_of_two(biggest, size, same_size=True) else "unknown"
    return {-1: "macro", -2: "map"}.get(lens, "unknown")


def _size(tiff, directory):
    return tiff.number(directory, Tag.IMAGE_WIDTH, 0), tiff.number(directory, Tag.IMAGE_LENGTH, 0)


def plan(tiff, surgery, options):
    for directory, kind in surgery.classify(role):
        if kind in ("map", "unknown") or (kind == "macro" and not options.keep_macro):
            surgery.destroy(directory, f"{kind} image")
            continue
        if PROPERTIES in directory.entries:
            new, removed, names, others = scrub_properties(tiff.text(directory, PROPERTIES))
            surgery.replace_ascii(directory, PROPERTIES, new, removed)
            for name in names:
                surgery.note(f"properties: {name} removed")
            if others:
                surgery.count_note("other property lines removed", others)
        surgery.keep_typed(directory, TAGS)


def check(tf, options, drawn=()):
    problems = []
    pages = list(tf.pages)
    if not (tf.is_ndpi and Tag.NDPI_FORMAT_FLAG in pages[0].tags):
        problems.append("no longer detected as NDPI")
    for i, page in enumerate(pages):
        lens = page.tags[LENS].value if LENS in page.tags else None
        if lens is None or lens == -2 or (lens == -1 and not options.keep_macro) or -1 < lens <= 0:
            problems.append(f"directory {i} is not a pyramid level")
    return problems
