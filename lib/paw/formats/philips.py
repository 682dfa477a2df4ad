"""Philips TIFF (IntelliSite Pathology Solution export).

OpenSlide (openslide-vendor-philips.c) detects Software starting `Philips` and a description that
is a `DataObject` of ObjectType `DPUfsImport`. It needs exactly one `DPScannedImage` of type WSI
whose PIIM_PIXEL_DATA_REPRESENTATION_SEQUENCE has one DICOM_PIXEL_SPACING per tiled level. Label
and macro come from stripped directories whose description starts `Label`/`Macro`, else from
the base64 JPEG in PIM_DP_IMAGE_DATA of the LABELIMAGE/MACROIMAGE DPScannedImage.

What paw does:
- the XML in directory 0 is rewritten as a tree: every `Attribute` that holds text keeps it only
  if its Name is in KEEP (pixel geometry and encoding, manufacturer, software version); all
  others are emptied: DICOM_ACQUISITION_DATETIME, DICOM_DEVICE_SERIAL_NUMBER,
  PIIM_DP_SCANNER_OPERATOR_ID, RACK/SLOT numbers, PIM_DP_UFS_BARCODE (base64; its decoded text is
  searched for too), PIM_DP_SOURCE_FILE, calibration dates, DICOM_DERIVATION_DESCRIPTION (the
  converter writes `sourceFilename="..."` there) and any name paw has never seen;
- the LABELIMAGE and MACROIMAGE DataObjects (base64 images) are removed from the XML (the macro
  is kept with `keep_macro`); the new XML is shorter and the old bytes behind it are zeroed;
- stripped directories (Label, Macro, anything else) are destroyed; descriptions of the other
  tiled directories and every tag not image structure or product name are dropped;
- with `label: replace` the drawn label is appended as a stripped directory described `Label`
  (OpenSlide takes those before the XML's base64 images).
"""

import base64
import binascii

from . import xmltext
from ..errors import FormatError
from .tifftags import PRODUCT, STRUCTURAL, Tag

NAME = "philips"
TITLE = "Philips TIFF"
LABEL_PLACE = "a new stripped directory described 'Label' (OpenSlide: label)"
ALLOWED_TAGS = STRUCTURAL | PRODUCT | {Tag.IMAGE_DESCRIPTION}

KEEP = frozenset({
    "DICOM_BITS_ALLOCATED", "DICOM_BITS_STORED", "DICOM_HIGH_BIT", "DICOM_LOSSY_IMAGE_COMPRESSION",
    "DICOM_LOSSY_IMAGE_COMPRESSION_METHOD", "DICOM_LOSSY_IMAGE_COMPRESSION_RATIO",
    "DICOM_MANUFACTURER", "DICOM_MANUFACTURERS_MODEL_NAME", "DICOM_PHOTOMETRIC_INTERPRETATION",
    "DICOM_PIXEL_REPRESENTATION", "DICOM_PIXEL_SPACING", "DICOM_PLANAR_CONFIGURATION",
    "DICOM_SAMPLES_PER_PIXEL", "DICOM_SOFTWARE_VERSIONS", "PIM_DP_IMAGE_TYPE",
    "PIM_DP_IMAGE_ROWS", "PIM_DP_IMAGE_COLUMNS", "PIM_DP_UFS_INTERFACE_VERSION",
    "PIIM_DP_PIXEL_DATA_REPRESENTATION_POSITION", "PIIM_PIXEL_DATA_REPRESENTATION_COLUMNS",
    "PIIM_PIXEL_DATA_REPRESENTATION_NUMBER", "PIIM_PIXEL_DATA_REPRESENTATION_ROWS",
    "PIIM_PIXEL_DATA_REPRESENTATION_SEQUENCE", "PIM_DP_SCANNED_IMAGES",
})
ASSOCIATED = ("LABELIMAGE", "MACROIMAGE")


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
    for attribute in data_object:
        if attribute.get("Name") == "PIM_DP_IMAGE_TYPE":
            return (attribute.text or "").strip()
    return None


def kept(name):
    return name in KEEP


def scrub_xml(text, keep_macro, keep=kept):
    """The new XML, the removed values and the names of what was removed; `keep(name)` says
    which Attribute names keep their value (iSyntax keeps more: its codec tables)."""
    root = xmltext.parse(text, "Philips description")
    if root.tag != "DataObject" or root.get("ObjectType") != "DPUfsImport":
        raise FormatError("Philips description is not a DPUfsImport DataObject")
    removed, names = [], []
    for array in root.iter("Array"):
        for data_object in list(array):
            kind = image_type(data_object)
            if kind in ASSOCIATED and not (kind == "MACROIMAGE" and keep_macro):
                array.remove(data_object)
                names.append(f"{kind} (base64 image) removed")
    for attribute in root.iter("Attribute"):
        name = attribute.get("Name", "")
        value = (attribute.text or "").strip()
        if len(attribute) or keep(name) or not value:
            continue
        removed.append(value.replace("&quot;", '"'))
        removed.extend(part for part in value.split('"') if len(part) >= 4)
        if name == "PIM_DP_UFS_BARCODE":
            try:
                removed.append(base64.b64decode(value, validate=True).decode("utf-8", "replace"))
            except (binascii.Error, ValueError):
                pass
        attribute.text = ""
        names.append(f"{name} emptied")
    return xmltext.serialize(root, text), removed, names


def role(tiff, directory):
    if tiff.is_tiled(directory):
        return "level"
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
            new, removed, names = scrub_xml(tiff.text(directory, Tag.IMAGE_DESCRIPTION), options.keep_macro)
            surgery.replace_ascii(directory, Tag.IMAGE_DESCRIPTION, new, removed)
            for name in names:
                surgery.note(name)
        elif Tag.IMAGE_DESCRIPTION in directory.entries:
            surgery.drop(directory, Tag.IMAGE_DESCRIPTION)
        surgery.drop_unlisted(directory, ALLOWED_TAGS)
    if surgery.label:
        surgery.append_label("Label")


def check(tf, options, drawn=()):
    problems = []
    pages = list(tf.pages)
    first = pages[0]
    software = first.tags[Tag.SOFTWARE].value if Tag.SOFTWARE in first.tags else ""
    if not _is_philips(software, first.description):
        return ["no longer detected as Philips TIFF"]
    root = xmltext.parse(first.description, "Philips description")
    for data_object in root.iter("DataObject"):
        kind = image_type(data_object)
        if kind in ASSOCIATED and not (kind == "MACROIMAGE" and options.keep_macro):
            problems.append(f"{kind} is still in the XML")
    for attribute in root.iter("Attribute"):
        if not len(attribute) and not kept(attribute.get("Name", "")) and (attribute.text or "").strip():
            problems.append(f"{attribute.get('Name')} still has a value")
    for i, page in enumerate(pages[1:], 1):
        if page.description.startswith(("Label", "Macro")) and i not in drawn and not (
                options.keep_macro and page.description.startswith("Macro")):
            problems.append(f"directory {i} is still a label or macro")
    return problems
