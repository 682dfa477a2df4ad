"""Philips TIFF (IntelliSite Pathology Solution export); its XML is also iSyntax's header.

OpenSlide (openslide-vendor-philips.c) detects Software starting `Philips` and a description that
is a `DataObject` of ObjectType `DPUfsImport`. It needs exactly one `DPScannedImage` of type WSI
whose PIIM_PIXEL_DATA_REPRESENTATION_SEQUENCE has one DICOM_PIXEL_SPACING per tiled level, and
shows every leaf `Attribute` as `philips.<Name>`. Label and macro come from stripped directories
whose description starts `Label`/`Macro`, else from the base64 JPEG in PIM_DP_IMAGE_DATA of the
LABELIMAGE/MACROIMAGE DPScannedImage.

What paw keeps, each value typed (ATTRIBUTES, ELEMENTS):
- the XML of directory 0 is edited in place in its raw text (xmltext.py; never re-serialised,
  never longer): an `Attribute` element stays only if its Name is in ATTRIBUTES and its value
  has that name's type (pixel geometry and encoding, manufacturer, software version); every
  other Attribute — DICOM_ACQUISITION_DATETIME, DICOM_DEVICE_SERIAL_NUMBER, the operator, rack,
  slot, barcode (base64; its decoded text is searched for too), source file, calibration dates,
  DICOM_DERIVATION_DESCRIPTION (the converter writes `sourceFilename=` there), any name paw has
  never seen — is cut out whole, name and value; a kept name with a value of another shape
  loses its value; XML attributes other than Name/Group/Element/PMSVR (typed), elements other
  than DataObject/Attribute/Array, comments, processing instructions, CDATA, text between
  elements and text after the root are cut out;
- the LABELIMAGE and MACROIMAGE DataObjects (base64 images) are cut out (the macro is kept with
  `keep_macro` if its base64 is a JPEG whose header holds no text);
- stripped directories (Label, Macro, anything else) are destroyed; a tiled directory is a
  level only if it is level 0 shrunk by a power of two with level 0's tile size (else the
  slide is refused: OpenSlide needs one pixel spacing per level); level descriptions go;
- Software kept only as `Philips DP v<version>` (OpenSlide needs the prefix: another value
  refuses the slide); every other tag not image structure goes;
- with `label: replace` the drawn label is appended as a stripped directory described `Label`.

Sources: Group/Element/PMSVR of each name from DSA-WSI-DeID's PhilipsTagElements; values from
Philips-1.tiff (OpenSlide test data, quoted in NVIDIA nvImageCodec's tests) and libisyntax;
/work/notes/tiff-fail-closed.md §3.3.
"""

import base64
import binascii

from . import xmltext
from ..errors import FormatError
from .allow import Integer, Kind, Number, NumberList, OneOf, Pattern, XmlElement, element_rule
from .tiffallow import STRUCTURE, Text, Vendor
from .tifftags import Tag

NAME = "philips"
TITLE = "Philips TIFF"
LABEL_PLACE = "a new stripped directory described 'Label' (OpenSlide: label)"
TAGS = {**STRUCTURE, Tag.IMAGE_DESCRIPTION: Vendor("philips description"),
        Tag.SOFTWARE: Text(Pattern(r"Philips DP v\d+(?:\.\d+)*"), required=True)}



def _quoted(item, count=None):
    """A Philips IStringArray/IDoubleArray value: items in double quotes, space separated."""
    if count:
        return Pattern(rf"{item}(?: {item}){{{count - 1}}}")
    return Pattern(rf"{item}(?: {item})*")


SEQUENCE = OneOf("")  # an Attribute holding an <Array> of DataObjects: no text of its own


class JpegBase64(Kind):
    """Base64 of a JPEG whose header segments hold no text (tables, frame, JFIF/Adobe only)."""
    label = "a base64 JPEG without text segments"

    def accepts(self, text):
        from . import jpeg
        try:
            data = base64.b64decode("".join(text.split()), validate=True)
            return not jpeg.unexplained(data)
        except (binascii.Error, ValueError, FormatError):
            return False

