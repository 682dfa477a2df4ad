"""Synthetic 3DHistech MIRAX: `NAME.mrxs` plus the folder `NAME/` (needs Pillow, for JPEGs).

Layout as OpenSlide's reader expects it (openslide-vendor-mirax.c): Slidedat.ini names the index
and data files and the layers; Index.dat starts with "01.02" + SLIDE_ID, then a pointer to the
hierarchical table (one record per zoom level) and one to the non-hierarchical table (one record
per NONHIER value, numbered across all of them); Data0000.dat starts "01.02" + SLIDE_ID + "000"
and holds the JPEGs. Identifiers: slide name, project, creation time, barcode value, SLIDE_ID in
every file, a ProfileName inside an XML record of the data file, and the label and macro photos.
"""

import io
import struct
import uuid

from . import ACCESSION, BARCODE, OPERATOR, PATIENT

TILE = 256
CREATED = "20261120143207"


def planted():
    return [PATIENT, ACCESSION, BARCODE, OPERATOR, CREATED]


def _jpeg(width, height, shade, text=""):
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (width, height), (shade, 200, 255 - shade))
    if text:
        ImageDraw.Draw(image).text((4, 4), text, fill=(0, 0, 0))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=90)
    return out.getvalue()


def slidedat(slide_id, encoding_bom=True):
    lines = [
        "[GENERAL]", "SLIDE_VERSION=1.0", f"SLIDE_ID={slide_id}",
        f"SLIDE_NAME={ACCESSION} {PATIENT}", f"PROJECT_NAME={PATIENT}",
        f"SLIDE_CREATIONDATETIME={CREATED}", "IMAGENUMBER_X=2", "IMAGENUMBER_Y=2",
        "OBJECTIVE_MAGNIFICATION=20", "CameraImageDivisionsPerSide=1",
        "[HIERARCHICAL]", "HIER_COUNT=1", "HIER_0_NAME=Slide zoom level", "HIER_0_COUNT=1",
        "HIER_0_VAL_0=ZoomLevel_0", "HIER_0_VAL_0_SECTION=LAYER_0_LEVEL_0_SECTION",
        "NONHIER_COUNT=2", "NONHIER_0_NAME=Scan data layer", "NONHIER_0_COUNT=3",
        "NONHIER_0_VAL_0=ScanDataLayer_SlideThumbnail", "NONHIER_0_VAL_0_SECTION=NONHIER_0_VAL_0_SECTION",
        "NONHIER_0_VAL_1=ScanDataLayer_SlideBarcode", "NONHIER_0_VAL_1_SECTION=NONHIER_0_VAL_1_SECTION",
        "NONHIER_0_VAL_2=ScanDataLayer_SlidePreview", "NONHIER_0_VAL_2_SECTION=NONHIER_0_VAL_2_SECTION",
        "NONHIER_1_NAME=Scanning profile", "NONHIER_1_COUNT=1",
        "NONHIER_1_VAL_0=ScanDataLayer_ProfileXml", "NONHIER_1_VAL_0_SECTION=NONHIER_1_VAL_0_SECTION",
        "INDEXFILE=Index.dat",
        "[DATAFILE]", "FILE_COUNT=1", "FILE_0=Data0000.dat",
        "[LAYER_0_LEVEL_0_SECTION]", "OVERLAP_X=0", "OVERLAP_Y=0", "MICROMETER_PER_PIXEL_X=0.25",
        "MICROMETER_PER_PIXEL_Y=0.25", "IMAGE_FILL_COLOR_BGR=16777215", f"DIGITIZER_WIDTH={TILE}",
        f"DIGITIZER_HEIGHT={TILE}", "IMAGE_FORMAT=JPEG", "IMAGE_CONCAT_FACTOR=0",
        "[NONHIER_0_VAL_0_SECTION]", "THUMBNAIL_IMAGE_TYPE=JPEG",
        "[NONHIER_0_VAL_1_SECTION]", "BARCODE_IMAGE_TYPE=JPEG", f"BARCODE_VALUE={BARCODE}",
        "[NONHIER_0_VAL_2_SECTION]", "PREVIEW_IMAGE_TYPE=JPEG",
        "[NONHIER_1_VAL_0_SECTION]", f"SCANNER_OPERATOR={OPERATOR}",
    ]
    return ("\ufeff" if encoding_bom else "") + "\r\n".join(lines) + "\r\n"


def write(mrxs_path, encoding="utf-8"):
    """Write NAME.mrxs and NAME/; returns the identifiers planted."""
    import os
    folder = mrxs_path[: -len(".mrxs")]
    os.makedirs(folder)
    slide_id = uuid.uuid4().hex
    with open(mrxs_path, "wb") as fh:
        fh.write(f"{ACCESSION} {PATIENT}\0".encode() + bytes(64))
    text = slidedat(slide_id)
    with open(os.path.join(folder, "Slidedat.ini"), "wb") as fh:
        fh.write(text.encode("utf-8") if encoding == "utf-8" else text[1:].encode("utf-16"))

    tiles = [_jpeg(TILE, TILE, 40 * i) for i in range(4)]
    records = [_jpeg(320, 120, 200, f"{PATIENT} {BARCODE}"),   # macro
               _jpeg(120, 120, 180, f"{PATIENT} {ACCESSION}"),  # label
               _jpeg(160, 60, 100, "preview"),
               f'<Profile ProfileName="{OPERATOR} {PATIENT}"/>'.encode()]
    data = bytearray(b"01.02" + slide_id.encode() + b"000" + bytes(256))
    tile_entries, record_entries = [], []
    for i, tile in enumerate(tiles):
        tile_entries.append((i, len(data), len(tile), 0))
        data += tile
    for record in records:
        record_entries.append((len(data), len(record), 0))
        data += record
    with open(os.path.join(folder, "Data0000.dat"), "wb") as fh:
        fh.write(data)

    index = bytearray(b"01.02" + slide_id.encode())
    roots_at = len(index)
    index += bytes(8)
    hier_table = len(index)
    index += bytes(4)
    level_record = len(index)
    index += struct.pack("<ii", 0, len(index) + 8)
    index += struct.pack("<ii", len(tile_entries), 0)
    for entry in tile_entries:
        index += struct.pack("<iiii", *entry)
    struct.pack_into("<i", index, hier_table, level_record)
    nonhier_table = len(index)
    index += bytes(4 * len(record_entries))
    for n, (offset, length, fileno) in enumerate(record_entries):
        struct.pack_into("<i", index, nonhier_table + 4 * n, len(index))
        index += struct.pack("<ii", 0, len(index) + 8)
        index += struct.pack("<iiiiiii", 1, 0, 0, 0, offset, length, fileno)
    struct.pack_into("<ii", index, roots_at, hier_table, nonhier_table)
    with open(os.path.join(folder, "Index.dat"), "wb") as fh:
        fh.write(index)
    return planted() + [slide_id]
