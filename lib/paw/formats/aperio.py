"""Aperio SVS (ScanScope, AT2, GT450, and other writers of `Aperio ...` descriptions).

OpenSlide (openslide-vendor-aperio.c) detects the format by a tiled directory 0 whose
ImageDescription starts with `Aperio`; it splits the description on `|`, ignores the first item
and turns each `key = value` into `aperio.key`. Only AppMag and MPP are read for geometry; the
thumbnail gets level 0's ICC profile only if both directories say the same `ICC Profile`.
Stripped directories are the thumbnail (directory 1), the label (NewSubfileType 1) and the macro
(NewSubfileType 9).

What paw keeps, per directory (the identifying items are repeated in the thumbnail and in each
level), each value typed:
- the first item (before the first `|`) only if it is a product-and-geometry line of the shape
  FIRST_ITEM describes (library version, sizes, codec, quality; several joined by `;` in region
  exports); any other first item becomes the bare word `Aperio` (what detection needs);
- the `key = value` items whose key is in KEYS *and* whose value the key's kind accepts; every
  other item (Filename, Date, Time, User, ScanScope ID, ImageID — a database record id —,
  Parmset — free text —, Barcode, any key paw has never seen, a known key with free text in
  its value) is removed whole, key and value: a key can itself be an identifier;
- image structure only: Make, Model, Software (absent in real SVS), DateTime, Artist and every
  other text or private tag go;
- levels by geometry, not by trust: a tiled directory is a level only if it has level 0's tile
  size and compression and is level 0 shrunk by a power of two (Aperio's own rule, quoted in
  openslide-vendor-aperio.c); the thumbnail only if directory 1 is stripped, has NewSubfileType
  0 and level 0's aspect ratio. Anything else (a label stored tiled, a label at directory 1
  without NewSubfileType or description) is destroyed;
- the label (NewSubfileType 1, or a `label` description line) and the macro (9, or `macro`,
  unless `keep_macro`) are destroyed: unlinked and their bytes zeroed;
- with `label: replace` the drawn label is appended as a stripped directory with NewSubfileType
  1 (what OpenSlide lists as `label`) and a `label WxH` description line (what tifffile reads).

Sources for the value kinds: the real fixtures (CMU-1-Small-Region.svs, small.svs) and public
first items and items quoted in /work/notes/tiff-fail-closed.md §3.1 (JP2K-33003-1.svs, CMU-1.svs,
GT450 v1.0.0/1.0.1, Segue, AT2, FS90, v11.0.37, Grundium Ocus).
"""

from .allow import Integer, Number, OneOf, Pattern
from .base import found
from .tiffallow import STRUCTURE, Vendor
from .tifftags import Tag

NAME = "aperio"
TITLE = "Aperio SVS"
LABEL_PLACE = "a new stripped directory, NewSubfileType 1 (OpenSlide: label)"

_VERSION = r"v\d+(?:\.\d+)+"
_PRODUCT = (rf"Aperio Image Library (?:{_VERSION}|vFS\d+ \d+)"
            rf"|Aperio Leica Biosystems (?:GT450(?: DX)?|Segue) {_VERSION}"
            r"|Aperio Image(?:, Grundium Ocus)?")
_WH = r"\d{1,6}x\d{1,6}"
_CODEC = r"(?:JPEG|J2K)/(?:RGB|YCC|YUV16|YUV)"
_GEOMETRY = (rf"{_WH} \[\d{{1,6}},\d{{1,6}}[ ,]{_WH}\] \({_WH}\)(?: -> {_WH})? {_CODEC} Q=\d{{1,3}}"
             rf"|{_WH} \({_WH}\) {_CODEC} Q=\d{{1,3}}"
             rf"|{_WH} -> {_WH} - ?"
             rf"|(?:label|macro|thumbnail) {_WH}"
             rf"| {_WH}"
             r"|")
_ONE = rf"(?:{_PRODUCT}) ?\r?\n(?:{_GEOMETRY})"
# The first item: product and geometry lines, several joined by ";" in a region export.
FIRST_ITEM = Pattern(rf"{_ONE}(?:;{_ONE})*")
# What replaces a first item of any other shape: all OpenSlide's detection reads.
BARE_FIRST_ITEM = "Aperio"
# The description paw writes on a drawn label.
DRAWN = Pattern(r"paw drawn label\nlabel \d+x\d+")

