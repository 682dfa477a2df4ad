"""Ventana BIF (Roche iScan Coreo/HT, VENTANA DP 200/600), BigTIFF or legacy classic TIFF.

OpenSlide (openslide-vendor-ventana.c) detects the format by the XMP packet (tag 700) of
directory 0 containing an `iScan` element (the root, or under `Metadata`); its non-empty
attributes become `ventana.*` (Magnification -> objective power, ScanRes -> mpp). Levels are
tiled directories described `level=N mag=M`, numbered from 0, magnification decreasing, one
tile size; level 0 may carry an `EncodeInfo` XMP whose ImageInfo, AoiOrigin and TileJointInfo
give the tile positions (a bad value there makes the open fail). A description of exactly
`Label Image` or `Label_Image` is exposed as `macro`, `Thumbnail` as thumbnail. In real files
directory 0 *is* the label photo and carries the iScan XMP, so it cannot be unlinked.

What paw keeps, each value typed (ELEMENTS, LEVEL):
- the label directory keeps its place (OpenSlide needs directory 0's XMP) but its pixels are
  zeroed and its description dropped, so nothing lists it any more; the thumbnail (the whole
  slide, label included), Probability_Image and every other directory that is not a level are
  destroyed; `keep_macro` keeps neither (the label is the macro here);
- both XMP packets are edited in place in their raw text (xmltext.py, never re-serialised: an
  ElementTree round trip made the real DP 200 level-0 XMP *longer*): an attribute stays only if
  ELEMENTS lists it for its element and its value has the listed type (iScan: magnification,
  resolution, scan and focus modes, build version, scanner model; EncodeInfo: the stitching
  numbers and joint directions OpenSlide reads), else it is cut out (UnitNumber, UserName,
  Barcode1D/2D, BaseName, JP2FileName, BuildDate, SlideAnnotation, Rack, Slot, paths, unknown
  attributes); a geometry value OpenSlide needs that is not a number refuses the slide;
  elements ELEMENTS does not list (ServerDirectory, PrescanData), comments, processing
  instructions and any text are cut out;
- level descriptions keep only typed `level=`, `mag=` and `quality=` fields; every tag not image
  structure, description or XMP is dropped (Software only as `ScanOutputManager <version>`);
- with `label: replace` the drawn label is appended as a stripped directory described
  `Label_Image`: Ventana's name for the label, which OpenSlide lists as `macro`.

Sources: OpenSlide's ventana reader; the Ventana-1.bif (DP 200) iScan packet quoted in NVIDIA
nvImageCodec's tests; a DP 600 packet and the EncodeInfo layout from public BIF readers;
/work/notes/tiff-fail-closed.md §3.4.
"""

import re

from . import xmltext
from ..errors import FormatError
from .allow import EMPTY, Integer, Number, NumberList, OneOf, Pattern, XmlElement, element_rule
from .tiffallow import STRUCTURE, Text, Vendor
from .tifftags import Tag

NAME = "ventana"
TITLE = "Ventana BIF"
LABEL_PLACE = "a new stripped directory described 'Label_Image' (OpenSlide lists it as macro)"
XMP = Tag.XMP
TAGS = {**STRUCTURE, Tag.IMAGE_DESCRIPTION: Vendor("ventana description"), XMP: Vendor("ventana xmp"),
        Tag.SOFTWARE: Text(Pattern(r"ScanOutputManager \d+(?:\.\d+){3}(?:-[0-9a-f]+)?"))}
LABEL_DESCRIPTIONS = ("Label Image", "Label_Image")
THUMBNAIL = "Thumbnail"

