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
import struct

from . import BARCODE, DATE, DATETIME, OPERATOR, PATIENT, SERIAL

PROPERTIES = (
    "Created=2026/11/20\r\nUpdated=2026/11/21\r\nProduct=C13210-01\r\nsystem.version=1.0\r\n"
    f"NDP.S/N={SERIAL}\r\nMacro.S/N={SERIAL}-M\r\nroi.slide.macro=68,279,1256,685\r\n"
    f"Operator={OPERATOR}\r\nObjective.Lens.Magnificant=20.00\r\nPSHV=179\r\n"
    "calibration.version=249\r\n"
    f";NDP Shading Data\r;Version=0004\r;Name={PATIENT}\r;Date={DATE}\r;SerialNumber={SERIAL}\r"
)


def planted():
    return [PATIENT, OPERATOR, SERIAL, DATETIME, BARCODE, "2026/11/20", "2026/11/21", DATE]


def _jpeg(width, height, shade, text=b""):
    from PIL import Image

    image = Image.new("RGB", (width, height), (shade, 255 - shade, (shade * 3) % 256))
    if text:  # label-like pixels: the text's bytes as a stripe of grey values
        stripe = bytes(text * (width // len(text) + 1))[:width]
        for y in range(min(8, height)):
            for x, value in enumerate(stripe):
                image.putpixel((x, y), (value, value, value))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=90)
    return out.getvalue()


def _entries(width, height, lens, strip_offset, strip_size):
    """(tag, type, values) for one directory; ASCII values as bytes with NUL."""
    return [
        (256, 4, [width]), (257, 4, [height]), (258, 3, [8, 8, 8]), (259, 3, [7]), (262, 3, [6]),
        (271, 2, b"Hamamatsu\0"), (272, 2, b"C13210-01\0"), (273, 4, [strip_offset & 0xFFFFFFFF]),
        (277, 3, [3]), (278, 4, [height]), (279, 4, [strip_size]), (282, 5, [(43826, 1)]),
        (283, 5, [(43826, 1)]), (296, 3, [3]), (305, 2, b"NDP.scan 3.2.12\0"),
        (306, 2, DATETIME.encode() + b"\0"), (65420, 3, [1]), (65421, 11, [float(lens)]),
        (65422, 9, [12538720]), (65423, 9, [-96063]), (65424, 9, [0]),
        (65427, 2, BARCODE.encode() + b"\0"), (65442, 2, SERIAL.encode() + b"\0"),
        (65449, 2, PROPERTIES.encode() + b"\0"),
    ]


_CODES = {2: "s", 3: "H", 4: "I", 5: "I", 9: "i", 11: "f"}
_SIZES = {2: 1, 3: 2, 4: 4, 5: 8, 9: 4, 11: 4}


def _pack(typ, values):
    if typ == 2:
        return values, len(values)
    if typ == 5:
        flat = [x for pair in values for x in pair]
        return struct.pack(f"<{len(flat)}I", *flat), len(values)
    return struct.pack(f"<{len(values)}{_CODES[typ]}", *values), len(values)


def write(path, width=1024, height=768, hole=0):
    """Write a synthetic NDPI and return the identifiers planted in it."""
    images = [  # (width, height, lens, jpeg)
        (width, height, 20, _jpeg(width, height, 40)),
        (width // 4, height // 4, 5, _jpeg(width // 4, height // 4, 90)),
        (640, 240, -1, _jpeg(640, 240, 200, f"{PATIENT} {BARCODE}".encode())),
        (320, 120, -2, _jpeg(320, 120, 10)),
    ]
    with open(path, "wb") as fh:
        position = 12 + hole
        strips = []
        for _, _, _, data in images:
            strips.append(position)
            fh.seek(position)
            fh.write(data)
            position += len(data)
        directories, previous_pointer_at = [], 4
        for (w, h, lens, data), strip in zip(images, strips):
            entries = _entries(w, h, lens, strip, len(data))
            values_at = {}
            for tag, typ, values in entries:  # values first: they must lie below the directory
                packed, _ = _pack(typ, values)
                if len(packed) > 4:
                    position += position % 2
                    values_at[tag] = position
                    fh.seek(position)
                    fh.write(packed)
                    position += len(packed)
            position += position % 2
            directory_at = position
            table, high = struct.pack("<H", len(entries)), b""
            for tag, typ, values in entries:
                packed, count = _pack(typ, values)
                table += struct.pack("<HHI", tag, typ, count)
                if tag in values_at:
                    table += struct.pack("<I", values_at[tag] & 0xFFFFFFFF)
                    high += struct.pack("<I", values_at[tag] >> 32)
                else:
                    table += packed.ljust(4, b"\0")
                    high += struct.pack("<I", strip >> 32 if tag == 273 else 0)
            fh.seek(directory_at)
            fh.write(table + struct.pack("<Q", 0) + high)
            fh.seek(previous_pointer_at)
            fh.write(struct.pack("<Q", directory_at))
            previous_pointer_at = directory_at + 2 + 12 * len(entries)
            position = directory_at + len(table) + 8 + len(high)
            directories.append(directory_at)
        fh.seek(0)
        fh.write(b"II*\0")
    return planted()