# Every kept number has the range and precision real scanners write (fixtures CMU-1-Small-Region
# and small.svs; GT450, AT2 and Segue values in /work/notes/tiff-fail-closed.md §3.1): a date
# (19700101), a phone number or an accession's digits do not fit a field of millimetres.
_MM = Number(low=-10, high=100, decimals=12)           # stage position, mm: 25.691574, 32.792793273926
_OFFSET = Number(low=-10, high=10, decimals=12)        # -0.000424, 0.019265, -0.000313
_PIXELS = Integer(low=1, high=400000)                  # a 75 mm slide at 0.25 um is 300000 pixels
KEYS = {
    "AppMag": Number(low=1, high=100, decimals=3),     # 20 (CMU-1), 40 (GT450, AT2)
    "MPP": Number(low=0.01, high=50, decimals=8),      # 0.4990, 0.2521, 0.263852
    "StripeWidth": Integer(low=1, high=16384),         # 2040, 992, 1000, 2032, 4096
    "Left": _MM, "Top": _MM,
    "LineCameraSkew": _OFFSET, "LineAreaXOffset": _OFFSET, "LineAreaYOffset": _OFFSET,
    "Focus Offset": Number(low=-100, high=100, decimals=6),     # 0.000000, -0.500000, -0.001000
    "OriginalWidth": _PIXELS, "OriginalHeight": _PIXELS,
    "Originalheight": _PIXELS,                         # sic, in the real CMU-1 files
    "Filtered": Integer(low=0, high=99),               # 5, 3
    "Exposure Time": Integer(low=0, high=9999),        # 109, 45, 8 (microseconds)
    "Exposure Scale": Number(low=0, high=1, decimals=12),       # 0.000001
    "DisplayColor": Integer(low=0, high=0xFFFFFF),     # an RGB colour
    "Gamma": Number(low=0, high=10, decimals=4),       # 2.2 (GT450, Segue)
    "CalibrationAverageRed": Number(low=0, high=255, decimals=14),
    "CalibrationAverageGreen": Number(low=0, high=255, decimals=14),
    "CalibrationAverageBlue": Number(low=0, high=255, decimals=14),   # 208.22021484375 (GT450 v1.0.1)
    "ICC Profile": OneOf("ScanScope v1", "AT2", "Segue_v1"),
    "ScannerType": OneOf("GT450", "GT450 DX"),
    "SessionMode": Pattern(r"[A-Z]{1,4}"), "SessonMode": Pattern(r"[A-Z]{1,4}"),  # PDX, NR
    "BestFocusLayer": Integer(low=0, high=99),
    "StripeCount": Integer(low=0, high=9999), "Power": Number(low=0, high=100, decimals=3),
    "Objective": Number(low=0, high=100, decimals=3),
}
# Items paw removes and may name in the ledger (any other removed key is only counted).
KNOWN_REMOVED = ("Filename", "Date", "Time", "Time Zone", "User", "ScanScope ID", "DSR ID",
                 "ImageID", "Title", "Barcode", "Slide", "Rack", "Slot", "Parmset", "Patient",
                 "Accession", "Copyright", "Scanner ID", "Webslide Files", "Scan Warning")

TAGS = {**STRUCTURE, Tag.IMAGE_DESCRIPTION: Vendor("aperio description")}
LABEL, MACRO = 1, 9   # NewSubfileType of stripped associated images (OpenSlide)
REDUCED = 1           # NewSubfileType bit of a reduced-resolution image (TIFF 6.0)
# Pyramid levels are level 0 shrunk by a power of two, to within this many pixels.
LEVEL_ROUNDING = 2


def refused_variant(tiff):
    return None


def detect(tiff):
    first = tiff.directories[0]
    return tiff.is_tiled(first) and tiff.text(first, Tag.IMAGE_DESCRIPTION).startswith("Aperio")


