"""Synthetic Philips TIFF (IntelliSite export): a DPUfsImport XML in directory 0's description.

Identifiers are planted where wsi-anon looks (acquisition date-time, device serial, operator,
rack, slot, base64 barcode, source file) and where it does not (calibration date, the
`sourceFilename=` inside DICOM_DERIVATION_DESCRIPTION, as Philips' converter writes it). Label and
macro exist twice, as stripped directories and as base64 JPEG-like payloads in the XML.
"""

import base64

from paw.formats.tifftags import Tag, Type

from . import ACCESSION, BARCODE, OPERATOR, PATIENT, SERIAL, stripped, tiled
from .tiffwriter import write_tiff
ACQUIRED = "20261120143207.000000"


def _attr(name, value, pmsvr="IString", group="0x0008", element="0x0001"):
    return (f'<Attribute Name="{name}" Group="{group}" Element="{element}" '
            f'PMSVR="{pmsvr}">{value}</Attribute>')


def _scanned(kind, inner):
    return (f'<DataObject ObjectType="DPScannedImage">{_attr("PIM_DP_IMAGE_TYPE", kind)}'
            f"{inner}</DataObject>")


def small_jpeg(shade, comment=None):
    """A small real JPEG, as Philips stores its label and macro photos in base64."""
    import io

    from PIL import Image
    out = io.BytesIO()
    extra = {"comment": comment} if comment else {}
    Image.new("RGB", (48, 32), (shade, 255 - shade, 90)).save(out, "JPEG", quality=80, **extra)
    return out.getvalue()


LABEL_JPEG = small_jpeg(20)


def description(levels, macro_comment=None):
    representations = "".join(
        '<DataObject ObjectType="PixelDataRepresentation">'
        + _attr("DICOM_PIXEL_SPACING", f'&quot;{0.00025 * 2 ** i:.6g}&quot; &quot;{0.00025 * 2 ** i:.6g}&quot;', "IDoubleArray")
        + _attr("PIIM_PIXEL_DATA_REPRESENTATION_NUMBER", str(i), "IUInt16")
        + "</DataObject>" for i in range(levels))
    label_payload = base64.b64encode(LABEL_JPEG).decode()
    macro_payload = base64.b64encode(small_jpeg(200, macro_comment)).decode()
    wsi = _scanned("WSI", _attr("PIIM_PIXEL_DATA_REPRESENTATION_SEQUENCE",
                                f"<Array>{representations}</Array>", "IDataObjectArray"))
    images = (wsi + _scanned("LABELIMAGE", _attr("PIM_DP_IMAGE_DATA", label_payload))
              + _scanned("MACROIMAGE", _attr("PIM_DP_IMAGE_DATA", macro_payload)))
    return ('<?xml version="1.0" encoding="UTF-8" ?>\n<DataObject ObjectType="DPUfsImport">'
            + _attr("DICOM_ACQUISITION_DATETIME", ACQUIRED)
            + _attr("DICOM_DATE_OF_LAST_CALIBRATION", '&quot;20261101&quot;', "IStringArray")
            + _attr("DICOM_DERIVATION_DESCRIPTION",
                    f'tiff-useBigTIFF=1-q80-sourceFilename=&quot;{ACCESSION} {PATIENT}.ndpi&quot;')
            + _attr("DICOM_DEVICE_SERIAL_NUMBER", SERIAL)
            + _attr("DICOM_MANUFACTURER", "PHILIPS")
            + _attr("DICOM_SOFTWARE_VERSIONS", '&quot;1.8.6824&quot;', "IStringArray")
            + _attr("PIIM_DP_SCANNER_OPERATOR_ID", OPERATOR)
            + _attr("PIIM_DP_SCANNER_RACK_NUMBER", "12", "IUInt16")
            + _attr("PIIM_DP_SCANNER_SLOT_NUMBER", "7", "IUInt16")
            + _attr("PIM_DP_SOURCE_FILE", f"{ACCESSION}.isyntax")
            + _attr("PIM_DP_UFS_BARCODE", base64.b64encode(BARCODE.encode()).decode())
            + _attr("PIM_DP_SCANNED_IMAGES", f"<Array>{images}</Array>", "IDataObjectArray")
            + "</DataObject>")


def planted():
    return [PATIENT, ACCESSION, OPERATOR, SERIAL, BARCODE, ACQUIRED, "20261101",
            base64.b64encode(BARCODE.encode()).decode(), base64.b64encode(LABEL_JPEG).decode()[-60:]]  # its own pixels, not the JPEG header every JPEG shares


SOFTWARE = (2, "Philips DP v1.0")


def write(path, width=1024, height=768, bigtiff=True, sparse=False, extra_images=(), later_tags=None):
    """Write a synthetic Philips TIFF and return the identifiers planted in it; `extra_images`
    are appended, `later_tags` go into the second level."""
    images = [tiled({Tag.IMAGE_DESCRIPTION: (Type.ASCII, description(2)), Tag.SOFTWARE: SOFTWARE,
                     Tag.DATE_TIME: (Type.ASCII, "2026:11:20 14:32:07")},
                    width, height, 0, sparse),
              tiled({Tag.NEW_SUBFILE_TYPE: (Type.LONG, 1), Tag.SOFTWARE: SOFTWARE},
                    width // 2, height // 2, 1, sparse),
              stripped({Tag.IMAGE_DESCRIPTION: (Type.ASCII, f"Label - {PATIENT}"), Tag.SOFTWARE: SOFTWARE},
                       96, 64),
              stripped({Tag.IMAGE_DESCRIPTION: (Type.ASCII, f"Macro - {PATIENT}"), Tag.SOFTWARE: SOFTWARE},
                       160, 64)]
    images[1].tags.update(later_tags or {})
    write_tiff(path, images + list(extra_images), bigtiff=bigtiff)
    return planted()
