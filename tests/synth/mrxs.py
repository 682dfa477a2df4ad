"""Synthetic 3DHistech MIRAX: `NAME.mrxs` plus the folder `NAME/` (needs Pillow, for JPEGs).

Layout as OpenSlide's reader expects it (openslide-vendor-mirax.c): Slidedat.ini names the index
and data files and the layers; Index.dat starts with "01.02" + SLIDE_ID, then a pointer to the
hierarchical table (one record per zoom level, then the filter level's, empty) and one to the
non-hierarchical table (one record per NONHIER value, numbered across all of them); Data0000.dat
starts "01.02" + SLIDE_ID + "000" and holds the JPEGs and the slide-position record.

Slidedat.ini has the keys real files have (the inventories of wsi-anon, Slidescape and the
OpenReadout notes; CMU-1's values where OpenSlide's test case shows them), written `KEY = VALUE`
with CRLF and a UTF-8 BOM as 3DHistech writes it. Identifiers: slide name, project, creation
times, barcode value, the scanner's hardware id, SLIDE_ID in every file, operator and patient in
the XML info header record, the label and macro photos, and the .mrxs preview.
"""

import io
import os
import struct
import uuid

from . import ACCESSION, BARCODE, OPERATOR, PATIENT, SERIAL

TILE = 256
CREATED = "20/11/2026 14:32:07"


def planted():
    return [PATIENT, ACCESSION, BARCODE, OPERATOR, SERIAL, CREATED]


def _jpeg(width, height, shade, text=""):
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (width, height), (shade, 200, 255 - shade))
    if text:
        ImageDraw.Draw(image).text((4, 4), text, fill=(0, 0, 0))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=90)
    return out.getvalue()


def slidedat(slide_id, data_name="Data0000.dat", index_name="Index.dat"):
    """The lines of Slidedat.ini."""
    return [
        "[GENERAL]", "SLIDE_VERSION = 1.9", f"SLIDE_ID = {slide_id}",
        f"SLIDE_NAME = {ACCESSION} {PATIENT}", f"PROJECT_NAME = {PATIENT}",
        f"SLIDE_CREATIONDATETIME = {CREATED}", f"SLIDE_UTC_CREATIONDATETIME = {CREATED}",
        "SLIDE_TYPE = SLIDE_TYPE_BRIGHTFIELD", "IMAGENUMBER_X = 2", "IMAGENUMBER_Y = 2",
        "OBJECTIVE_MAGNIFICATION = 20", "OBJECTIVE_NAME = Plan-Apochromat", "CAMERA_TYPE = CIS VCC-F52U25CL",
        "CameraImageDivisionsPerSide = 1", "CURRENT_SLIDE_VERSION = 1.9", "OPTOVAR_SIZE = 1.0",
        "[HIERARCHICAL]", "HIER_COUNT = 2",
        "HIER_0_NAME = Slide zoom level", "HIER_0_COUNT = 1", "HIER_0_VAL_0 = ZoomLevel_0",
        "HIER_0_VAL_0_SECTION = LAYER_0_LEVEL_0_SECTION",
        "HIER_1_NAME = Slide filter level", "HIER_1_COUNT = 1", "HIER_1_VAL_0 = FilterLevel_0",
        "HIER_1_VAL_0_SECTION = LAYER_1_LEVEL_0_SECTION",
        "NONHIER_COUNT = 2", "NONHIER_0_NAME = Scan data layer", "NONHIER_0_COUNT = 4",
        "NONHIER_0_VAL_0 = ScanDataLayer_SlideThumbnail", "NONHIER_0_VAL_0_SECTION = NONHIERLAYER_0_LEVEL_0_SECTION",
        "NONHIER_0_VAL_1 = ScanDataLayer_SlideBarcode", "NONHIER_0_VAL_1_SECTION = NONHIERLAYER_0_LEVEL_1_SECTION",
        "NONHIER_0_VAL_2 = ScanDataLayer_SlidePreview", "NONHIER_0_VAL_2_SECTION = NONHIERLAYER_0_LEVEL_2_SECTION",
        "NONHIER_0_VAL_3 = ScanDataLayer_XMLInfoHeader", "NONHIER_0_VAL_3_SECTION = NONHIERLAYER_0_LEVEL_3_SECTION",
        "NONHIER_1_NAME = VIMSLIDE_POSITION_BUFFER", "NONHIER_1_COUNT = 1", "NONHIER_1_VAL_0 = default",
        "NONHIER_1_VAL_0_SECTION = NONHIERLAYER_1_LEVEL_0_SECTION",
        f"INDEXFILE = {index_name}",
        "[DATAFILE]", "FILE_COUNT = 1", f"FILE_0 = {data_name}",
        "[LAYER_0_LEVEL_0_SECTION]", "OVERLAP_X = 0", "OVERLAP_Y = 0", "MICROMETER_PER_PIXEL_X = 0.243",
        "MICROMETER_PER_PIXEL_Y = 0.243", "IMAGE_FILL_COLOR_BGR = 16777215", f"DIGITIZER_WIDTH = {TILE}",
        f"DIGITIZER_HEIGHT = {TILE}", "IMAGE_FORMAT = JPEG", "IMAGE_CONCAT_FACTOR = 0",
        "IMAGE_COMPRESSION_FACTOR = 80",
        "[LAYER_1_LEVEL_0_SECTION]", "FILTER_NAME = Default", "COLOR_R = 255", "COLOR_G = 255", "COLOR_B = 255",
        "[NONHIERLAYER_0_SECTION]", f"SCANNER_HARDWARE_ID = {SERIAL}", "SCANNER_SOFTWARE_VERSION = 1,12,25,1",
        "SCANNER_HARDWARE_VERSION = 1.0.0.9", "SCANNING_TIME_IN_SEC = 312", "SCANNED_FOV_COUNT = 4",
        "[NONHIERLAYER_0_LEVEL_0_SECTION]", "THUMBNAIL_IMAGE_TYPE = JPEG", "THUMBNAIL_IMAGE_WIDTH = 320",
        "THUMBNAIL_IMAGE_HEIGHT = 120",
        "[NONHIERLAYER_0_LEVEL_1_SECTION]", "BARCODE_IMAGE_TYPE = JPEG", f"BARCODE_VALUE = {BARCODE}",
        "[NONHIERLAYER_0_LEVEL_2_SECTION]", "PREVIEW_IMAGE_TYPE = JPEG",
        "[NONHIERLAYER_0_LEVEL_3_SECTION]",
        "[NONHIERLAYER_1_SECTION]", "VIMSLIDE_POSITION_DATA_FORMAT_VERSION = 257",
        "[NONHIERLAYER_1_LEVEL_0_SECTION]",
    ]