_UINT = Integer(low=0)
# Every kept number has the range and precision real files write (Philips-1.tiff values quoted
# in /work/notes/tiff-fail-closed.md §3.3): a level is at most 262144 pixels wide, a pixel spacing
# is millimetres (0.000227273), a JPEG compression ratio is a few units ("3").
_PIXELS = Integer(low=1, high=262144)                                       # 45056, 35840
_MM_PER_PIXEL = Number(low=0.00001, high=0.1, decimals=12)                  # 0.000227273
ATTRIBUTES = {
    "DICOM_MANUFACTURER": OneOf("PHILIPS", "Philips", "Hamamatsu", "Leica Biosystems", "Aperio",
                                "3DHISTECH", "Ventana"),                      # Hamamatsu (Philips-1)
    "DICOM_MANUFACTURERS_MODEL_NAME": Pattern(r"UFS(?: Scanner)?|C\d{4,5}(?:-\d{2})?"),
    "DICOM_SOFTWARE_VERSIONS": _quoted(r'"\d{1,5}(?:\.\d{1,5}){0,3}"'),         # "4.0.3", "1.8.6824"
    "DICOM_BITS_ALLOCATED": Integer(low=1, high=32), "DICOM_BITS_STORED": Integer(low=1, high=32),
    "DICOM_HIGH_BIT": Integer(low=0, high=31),
    "DICOM_PIXEL_REPRESENTATION": Integer(low=0, high=1), "DICOM_PLANAR_CONFIGURATION": Integer(low=0, high=1),
    "DICOM_SAMPLES_PER_PIXEL": Integer(low=1, high=4),
    "DICOM_PHOTOMETRIC_INTERPRETATION": OneOf("RGB", "YBR_FULL", "YBR_FULL_422", "YBR_ICT",
                                              "YBR_RCT", "MONOCHROME2"),
    "DICOM_LOSSY_IMAGE_COMPRESSION": OneOf("00", "01"),
    "DICOM_LOSSY_IMAGE_COMPRESSION_METHOD": _quoted(
        r'"(?:PHILIPS_TIFF_1_0|PHILIPS_DP_1_0|ISO_10918_1|ISO_15444_1)"'),
    "DICOM_LOSSY_IMAGE_COMPRESSION_RATIO": NumberList(Number(low=1, high=500, decimals=6), separator=" ", quoted=True)
                                           | Number(low=1, high=500, decimals=6),   # "3"
    "DICOM_PIXEL_SPACING": NumberList(_MM_PER_PIXEL, 2, " ", quoted=True),     # "0.000227273" x2
    "PIM_DP_IMAGE_TYPE": OneOf("WSI", "LABELIMAGE", "MACROIMAGE"),
    "PIM_DP_IMAGE_ROWS": _PIXELS, "PIM_DP_IMAGE_COLUMNS": _PIXELS,
    "PIM_DP_IMAGE_DATA": JpegBase64(),             # only in a kept MACROIMAGE (keep_macro)
    "PIM_DP_UFS_INTERFACE_VERSION": Pattern(r"\d{1,3}\.\d{1,3}"),                # 3.0, 5.0, 100.5
    "PIM_DP_SCANNED_IMAGES": SEQUENCE,
    "PIIM_DP_SCANNER_CALIBRATION_STATUS": OneOf("OK", "NOT OK"),
    "PIIM_PIXEL_DATA_REPRESENTATION_SEQUENCE": SEQUENCE,
    "PIIM_PIXEL_DATA_REPRESENTATION_NUMBER": Integer(low=0, high=63),
    "PIIM_PIXEL_DATA_REPRESENTATION_COLUMNS": _PIXELS, "PIIM_PIXEL_DATA_REPRESENTATION_ROWS": _PIXELS,
    "PIIM_DP_PIXEL_DATA_REPRESENTATION_POSITION": NumberList(Number(low=-1000, high=1000, decimals=12), 3, " ",
                                                             quoted=True),   # "0" "0" "0"
    "UFS_IMAGE_PIXEL_TRANSFORMATION_METHOD": Integer(low=0, high=99),
}
# What OpenSlide needs to open the slide: a value of another shape refuses it (never emptied).
NEEDED = frozenset({"DICOM_PIXEL_SPACING"})
# Removed names the ledger may name (another Name attribute is only counted: it is file text).
KNOWN_REMOVED = ("DICOM_ACQUISITION_DATETIME", "DICOM_DATE_OF_LAST_CALIBRATION",
                 "DICOM_TIME_OF_LAST_CALIBRATION", "DICOM_DERIVATION_DESCRIPTION",
                 "DICOM_DEVICE_SERIAL_NUMBER", "DICOM_ICCPROFILE", "PIIM_DP_SCANNER_OPERATOR_ID",
                 "PIIM_DP_SCANNER_RACK_NUMBER", "PIIM_DP_SCANNER_SLOT_NUMBER",
                 "PIM_DP_SCANNER_RACK_PRIORITY", "PIM_DP_SOURCE_FILE", "PIM_DP_UFS_BARCODE")