# Every kept number has the range and precision real BIFs write (the DP 200 packet of
# Ventana-1.bif, a DP 600 packet and EncodeInfo layouts from public readers; §3.4 of
# /work/notes/tiff-fail-closed.md): pixel positions within a slide scan, tile counts, microns.
_PIXEL = Integer(low=-1, high=10 ** 6)              # AOI and stitching rectangles, -1 when unset
_COUNT = Integer(low=0, high=10 ** 6)               # rows, columns, tile numbers
_POSITION = Number(low=-10 ** 7, high=10 ** 7, decimals=6)   # Pos-X, Pos-Y, overlaps (pixels)
_MICRONS = Number(low=0, high=10 ** 4, decimals=6)
_SMALL = Integer(low=0, high=99)
ISCAN = {
    "Mode": OneOf("brightfield", "fluorescence"),
    "Magnification": Integer(low=1, high=100),                    # 40 (DP 200), 20 (DP 600)
    "ScanRes": Number(low=0.01, high=50, decimals=8),             # 0.25, 0.465
    "ScannerModel": Pattern(r"VENTANA DP \d{3}|iScan (?:Coreo|HT)(?: Au)?"),
    "Z-layers": Integer(low=0, high=999), "Z-spacing": _MICRONS,
    "BuildVersion": Pattern(r"\d{1,5}(?:\.\d{1,6}){3}(?:-[0-9a-f]{1,40})?"),   # 1.1.0.15854, 1.0.0.972-8f4bc6c
    "ShowLabel": _SMALL, "LabelBoundary": _SMALL, "FocusMode": _SMALL, "FocusQuality": _SMALL,
    "ScanMode": _SMALL, "Anonymization": _SMALL, "ScanWhitePoint": Integer(low=0, high=255),
}
_OPTIONAL = _MICRONS | EMPTY
ELEMENTS = {
    "Metadata": XmlElement({}),
    "iScan": XmlElement(ISCAN),
    "re:AOI\\d+": XmlElement({**{k: _PIXEL for k in ("Left", "Top", "Right", "Bottom", "OriginX", "OriginY")},
                               "AOIScanned": _SMALL}),
    "ProcessingParameters": XmlElement({}),
    "Registration": XmlElement({"Method": OneOf("None"), "UseLinearEncoder": _SMALL,
                                "Radius": Integer(low=0, high=9999),
                                **{k: _OPTIONAL for k in ("OverlapMinMicrons", "OverlapMaxMicrons",
                                                          "ShiftMaxMicrons", "OverlapMin",
                                                          "OverlapMax", "ShiftMax")}}),
    "Color": XmlElement({"TwistRGB": NumberList(Number(low=-100, high=100, decimals=8), 9),
                         "Applied": _SMALL}),
    "EncodeInfo": XmlElement({"Ver": Integer(low=0, high=99)}),
    "SlideInfo": XmlElement({}),
    "LabelImage": XmlElement({"ShowLabel": _SMALL, "LabelBoundary": _SMALL}),
    "AoiInfo": XmlElement({"XIMAGESIZE": _PIXEL, "YIMAGESIZE": _PIXEL, "NumRows": _COUNT,
                           "NumCols": _COUNT, "Pos-X": _POSITION, "Pos-Y": _POSITION}),
    "SlideStitchInfo": XmlElement({k: _PIXEL for k in ("Left", "Top", "Right", "Bottom")}),
    "ImageInfo": XmlElement({"AOIScanned": _SMALL, "AOIIndex": _COUNT, "NumRows": _COUNT, "NumCols": _COUNT,
                             "Width": Integer(low=1, high=65536), "Height": Integer(low=1, high=65536),
                             "Pos-X": _POSITION, "Pos-Y": _POSITION},
                            required=frozenset({"AOIScanned", "NumRows", "NumCols", "Width",
                                                "Height", "Pos-X", "Pos-Y"})),
    "TileJointInfo": XmlElement({"FlagJoined": _SMALL, "Confidence": Integer(low=-1, high=10 ** 6),
                                 "Direction": OneOf("LEFT", "RIGHT", "UP", "DOWN"),
                                 "Tile1": _COUNT, "Tile2": _COUNT, "OverlapX": _POSITION, "OverlapY": _POSITION},
                                required=frozenset({"Confidence", "Direction", "Tile1", "Tile2",
                                                    "OverlapX", "OverlapY"})),
    "Frame": XmlElement({"XY": NumberList(_COUNT, 2), "Z": Integer(low=0, high=999), "Focus": _POSITION}),
    "FrameInfo": XmlElement({}),
    "AoiOrigin": XmlElement({}),
}
DECLARATION = Pattern(r"""<\?xml version=["']1\.0["'](?: encoding=["'](?:UTF-8|utf-8)["'])? ?\?>""")
# Level descriptions: `level=N mag=M quality=Q` (OpenSlide needs level and mag).
LEVEL_FIELDS = {"level": Integer(low=0, high=99), "mag": Number(low=0, high=400),
                "quality": Integer(low=0, high=100)}
LEVEL = Pattern(r"level=\d+ mag=\d+(?:\.\d+)?(?: quality=\d+)?")


def _xmp_text(tiff, directory):
    """The XMP as OpenSlide reads it (up to the first NUL), one character per byte."""
    entry = directory.entries.get(XMP)
    return tiff.raw_value(entry).split(b"\0", 1)[0].decode("latin-1") if entry else ""


def refused_variant(tiff):
    return None


def detect(tiff):
    return "iScan" in _xmp_text(tiff, tiff.directories[0])


