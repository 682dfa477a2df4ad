"""Ventana BIF (Roche iScan Coreo/HT, VENTANA DP 200/600), BigTIFF or legacy classic TIFF.

OpenSlide (openslide-vendor-ventana.c) detects the format by the XMP packet (tag 700) of
directory 0 containing an `iScan` element (the root, or under `Metadata`); its attributes become
`ventana.*`. Levels are tiled directories described `level=N mag=M`; a description of exactly
`Label Image` or `Label_Image` is exposed as `macro`, `Thumbnail` as thumbnail. In real files
directory 0 *is* the label photo and carries the iScan XMP, so it cannot be unlinked.

What paw does:
- the label directory keeps its place (OpenSlide needs directory 0's XMP) but its pixels are
  zeroed and its description dropped, so nothing lists it any more;
- the thumbnail (a photo of the whole slide, label included) is destroyed, as is every other
  directory that is not a level; `keep_macro` keeps neither (the label is the macro here);
- iScan attributes keep their value only if listed in KEEP_ISCAN (magnification, resolution,
  scan mode, software build, scanner model); UnitNumber, UserName, Barcode1D/2D, BaseName,
  JP2FileName, BuildDate, SlideAnnotation and any unknown attribute are emptied;
- in the XMP's other elements (EncodeInfo: the tile stitching geometry OpenSlide reads)
  numeric attribute values and tile-joint directions are kept, every other value emptied;
- level descriptions keep only their level=, mag= and quality= fields; every tag not image
  structure, product name, description or XMP is dropped;
- with `label: replace` the drawn label is appended as a stripped directory described
  `Label_Image`: Ventana's name for the label, which OpenSlide lists as `macro`.
"""

import re

from . import xmltext
from ..errors import FormatError
from .tifftags import PRODUCT, STRUCTURAL, Tag

NAME = "ventana"
TITLE = "Ventana BIF"
LABEL_PLACE = "a new stripped directory described 'Label_Image' (OpenSlide lists it as macro)"
XMP = Tag.XMP
ALLOWED_TAGS = STRUCTURAL | PRODUCT | {Tag.IMAGE_DESCRIPTION, XMP}
LABEL_DESCRIPTIONS = ("Label Image", "Label_Image")
KEEP_ISCAN = frozenset({"Magnification", "ScanRes", "ScanMode", "FocusMode", "BuildVersion",
                        "ScannerModel", "Z-layers", "Z-spacing", "ShowLabel"})
LEVEL_FIELDS = ("level", "mag", "quality")
_NUMBER = re.compile(r"-?\d+(\.\d+)?([eE][-+]?\d+)?")
_DIRECTIONS = {"LEFT", "RIGHT", "UP", "DOWN"}


def _xmp_text(tiff, directory):
    entry = directory.entries.get(XMP)
    return tiff.raw_value(entry).decode("utf-8", "replace") if entry else ""


def refused_variant(tiff):
    return None


def detect(tiff):
    return "iScan" in _xmp_text(tiff, tiff.directories[0])


def scrub_xmp(text):
    """The new XMP, the removed values, and the names of the attributes emptied."""
    root = xmltext.parse(text, "Ventana XMP")
    removed, names = [], []
    for element in root.iter():
        is_iscan = xmltext.local(element.tag) == "iScan"
        for key, value in element.attrib.items():
            keep = key in KEEP_ISCAN if is_iscan else bool(_NUMBER.fullmatch(value)) or value in _DIRECTIONS
            if not keep and value.strip():
                removed.append(value)
                names.append(f"{'iScan ' if is_iscan else ''}{key} emptied")
                element.set(key, "")
        if element.text and element.text.strip():
            removed.append(element.text.strip())
            element.text = ""
    return xmltext.serialize(root, text), removed, names


def scrub_level_description(text):
    fields = [f for f in text.split() if f.partition("=")[0] in LEVEL_FIELDS]
    return " ".join(fields)


def role(tiff, directory):
    description = tiff.text(directory, Tag.IMAGE_DESCRIPTION)
    if description in LABEL_DESCRIPTIONS:
        return "label"
    if description == "Thumbnail":
        return "thumbnail"
    if tiff.is_tiled(directory) and "level=" in description:
        return "level"
    return "unknown"


def plan(tiff, surgery, options):
    for directory, kind in surgery.classify(role):
        if kind != "level" and directory.index != 0:
            surgery.destroy(directory, f"{kind} image")
            continue
        if kind != "level":  # directory 0 is the label: keep it for its XMP, lose its pixels
            surgery.blank(directory, f"{kind} image")
            if Tag.IMAGE_DESCRIPTION in directory.entries:
                surgery.drop(directory, Tag.IMAGE_DESCRIPTION)
        if XMP in directory.entries:
            new, removed, names = scrub_xmp(_xmp_text(tiff, directory))
            surgery.replace_ascii(directory, XMP, new, removed, encoding="utf-8")
            for name in names:
                surgery.note(name)
        if kind == "level":
            description = tiff.text(directory, Tag.IMAGE_DESCRIPTION)
            new = scrub_level_description(description)
            if new != description:
                surgery.replace_ascii(directory, Tag.IMAGE_DESCRIPTION, new, [])
        surgery.drop_unlisted(directory, ALLOWED_TAGS)
    if not surgery.found.get("level"):
        raise FormatError("Ventana file without a level=N directory")
    if surgery.label:
        surgery.append_label(LABEL_DESCRIPTIONS[1])


def check(tf, options, drawn=()):
    problems = []
    pages = list(tf.pages)
    xmp = pages[0].tags[XMP].value if XMP in pages[0].tags else b""
    xmp = xmp.decode("utf-8", "replace") if isinstance(xmp, bytes) else xmp
    if "iScan" not in xmp:
        return ["no longer detected as Ventana (no iScan XMP in directory 0)"]
    for i, page in enumerate(pages):
        if i in drawn:
            continue
        if page.description in LABEL_DESCRIPTIONS or page.description == "Thumbnail":
            problems.append(f"directory {i} is still listed as {page.description}")
        if i and not page.is_tiled:
            problems.append(f"directory {i} is not a level")
        if XMP in page.tags:
            for element in xmltext.parse(_decode(page.tags[XMP].value), "Ventana XMP").iter():
                if xmltext.local(element.tag) == "iScan":
                    for key, value in element.attrib.items():
                        if key not in KEEP_ISCAN and value:
                            problems.append(f"iScan {key} still has a value")
    return problems


def _decode(value):
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value
