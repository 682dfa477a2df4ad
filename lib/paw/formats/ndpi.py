"""Hamamatsu NDPI (NanoZoomer, NDP.scan), including files over 4 GiB.

OpenSlide (openslide-vendor-hamamatsu.c, tifflike.c) detects NDPI by tag 65420 in directory 0,
read with 8-byte header and next-directory pointers. Each directory is one JPEG strip;
SourceLens (65421) > 0 is a pyramid level, -1 the macro, -2 the map. There is no separate
label: the macro photo shows it. Only same-length-or-shorter, in-place edits are made, which is
all that is safe above 4 GiB (offsets there are 32-bit with implied high bits).

What paw does, per directory:
- the macro (-1) is destroyed (unlinked, bytes zeroed) unless `keep_macro`; the map (-2) is
  destroyed always: it is a low-resolution picture of the slide taken with the macro camera and
  OpenSlide does not use it; a directory with any other lens value is destroyed too;
- dropped: DateTime (306), SlideLabel/Reference (65427, the barcode text), AuthCode (65428),
  ScannerSerialNumber (65442), FirmwareVersion (65448), and every tag not listed below;
- the properties text (65449, `key=value` lines) keeps only the lines whose key is in
  KEEP_PROPERTIES; Created/Updated dates, NDP.S/N and Macro.S/N serials, any unknown key and the
  shading-data block (which repeats the date, serial number and a name) are removed;
- kept: image structure, Make/Model/Software, and the vendor tags of geometry and optics in
  KEEP_TAGS (SourceLens, slide offsets, focal plane, MCU starts, focus points, exposure).
"""

from .tifftags import PRODUCT, STRUCTURAL, Tag

NAME = "ndpi"
TITLE = "Hamamatsu NDPI"
LABEL_PLACE = None  # no label image: the label is photographed in the macro

LENS, PROPERTIES = Tag.NDPI_SOURCE_LENS, Tag.NDPI_PROPERTY_MAP
KEEP_TAGS = frozenset({
    Tag.NDPI_FORMAT_FLAG, Tag.NDPI_SOURCE_LENS, Tag.NDPI_X_OFFSET, Tag.NDPI_Y_OFFSET,
    Tag.NDPI_Z_OFFSET, Tag.NDPI_TISSUE_INDEX, Tag.NDPI_MCU_STARTS, Tag.NDPI_MCU_STARTS_HIGH,
    Tag.NDPI_CHANNEL, Tag.NDPI_FLUORESCENCE, Tag.NDPI_EXPOSURE_RATIO, Tag.NDPI_RED_MULTIPLIER,
    Tag.NDPI_GREEN_MULTIPLIER, Tag.NDPI_BLUE_MULTIPLIER, Tag.NDPI_FOCUS_POINTS,
    Tag.NDPI_FOCUS_POINT_REGIONS, Tag.NDPI_CAPTURE_MODE, Tag.NDPI_JPEG_QUALITY,
    Tag.NDPI_REFOCUS_INTERVAL, Tag.NDPI_FOCUS_OFFSET, Tag.NDPI_BLANK_LINES, Tag.NDPI_WAVELENGTH,
    Tag.NDPI_LAMP_AGE, Tag.NDPI_EXPOSURE_TIME, Tag.NDPI_FOCUS_TIME, Tag.NDPI_SCAN_TIME,
    Tag.NDPI_WRITE_TIME, Tag.NDPI_FULLY_AUTO_FOCUS, Tag.NDPI_DEFAULT_GAMMA,
})
ALLOWED_TAGS = STRUCTURAL | PRODUCT | KEEP_TAGS | {PROPERTIES}

# Keys of the 65449 properties text that describe optics and calibration; a trailing `*`
# keeps every key with that prefix.
KEEP_PROPERTIES = (
    "Product", "system.version", "Objective.Lens.Magnificant", "slide.tickness", "PSHV*",
    "exposure.*", "ccd.*", "focalplane.*", "slant.*", "zCoarse*", "zFine*", "AHEX*", "MHLN*",
    "YRNP*", "calibration.version", "target.white.intensity", "roi.*", "stage.center",
    "coarse.focus.pitch", "fine.focus.pitch", "lane.shift.amount", "colorfilterID",
    "cube.kind", "valid.*", "variable.exposuretime",
)


def refused_variant(tiff):
    if Tag.NDPI_FORMAT_FLAG in tiff.directories[0].entries and not tiff.ndpi:
        return "Hamamatsu NDPI in classic TIFF layout"
    return None


def detect(tiff):
    return tiff.ndpi


def _kept_key(key):
    return any(key.startswith(k[:-1]) if k.endswith("*") else key == k for k in KEEP_PROPERTIES)


def scrub_properties(text):
    """The properties text with only kept lines, and the (key, value) pairs removed."""
    kept, removed = [], []
    for line in text.split("\r\n"):
        if not line:
            continue
        if line.startswith(";"):  # the shading-data block: ";key=value" items split by "\r"
            for item in filter(None, line.split("\r")):
                key, _, value = item.lstrip(";").partition("=")
                removed.append((key, value.strip()))
            continue
        key, _, value = line.partition("=")
        if _kept_key(key):
            kept.append(line)
        else:
            removed.append((key, value.strip()))
    return "".join(line + "\r\n" for line in kept), removed


def role(tiff, directory):
    lens = tiff.number(directory, LENS)
    if lens is None:
        return "unknown"
    if lens > 0:
        return "level"
    return {-1: "macro", -2: "map"}.get(lens, "unknown")


def plan(tiff, surgery, options):
    for directory, kind in surgery.classify(role):
        if kind in ("map", "unknown") or (kind == "macro" and not options.keep_macro):
            surgery.destroy(directory, f"{kind} image")
            continue
        if PROPERTIES in directory.entries:
            new, removed = scrub_properties(tiff.text(directory, PROPERTIES))
            surgery.replace_ascii(directory, PROPERTIES, new, [v for _, v in removed if v])
            for key, _ in removed:
                surgery.note(f"properties: {key} removed")
        surgery.drop_unlisted(directory, ALLOWED_TAGS)


def check(tf, options, drawn=()):
    problems = []
    pages = list(tf.pages)
    if not (tf.is_ndpi and Tag.NDPI_FORMAT_FLAG in pages[0].tags):
        problems.append("no longer detected as NDPI")
    for i, page in enumerate(pages):
        lens = page.tags[LENS].value if LENS in page.tags else None
        if lens is None or lens == -2 or (lens == -1 and not options.keep_macro) or -1 < lens <= 0:
            problems.append(f"directory {i} is not a pyramid level (lens {lens})")
        if PROPERTIES in page.tags:
            for line in page.tags[PROPERTIES].value.split("\r\n"):
                if line and not _kept_key(line.partition("=")[0]):
                    problems.append(f"property {line.partition('=')[0]!r} is still present")
    return problems