OBJECT_TYPES = OneOf("DPUfsImport", "DPScannedImage", "PixelDataRepresentation")
_HEX4 = Pattern(r"0x[0-9A-Fa-f]{4}")
PMSVR = OneOf("IString", "IStringArray", "IDouble", "IDoubleArray", "IUInt16", "IUInt32",
              "IUInt16Array", "IUInt32Array", "IUint64", "IUInt64", "IDataObjectArray")
NAMED = object()  # marker: the element's text kind comes from its Name attribute (ATTRIBUTES)
ELEMENTS = {
    "DataObject": XmlElement({"ObjectType": OBJECT_TYPES}, required=frozenset({"ObjectType"})),
    "Attribute": XmlElement({"Name": None, "Group": _HEX4, "Element": _HEX4, "PMSVR": PMSVR},
                            text=NAMED),
    "Array": XmlElement({}),
}
ASSOCIATED = ("LABELIMAGE", "MACROIMAGE")
IMAGE_DATA = "PIM_DP_IMAGE_DATA"
DECLARATION = Pattern(r"""<\?xml version=["']1\.0["'](?: encoding=["'](?:UTF-8|utf-8)["'])? ?\?>""")
LEVEL_ROUNDING = 2


def _is_philips(software, description):
    return software.startswith("Philips") and "DPUfsImport" in description[:512]


def refused_variant(tiff):
    first = tiff.directories[0]
    description = tiff.text(first, Tag.IMAGE_DESCRIPTION)[:4096]
    if ("DPUfsImport" in description) != tiff.text(first, Tag.SOFTWARE).startswith("Philips"):
        return "Philips TIFF variant (only one of Software and XML says Philips)"
    return None


def detect(tiff):
    first = tiff.directories[0]
    return _is_philips(tiff.text(first, Tag.SOFTWARE), tiff.text(first, Tag.IMAGE_DESCRIPTION))


def image_type(data_object):
    for child in data_object.children:
        if child.local == "Attribute" and child.get("Name") == "PIM_DP_IMAGE_TYPE":
            return child.text.strip()
    return None


class Scrub:
    """The edits that leave a DPUfsImport document with typed content only."""

    def __init__(self, text, what, keep_macro, attributes=ATTRIBUTES, object_types=OBJECT_TYPES,
                 refuse=lambda name: False):
        """`attributes` types each Attribute Name; `refuse(name)` says which names a reader
        needs (iSyntax's codec): one of those paw cannot type refuses the file."""
        self.document = xmltext.scan(text, what)
        self.what, self.keep_macro, self.refuse = what, keep_macro, refuse
        self.attributes = attributes
        self.elements = {**ELEMENTS, "DataObject": XmlElement({"ObjectType": object_types},
                                                              required=frozenset({"ObjectType"}))}
        self.edits, self.removed, self.names, self.unknown = [], [], [], 0
        root = self.document.root
        if root.local != "DataObject" or root.get("ObjectType") != "DPUfsImport":
            raise FormatError(f"{what} is not a DPUfsImport DataObject")
        for span in self.document.extra:
            self._cut(span, "comments, processing instructions or text outside the elements")
        self._element(root)

    def result(self):
        return xmltext.splice(self.document.text, self.edits)

    def _cut(self, span, name=None):
        self.edits.append(xmltext.delete(span))
        self.removed.append(self.document.text[span[0]:span[1]].strip("<>!-?[] \r\n\t"))
        if name and name not in self.names:
            self.names.append(name)

    def _element(self, element):
        rule = element_rule(self.elements, element.local)
        if rule is None:
            self.unknown += 1
            self._cut((element.start, element.end))
            return
        if element.local == "DataObject":
            kind = image_type(element)
            if kind in ASSOCIATED and not (kind == "MACROIMAGE" and self.keep_macro and self._clean_macro(element)):
                self.edits.append(xmltext.delete((element.start, element.end)))
                self.names.append(f"{kind} (base64 image)")
                return
        for attribute in element.attributes:
            kind = rule.attribute(attribute.name)
            if attribute.name == "Name" and element.local == "Attribute":
                continue
            if kind is None or not kind.accepts(attribute.value):
                if attribute.name in rule.required:
                    raise FormatError(f"{self.what}: {element.local} {attribute.name} is not a known value")
                self._cut(attribute.span)
                self.unknown += 1
        if element.local == "Attribute":
            self._attribute(element)
            return
        for start, end, text in element.texts:
            if text.strip():
                self._cut((start, end), "text between elements")
        for child in element.children:
            self._element(child)

    def _attribute(self, element):
        name = element.get("Name", "")
        kind = self.attributes.get(name)
        if name == IMAGE_DATA and not (self.keep_macro and element.parent is not None
                                       and image_type(element.parent) == "MACROIMAGE"):
            kind = None  # an image's base64 stays only in a kept macro
        if self.refuse(name) and (kind is None or not (kind is SEQUENCE or kind.accepts(element.text.strip()))):
            raise FormatError(f"{self.what}: an attribute a reader needs is not {kind.label if kind else 'typed'}")
        if kind is None:
            value = element.text.strip()
            self.removed.extend([value.replace('"', " ").strip()] + value.split('"'))
            if name == "PIM_DP_UFS_BARCODE":
                try:
                    self.removed.append(base64.b64decode(value, validate=True).decode("utf-8", "replace"))
                except (binascii.Error, ValueError):
                    pass
            self.edits.append(xmltext.delete((element.start, element.end)))
            if name in KNOWN_REMOVED:
                self.names.append(KNOWN_REMOVED[KNOWN_REMOVED.index(name)])
            else:
                self.unknown += 1
            return
        if kind is SEQUENCE:
            for start, end, text in element.texts:
                if text.strip():
                    self._cut((start, end), "text between elements")
            for child in element.children:
                self._element(child)
            return
        if element.children:
            for child in element.children:
                self._cut((child.start, child.end), f"{name} (not {kind.label})")
        if not kind.accepts(element.text.strip()):
            for start, end, _ in element.texts:
                self._cut((start, end), f"{name} (not {kind.label})")

    def _clean_macro(self, data_object):
        """A kept base64 macro must be a JPEG whose header segments hold no text."""
        return all(self.attributes[IMAGE_DATA].accepts(child.text)
                   for child in data_object.children if child.get("Name") == IMAGE_DATA)