class Scrub:
    """The edits that leave a Ventana XMP packet with typed attributes only."""

    def __init__(self, text, what):
        self.document = xmltext.scan(text, what)
        self.what = what
        self.edits, self.removed, self.names, self.unknown = [], [], [], 0
        for span in self.document.extra:
            self._cut(span)
            self.names.append("comments or text outside the elements")
        self._element(self.document.root)

    def result(self):
        return xmltext.splice(self.document.text, self.edits)

    def _cut(self, span):
        self.edits.append(xmltext.delete(span))
        self.removed.append(self.document.text[span[0]:span[1]].strip("<>!-?[] \r\n\t"))

    def _element(self, element):
        rule = element_rule(ELEMENTS, element.local)
        if rule is None:
            self.unknown += 1
            self._cut((element.start, element.end))
            return
        for attribute in element.attributes:
            kind = rule.attribute(attribute.name)
            if kind is not None and kind.accepts(attribute.value):
                continue
            if attribute.name in rule.required:
                raise FormatError(f"{self.what}: {element.local} {attribute.name} is not {kind.label}")
            self.edits.append(xmltext.delete(attribute.span))
            self.removed.append(attribute.value)
            if kind is None:
                self.unknown += 1
            else:
                self.names.append(f"{element.local} {attribute.name} (not {kind.label})")
        for start, end, text in element.texts:
            if text.strip():
                self._cut((start, end))
                self.names.append("text between elements")
        for child in element.children:
            self._element(child)


def level_fields(text):
    """The typed `level=`, `mag=`, `quality=` fields of a level description, in order."""
    fields = []
    for field in text.split():
        key, _, value = field.partition("=")
        kind = LEVEL_FIELDS.get(key)
        if kind is not None and kind.accepts(value) and key not in (f.partition("=")[0] for f in fields):
            fields.append(field)
    return " ".join(fields)


def role(tiff, directory):
    description = tiff.text(directory, Tag.IMAGE_DESCRIPTION)
    if description in LABEL_DESCRIPTIONS:
        return "label"
    if description == THUMBNAIL:
        return "thumbnail"
    if tiff.is_tiled(directory) and "level=" in description:
        return "level"
    return "unknown"


def _check_levels(tiff, levels):
    """OpenSlide's rules, plus geometry: level=0..n-1, magnification decreasing, one tile size,
    each level level 0 shrunk by a power of two."""
    from .aperio import _size, _tile, shrinks_by_power_of_two
    numbered = {}
    for directory in levels:
        fields = dict(f.partition("=")[::2] for f in level_fields(tiff.text(directory, Tag.IMAGE_DESCRIPTION)).split())
        if "level" not in fields or "mag" not in fields:
            raise FormatError(f"directory {directory.index}: level description without typed level and mag")
        numbered[int(fields["level"])] = (float(fields["mag"]), directory)
    if sorted(numbered) != list(range(len(numbered))):
        raise FormatError("Ventana levels are not numbered 0, 1, 2, ...")
    base = numbered[0][1]
    for number in range(1, len(numbered)):
        mag, directory = numbered[number]
        if mag >= numbered[number - 1][0] or _tile(tiff, directory) != _tile(tiff, base) or \
                not shrinks_by_power_of_two(_size(tiff, base), _size(tiff, directory)):
            raise FormatError(f"directory {directory.index} is not a pyramid level of level 0")


def plan(tiff, surgery, options):
    levels = []
    for directory, kind in surgery.classify(role):
        if kind != "level" and directory.index != 0:
            surgery.destroy(directory, f"{kind} image")
            continue
        if kind != "level":  # directory 0 is the label: keep it for its XMP, lose its pixels
            surgery.blank(directory, f"{kind} image")
            if Tag.IMAGE_DESCRIPTION in directory.entries:
                surgery.drop(directory, Tag.IMAGE_DESCRIPTION)
        if XMP in directory.entries:
            scrub = Scrub(_xmp_text(tiff, directory), f"directory {directory.index} XMP")
            surgery.replace_ascii(directory, XMP, scrub.result(), scrub.removed)
            for name in scrub.names:
                surgery.note(f"XMP: {name} removed")
            if scrub.unknown:
                surgery.count_note("unknown XMP attributes or elements removed", scrub.unknown)
        if kind == "level":
            levels.append(directory)
            description = tiff.text(directory, Tag.IMAGE_DESCRIPTION)
            surgery.replace_ascii(directory, Tag.IMAGE_DESCRIPTION, level_fields(description),
                                  [f for f in description.split() if f not in level_fields(description).split()])
        surgery.keep_typed(directory, TAGS)
    if not levels:
        raise FormatError("Ventana file without a level=N directory")
    _check_levels(tiff, levels)
    if surgery.label:
        surgery.append_label(LABEL_DESCRIPTIONS[1])


def check(tf, options, drawn=()):
    """Structure OpenSlide needs; every text left is explained by tiffaudit against ELEMENTS."""
    problems = []
    pages = list(tf.pages)
    xmp = pages[0].tags[XMP].value if XMP in pages[0].tags else b""
    xmp = xmp.decode("latin-1") if isinstance(xmp, bytes) else xmp
    if not re.search(r"<iScan[\s/>]", xmp):
        return ["no longer detected as Ventana (no iScan XMP in directory 0)"]
    for i, page in enumerate(pages):
        if i in drawn:
            continue
        if page.description in LABEL_DESCRIPTIONS or page.description == THUMBNAIL:
            problems.append(f"directory {i} is still listed as label or thumbnail")
        if i and not page.is_tiled:
            problems.append(f"directory {i} is not a level")
    return problems