def shrinks_by_power_of_two(big, small, rounding=LEVEL_ROUNDING, same_size=False, pad=1):
    """Whether `small` (width, height) is `big` divided by 2**k, k >= 1 (>= 0 with `same_size`),
    within `rounding` pixels, or rounded up to a multiple of `pad` (Philips pads each level to
    whole tiles)."""
    (w0, h0), (w, h) = big, small

    def fits(full, reduced, scale):
        exact = full / scale
        return exact - rounding <= reduced <= -(-int(exact + 0.999999) // pad) * pad + rounding

    for k in range(0 if same_size else 1, 40):
        scale = 1 << k
        if fits(w0, w, scale) and fits(h0, h, scale):
            return True
        if w0 / scale < w - rounding - pad:
            return False
    return False


def same_aspect(big, small):
    """Whether a thumbnail (w, h) has the aspect of (W, H), allowing the rounding of its
    smaller side: |W*h - H*w| <= max(W, H) (real: CMU 2220x2967 -> 574x768, GT450)."""
    (w0, h0), (w, h) = big, small
    return abs(w0 * h - h0 * w) <= max(w0, h0)


def _size(tiff, directory):
    return tiff.number(directory, Tag.IMAGE_WIDTH, 0), tiff.number(directory, Tag.IMAGE_LENGTH, 0)


def _tile(tiff, directory):
    return (tiff.number(directory, Tag.TILE_WIDTH), tiff.number(directory, Tag.TILE_LENGTH),
            tiff.number(directory, Tag.COMPRESSION, 1))


def role(tiff, directory):
    """'level', 'thumbnail', 'label', 'macro' or 'unknown', decided by structure and geometry.
    A tiled directory is what OpenSlide makes a level of, so it must *be* one (NewSubfileType 0,
    or 1 as the TIFF convention for reduced images has it); stripped ones are labelled by
    NewSubfileType (1 label, 9 macro) or by their description line."""
    first = tiff.directories[0]
    subfile = tiff.number(directory, Tag.NEW_SUBFILE_TYPE, 0)
    lines = tiff.text(directory, Tag.IMAGE_DESCRIPTION).splitlines()
    second = lines[1].strip().lower() if len(lines) > 1 else ""
    if second.startswith("label"):
        return "label"
    if second.startswith("macro"):
        return "macro"
    if tiff.is_tiled(directory):
        if directory.index == 0:
            return "level"
        if subfile in (0, REDUCED) and _tile(tiff, directory) == _tile(tiff, first) and \
                shrinks_by_power_of_two(_size(tiff, first), _size(tiff, directory)):
            return "level"
        return "unknown"
    if subfile == LABEL:
        return "label"
    if subfile == MACRO:
        return "macro"
    if directory.index == 1 and subfile == 0 and same_aspect(_size(tiff, first), _size(tiff, directory)):
        return "thumbnail"
    return "unknown"


def scrub_description(text):
    """The description keeping only a typed first item and typed items, and what went:
    (new text, removed values, names of removed known keys, count of other removed items)."""
    items = text.split("|")
    first = items[0] if FIRST_ITEM.accepts(items[0]) else BARE_FIRST_ITEM
    kept, removed, names, unknown = [first], [], [], 0
    if first is BARE_FIRST_ITEM:
        removed.append(found("the first description item", items[0].strip()))
        names.append("the first description item (not a known product line)")
    for item in items[1:]:
        key, sep, value = item.partition("=")
        key, value = key.strip(), value.strip()
        kind = KEYS.get(key)
        if sep and kind is not None and kind.accepts(value):
            kept.append(item)
            continue
        if kind is not None:
            removed.append(found(key, value))
            names.append(f"{key} (not {kind.label})")
        elif key in KNOWN_REMOVED:
            removed.append(found(key, value))
            names.append(KNOWN_REMOVED[KNOWN_REMOVED.index(key)])
        else:
            removed.append(found(key, value))
            removed.append(found("an unknown key", key))  # a key paw does not know may itself be an identifier
            unknown += 1
    return "|".join(kept), removed, names, unknown


def plan(tiff, surgery, options):
    for directory, kind in surgery.classify(role):
        if kind == "label" or kind == "unknown" or (kind == "macro" and not options.keep_macro):
            surgery.destroy(directory, f"{kind} image")
            continue
        if Tag.IMAGE_DESCRIPTION in directory.entries:
            new, removed, names, unknown = scrub_description(tiff.text(directory, Tag.IMAGE_DESCRIPTION))
            surgery.replace_ascii(directory, Tag.IMAGE_DESCRIPTION, new, removed)
            for name in names:
                surgery.note(f"description: {name} removed")
            if unknown:
                surgery.count_note("unknown description fields removed", unknown)
        surgery.keep_typed(directory, TAGS)
    if surgery.label:
        surgery.append_label(f"paw drawn label\nlabel {surgery.label.width}x{surgery.label.height}", LABEL)


def check(tf, options, drawn=()):
    """Independent checks on the anonymized file, read with tifffile: problems found, if any.
    (Every text left is explained by tiffaudit against KEYS and FIRST_ITEM.)"""
    problems = []
    pages = list(tf.pages)
    if not (pages[0].is_tiled and pages[0].description.startswith("Aperio")):
        problems.append("no longer detected as Aperio")
    for i, page in enumerate(pages):
        if page.is_tiled:
            continue
        lines = page.description.splitlines()
        second = lines[1].strip().lower() if len(lines) > 1 else ""
        if (page.subfiletype == LABEL or second.startswith("label")) and i not in drawn:
            problems.append(f"a label image is still listed (directory {i})")
        if not options.keep_macro and (page.subfiletype == MACRO or second.startswith("macro")):
            problems.append(f"a macro image is still listed (directory {i})")
        if i != 1 and i not in drawn and not (options.keep_macro and page.subfiletype == MACRO):
            problems.append(f"directory {i} is a stripped image that is neither thumbnail nor kept macro")
    return problems