def _png(width, height, shade):
    from PIL import Image
    out = io.BytesIO()
    Image.new("RGB", (width, height), (shade, 200, 255 - shade)).save(out, "PNG")
    return out.getvalue()


def write(mrxs_path, encoding="utf-8", data_name="Data0000.dat", index_name="Index.dat", edit=None,
          tile_format="JPEG", tile_edit=None, entries=None):
    """Write NAME.mrxs and NAME/; returns the identifiers planted. Hostile variants: `edit(lines)`
    changes the lines of Slidedat.ini before they are written, `tile_edit(i, data)` the bytes of
    tile i (JPEG, or PNG with `tile_format`), `entries(tiles, records)` the index entries
    (tiles: [image, offset, length, file], records: [offset, length, file] for macro, label,
    preview, XML info, positions) before Index.dat is written."""
    folder = mrxs_path[: -len(".mrxs")]
    os.makedirs(folder)
    slide_id = uuid.uuid4().hex.upper()
    with open(mrxs_path, "wb") as fh:  # 3DHistech stores a preview picture here
        fh.write(_jpeg(64, 32, 90, f"{ACCESSION} {PATIENT}"))
    lines = slidedat(slide_id, data_name, index_name)
    if tile_format != "JPEG":
        lines = [f"IMAGE_FORMAT = {tile_format}" if line == "IMAGE_FORMAT = JPEG" else line for line in lines]
    text = "\r\n".join(edit(lines) if edit else lines) + "\r\n"
    with open(os.path.join(folder, "Slidedat.ini"), "wb") as fh:
        fh.write(("\ufeff" + text).encode("utf-8") if encoding == "utf-8" else text.encode(encoding))

    tiles = [(_jpeg if tile_format == "JPEG" else _png)(TILE, TILE, 40 * i) for i in range(4)]
    tiles = [tile_edit(i, tile) if tile_edit else tile for i, tile in enumerate(tiles)]
    positions = b"".join(struct.pack("<Bii", 1, (i % 2) * TILE, (i // 2) * TILE) for i in range(4))
    records = [_jpeg(320, 120, 200, f"{PATIENT} {BARCODE}"),   # macro
               _jpeg(120, 120, 180, f"{PATIENT} {ACCESSION}"),  # label
               _jpeg(160, 60, 100, "preview"),
               f'<Profile ProfileName="{OPERATOR}" Patient="{PATIENT}"/>'.encode(),
               positions]
    data = bytearray(b"01.02" + slide_id.encode() + b"000" + bytes(256))
    tile_entries, record_entries = [], []
    for i, tile in enumerate(tiles):
        tile_entries.append([i, len(data), len(tile), 0])
        data += tile
    for record in records:
        record_entries.append([len(data), len(record), 0])
        data += record
    if entries:
        entries(tile_entries, record_entries)
    with open(os.path.join(folder, data_name), "wb") as fh:
        fh.write(data)

    index = bytearray(b"01.02" + slide_id.encode())
    roots_at = len(index)
    index += bytes(8)
    hier_table = len(index)
    index += bytes(8)  # zoom level 0, then the filter level (an empty record: pointer 0)
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
    with open(os.path.join(folder, index_name), "wb") as fh:
        fh.write(index)
    return planted() + [slide_id]
