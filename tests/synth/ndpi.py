"""Synthetic Hamamatsu NDPI in the real on-disk layout (needs Pillow, for the JPEG strips).

Real NDPI (NanoZoomer, NDP.scan): classic little-endian TIFF whose header holds an 8-byte
first-directory offset; each directory is followed by an 8-byte next pointer and 4 "high bytes"
per entry; image data and tag values come *before* their directory (OpenSlide restores the high
32 bits of an offset as the largest value below the directory). Every directory has one strip,
a complete JPEG; SourceLens (65421) > 0 marks levels, -1 the macro (which shows the label),
-2 the map. `hole` leaves that many bytes unwritten before the image data, so a test file's
offsets pass 4 GiB without using disk.
"""

import io

from paw.formats.tifftags import Tag, Type

from . import BARCODE, DATE, DATETIME, OPERATOR, PATIENT, SERIAL
from .tiffwriter import write_ndpi

JPEG, YCBCR, CENTIMETRE = 7, 6, 3  # Compression, Photometric, ResolutionUnit

PROPERTIES = (
    "Created=2026/11/20\r\nUpdated=2026/11/21\r\nProduct=C13210-01\r\nsystem.version=1.0\r\n"
    f"NDP.S/N={SERIAL}\r\nMacro.S/N={SERIAL}-M\r\nroi.slide.macro=68,279,1256,685\r\n"
    f"Operator={OPERATOR}\r\nObjective.Lens.Magnificant=20.00\r\nPSHV=179\r\n"
    "calibration.version=249\r\n"
    f";NDP Shading Data\r;Version=0004\r;Name={PATIENT}\r;Date={DATE}\r;SerialNumber={SERIAL}\r"
)


def planted():
    return [PATIENT, OPERATOR, SERIAL, DATETIME, BARCODE, "2026/11/20", "2026/11/21", DATE]


LEVEL_COMMENT = b"Hamamatsu NanoZoomer Digital Pathology\0"   # in every real level strip
MACRO_COMMENT = b"Hamamatsu JPEG Library, version [2.0.18.50]\0"  # in the real macro strip
FILTER = "DAPI 2 (387) "  # tag 65434, free text, as in the real sample


def _jpeg(width, height, shade, text=b"", comment=LEVEL_COMMENT, restart=False):
    """A JPEG strip; `restart`: with a restart marker every 8 MCUs, as real level strips."""
    from PIL import Image

    image = Image.new("RGB", (width, height), (shade, 255 - shade, (shade * 3) % 256))
    if text:  # label-like pixels: the text's bytes as a stripe of grey values
        stripe = bytes(text * (width // len(text) + 1))[:width]
        for y in range(min(8, height)):
            for x, value in enumerate(stripe):
                image.putpixel((x, y), (value, value, value))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=90, comment=comment,
               **({"restart_marker_blocks": 8, "subsampling": 0} if restart else {}))
    return out.getvalue()


def mcu_starts(strip):
    """Where each restart interval of a JPEG strip starts (tag 65426): just after the scan
    header, then just after each RSTn marker — found by walking the stream as a reader does."""
    position = 2
    while strip[position + 1] != 0xDA:   # marker segments up to SOS
        position += 2 + int.from_bytes(strip[position + 2:position + 4], "big")
    starts = [position + 2 + int.from_bytes(strip[position + 2:position + 4], "big")]
    at = starts[0]
    while True:
        at = strip.index(b"\xff", at)
        if 0xD0 <= strip[at + 1] <= 0xD7:
            starts.append(at + 2)
        elif strip[at + 1] == 0xD9:
            return starts
        at += 2


def _tags(width, height, lens, properties=PROPERTIES):
    """One directory's tags (the strip tags are the writer's)."""
    return {
        Tag.IMAGE_WIDTH: (Type.LONG, width), Tag.IMAGE_LENGTH: (Type.LONG, height),
        Tag.BITS_PER_SAMPLE: (Type.SHORT, [8, 8, 8]), Tag.COMPRESSION: (Type.SHORT, JPEG),
        Tag.PHOTOMETRIC: (Type.SHORT, YCBCR), Tag.MAKE: (Type.ASCII, "Hamamatsu"),
        Tag.MODEL: (Type.ASCII, "C13210-01"), Tag.SAMPLES_PER_PIXEL: (Type.SHORT, 3),
        Tag.ROWS_PER_STRIP: (Type.LONG, height), Tag.X_RESOLUTION: (Type.RATIONAL, [(43826, 1)]),
        Tag.Y_RESOLUTION: (Type.RATIONAL, [(43826, 1)]), Tag.RESOLUTION_UNIT: (Type.SHORT, CENTIMETRE),
        Tag.SOFTWARE: (Type.ASCII, "NDP.scan 3.2.12"), Tag.DATE_TIME: (Type.ASCII, DATETIME),
        Tag.NDPI_FORMAT_FLAG: (Type.SHORT, 1), Tag.NDPI_SOURCE_LENS: (Type.FLOAT, float(lens)),
        Tag.NDPI_X_OFFSET: (Type.SLONG, 12538720), Tag.NDPI_Y_OFFSET: (Type.SLONG, -96063),
        Tag.NDPI_Z_OFFSET: (Type.SLONG, 0), Tag.NDPI_SLIDE_LABEL: (Type.ASCII, BARCODE),
        Tag.NDPI_SCANNER_SERIAL: (Type.ASCII, SERIAL), Tag.NDPI_PROPERTY_MAP: (Type.ASCII, properties),
        Tag.NDPI_AUTH_CODE: (Type.LONG, 1560790560), Tag.NDPI_FLUORESCENCE: (Type.ASCII, FILTER),
        Tag.NDPI_FOCUS_POINTS: (Type.SLONG, [12538720, -96063, 100, 12539720, -95063, 120]),
        Tag.NDPI_JPEG_QUALITY: (Type.LONG, 90),
    }


def write(path, width=1024, height=768, hole=0, properties=PROPERTIES, extra_tags=None,
          later_tags=None, level_comment=LEVEL_COMMENT, restart=False, edit_strip=None):
    """Write a synthetic NDPI and return the identifiers planted in it. For hostile variants:
    `properties` replaces the 65449 text (str, or bytes in another encoding), `extra_tags` go
    into directory 0, `later_tags` into the second level, `level_comment` is the COM of the
    level strips. `restart`: level strips with restart markers and their McuStarts (65426),
    as real NanoZoomer levels; `edit_strip(level, strip, starts)` may return a changed
    (strip, starts) of a level before it is written."""
    images = [  # (width, height, lens, jpeg)
        (width, height, 20, _jpeg(width, height, 40, comment=level_comment, restart=restart)),
        (width // 4, height // 4, 5, _jpeg(width // 4, height // 4, 90, comment=level_comment, restart=restart)),
        (640, 240, -1, _jpeg(640, 240, 200, f"{PATIENT} {BARCODE}".encode(), MACRO_COMMENT)),
        (320, 120, -2, _jpeg(320, 120, 10)),
    ]
    directories = [(_tags(w, h, lens, properties), data) for w, h, lens, data in images]
    for level in (0, 1) if restart else ():
        tags, strip = directories[level]
        starts = mcu_starts(strip)
        if edit_strip:
            strip, starts = edit_strip(level, strip, starts)
        tags[Tag.NDPI_MCU_STARTS] = (Type.LONG, starts)
        directories[level] = (tags, strip)
    directories[0][0].update(extra_tags or {})
    directories[1][0].update(later_tags or {})
    write_ndpi(path, directories, hole)
    return planted()
