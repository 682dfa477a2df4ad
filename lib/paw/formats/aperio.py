"""Aperio SVS (ScanScope, GT450, and other writers of `Aperio ...` descriptions).

OpenSlide (openslide-vendor-aperio.c) detects the format by a tiled directory 0 whose
ImageDescription starts with `Aperio`; it splits the description on `|`, ignores the first item and
turns each `key = value` into `aperio.key`. Only AppMag and MPP are read for geometry. Stripped
directories are the thumbnail (directory 1), the label (NewSubfileType 1) and the macro
(NewSubfileType 9).

What paw does, per directory (every directory: the identifying fields are repeated in the
thumbnail and in each level):
- ImageDescription: the first item (library version, geometry) is kept; of the `key = value`
  items only the optical and geometric keys in KEEP keep their value, every other value
  (Filename, Date, Time, Time Zone, User, ScanScope ID, Barcode, Slide, Rack, Title, and any key
  paw has never seen) is emptied;
- every tag that is not image structure or a product name is dropped (tiff.drop_unlisted);
- the label (NewSubfileType 1, or a `label` description line) is destroyed: unlinked and its
  bytes zeroed; so is the macro (NewSubfileType 9 or `macro`) unless `keep_macro`;
- any other stripped directory after the thumbnail is destroyed too: OpenSlide ignores it and
  paw cannot tell what it shows;
- with `label: replace` the drawn label is appended as a stripped directory with NewSubfileType
  1 (what OpenSlide lists as `label`) and a `label WxH` description line (what tifffile reads).
"""

from ..errors import FormatError
from .tifftags import PRODUCT, STRUCTURAL, Tag

NAME = "aperio"
TITLE = "Aperio SVS"
LABEL_PLACE = "a new stripped directory, NewSubfileType 1 (OpenSlide: label)"

KEEP = frozenset({
    "AppMag", "MPP", "StripeWidth", "Left", "Top", "LineCameraSkew", "LineAreaXOffset",
    "LineAreaYOffset", "Focus Offset", "ImageID", "OriginalWidth", "OriginalHeight", "Originalheight",
    "Filtered", "Exposure Time", "Exposure Scale", "DisplayColor", "ICC Profile", "Parmset",
    "Power", "Gamma", "Objective", "ScannerType", "StripeCount", "SessionMode",
})
LABEL, MACRO = 1, 9
ALLOWED_TAGS = STRUCTURAL | PRODUCT | {Tag.IMAGE_DESCRIPTION}


def refused_variant(tiff):
    return None


def detect(tiff):
    first = tiff.directories[0]
    return tiff.is_tiled(first) and tiff.text(first, Tag.IMAGE_DESCRIPTION).startswith("Aperio")


def role(tiff, directory):
    """'level', 'thumbnail', 'label', 'macro' or 'unknown', as OpenSlide (and a careful reader) sees it."""
    if tiff.is_tiled(directory):
        return "level"
    subfile = tiff.number(directory, Tag.NEW_SUBFILE_TYPE, 0)
    lines = tiff.text(directory, Tag.IMAGE_DESCRIPTION).splitlines()
    second = lines[1].strip().lower() if len(lines) > 1 else ""
    if subfile == LABEL or second.startswith("label"):
        return "label"
    if subfile == MACRO or second.startswith("macro"):
        return "macro"
    if directory.index == 1:
        return "thumbnail"
    return "unknown"


def scrub_description(text):
    """The description with every value outside KEEP emptied, and the (key, value) pairs removed."""
    items = text.split("|")
    kept, removed = [items[0]], []
    for item in items[1:]:
        key, sep, value = item.partition("=")
        if not sep:
            raise FormatError(f"Aperio description item without '=' ({len(item)} characters)")
        if key.strip() in KEEP:
            kept.append(item)
        else:
            kept.append(f"{key.rstrip()} = ")
            if value.strip():
                removed.append((key.strip(), value.strip()))
    return "|".join(kept), removed


def plan(tiff, surgery, options):
    for directory, kind in surgery.classify(role):
        if kind == "label" or kind == "unknown" or (kind == "macro" and not options.keep_macro):
            surgery.destroy(directory, f"{kind} image")
            continue
        if Tag.IMAGE_DESCRIPTION in directory.entries:
            new, removed = scrub_description(tiff.text(directory, Tag.IMAGE_DESCRIPTION))
            surgery.replace_ascii(directory, Tag.IMAGE_DESCRIPTION, new, [value for _, value in removed])
            for key, _ in removed:
                surgery.note(f"{key} emptied")
        surgery.drop_unlisted(directory, ALLOWED_TAGS)
    if surgery.label:
        surgery.append_label(f"paw drawn label\nlabel {surgery.label.width}x{surgery.label.height}", LABEL)


def check(tf, options, drawn=()):
    """Independent checks on the anonymized file, read with tifffile: problems found, if any."""
    problems = []
    pages = list(tf.pages)
    if not (pages[0].is_tiled and pages[0].description.startswith("Aperio")):
        problems.append("no longer detected as Aperio")
    for i, page in enumerate(pages):
        for item in page.description.split("|")[1:]:
            key, _, value = item.partition("=")
            if key.strip() not in KEEP and value.strip():
                problems.append(f"description field {key.strip()!r} still has a value")
        if page.is_tiled:
            continue
        lines = page.description.splitlines()
        second = lines[1].strip().lower() if len(lines) > 1 else ""
        if (page.subfiletype == LABEL or second.startswith("label")) and i not in drawn:
            problems.append(f"a label image is still listed (directory {i})")
        if not options.keep_macro and (page.subfiletype == MACRO or second.startswith("macro")):
            problems.append(f"a macro image is still listed (directory {i})")
    return problems