def role(tiff, directory):
    from .aperio import _size, _tile, shrinks_by_power_of_two
    if tiff.is_tiled(directory):
        first = tiff.directories[0]
        if directory.index == 0 or (_tile(tiff, directory) == _tile(tiff, first) and shrinks_by_power_of_two(
                _size(tiff, first), _size(tiff, directory), LEVEL_ROUNDING, pad=_tile(tiff, first)[0] or 1)):
            return "level"
        raise FormatError(f"directory {directory.index} is tiled but not a pyramid level")
    description = tiff.text(directory, Tag.IMAGE_DESCRIPTION)
    for kind in ("Label", "Macro"):
        if description.startswith(kind):
            return kind.lower()
    return "unknown"


def plan(tiff, surgery, options):
    for directory, kind in surgery.classify(role):
        if kind != "level" and not (kind == "macro" and options.keep_macro):
            surgery.destroy(directory, f"{kind} image")
            continue
        if directory.index == 0:
            scrub = Scrub(tiff.text(directory, Tag.IMAGE_DESCRIPTION), "Philips description",
                          options.keep_macro, refuse=NEEDED.__contains__)
            surgery.replace_ascii(directory, Tag.IMAGE_DESCRIPTION, scrub.result(), scrub.removed)
            for name in scrub.names:
                surgery.note(f"XML: {name} removed")
            if scrub.unknown:
                surgery.count_note("unknown XML attributes or elements removed", scrub.unknown)
        elif kind == "macro":  # kept with keep_macro: OpenSlide lists it by this word alone
            surgery.replace_ascii(directory, Tag.IMAGE_DESCRIPTION, "Macro",
                                  [tiff.text(directory, Tag.IMAGE_DESCRIPTION)[5:].strip()])
        elif Tag.IMAGE_DESCRIPTION in directory.entries:
            surgery.drop(directory, Tag.IMAGE_DESCRIPTION)
        surgery.keep_typed(directory, TAGS)
    if surgery.label:
        surgery.append_label("Label")


def check(tf, options, drawn=()):
    """Structure OpenSlide needs; every text left is explained by tiffaudit against ELEMENTS."""
    problems = []
    pages = list(tf.pages)
    first = pages[0]
    software = first.tags[Tag.SOFTWARE].value if Tag.SOFTWARE in first.tags else ""
    if not _is_philips(software, first.description):
        return ["no longer detected as Philips TIFF"]
    for i, page in enumerate(pages[1:], 1):
        if i in drawn:
            continue
        if not page.is_tiled and not (options.keep_macro and page.description.startswith("Macro")):
            problems.append(f"directory {i} is still a label, macro or other stripped image")
    return problems
