"""JPEG XR tiles (ITU-T T.832 annex A, the container jxrlib writes), read without decoding.

Zeiss CZI subblocks of compression 4 are whole JPEG XR files: "II", 0xBC, version 1, the
offset of a TIFF-like directory (uint16 count, 12-byte entries tag/type/count/value, a next
pointer), then the directory's out-of-line values and the coded image ("WMPHOTO" then the
bitstream) and alpha plane where IMAGE_OFFSET/IMAGE_BYTE_COUNT and ALPHA_* say. The
directory may also carry what a TIFF does: DOCUMENT_NAME, IMAGE_DESCRIPTION, make, model,
software, date, artist, host computer, copyright, XMP, EXIF, GPS, IPTC and an ICC profile
(jxrlib WMPMeta.h / JXRMeta.h); decoders skip all of it, and each may carry a name.

So a tile is explained only when every directory entry is one of NUMBERS (image geometry,
pixel format, resolution, where the planes are; their values are numbers or a pixel-format
GUID) and every byte of the tile is the header, the directory, an entry's value, the image
plane or the alpha plane — any other byte must be zero. Anything else is named, never quoted.
"""

import struct

from ..errors import FormatError

MAGIC = b"II\xbc"
PIXEL_FORMAT, TRANSFORMATION, COMPRESSION, IMAGE_TYPE = 0xBC01, 0xBC02, 0xBC03, 0xBC04
PTM_COLOR_INFO, PROFILE_LEVEL = 0xBC05, 0xBC06
IMAGE_WIDTH, IMAGE_HEIGHT, WIDTH_RESOLUTION, HEIGHT_RESOLUTION = 0xBC80, 0xBC81, 0xBC82, 0xBC83
IMAGE_OFFSET, IMAGE_BYTE_COUNT, ALPHA_OFFSET, ALPHA_BYTE_COUNT = 0xBCC0, 0xBCC1, 0xBCC2, 0xBCC3
IMAGE_BAND_PRESENCE, ALPHA_BAND_PRESENCE = 0xBCC4, 0xBCC5
# Entries whose values are numbers (or the 16-byte pixel-format GUID): everything a decoder
# needs. Every other tag (descriptive metadata, XMP, EXIF, GPS, IPTC, ICC, padding) is refused.
NUMBERS = frozenset({PIXEL_FORMAT, TRANSFORMATION, COMPRESSION, IMAGE_TYPE, PTM_COLOR_INFO,
                     PROFILE_LEVEL, IMAGE_WIDTH, IMAGE_HEIGHT, WIDTH_RESOLUTION, HEIGHT_RESOLUTION,
                     IMAGE_OFFSET, IMAGE_BYTE_COUNT, ALPHA_OFFSET, ALPHA_BYTE_COUNT,
                     IMAGE_BAND_PRESENCE, ALPHA_BAND_PRESENCE})
TYPE_SIZES = {1: 1, 3: 2, 4: 4, 5: 8, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8}   # no ASCII (2)
PIXEL_FORMAT_PREFIX = bytes.fromhex("24c3dd6f034efe4bb1853d77768dc9")   # GUID_PKPixelFormat*, last byte varies
MAX_ENTRIES = 64


def whole(data):
    """What paw cannot explain in `data` read as one whole JPEG XR file (a tile's recorded
    bytes): entries that may carry text, a layout that does not parse, bytes outside the
    header, directory, values and planes that are not zero. Empty when the tile is plain."""
    try:
        return _problems(data)
    except (FormatError, struct.error) as exc:
        return [str(exc) if isinstance(exc, FormatError) else "JPEG XR directory runs past the tile"]


def _problems(data):
    if data[:3] != MAGIC or data[3] != 1:
        return ["JPEG XR tile does not start with its container header"]
    (first,) = struct.unpack_from("<I", data, 4)
    (count,) = struct.unpack_from("<H", data, first)
    if not 0 < count <= MAX_ENTRIES or first < 8:
        raise FormatError("JPEG XR directory has an impossible entry count")
    directory_end = first + 2 + 12 * count + 4
    if directory_end > len(data) or struct.unpack_from("<I", data, directory_end - 4)[0]:
        raise FormatError("JPEG XR directory runs past the tile or links to another")
    names, explained, values = [], [(0, 8), (first, directory_end - first)], {}
    for i in range(count):
        tag, kind, n, value = struct.unpack_from("<HHII", data, first + 2 + 12 * i)
        if tag not in NUMBERS or kind not in TYPE_SIZES:
            names.append(f"JPEG XR tag 0x{tag:04X}")
            continue
        size = TYPE_SIZES[kind] * n
        if size > 4:
            if value + size > len(data):
                raise FormatError("JPEG XR value runs past the tile")
            explained.append((value, size))
        values[tag] = value
        if tag == PIXEL_FORMAT and (size != 16 or data[value:value + 15] != PIXEL_FORMAT_PREFIX):
            names.append("JPEG XR pixel format that is not a pixel-format GUID")
    for offset_tag, count_tag in ((IMAGE_OFFSET, IMAGE_BYTE_COUNT), (ALPHA_OFFSET, ALPHA_BYTE_COUNT)):
        if offset_tag in values:
            start, length = values[offset_tag], values.get(count_tag, 0)
            if start + length > len(data):
                raise FormatError("JPEG XR image plane runs past the tile")
            explained.append((start, length))
    if IMAGE_OFFSET not in values:
        names.append("JPEG XR tile without an image plane")
    position = 0
    for start, length in sorted(explained):
        if start > position and data[position:start].strip(b"\0"):
            names.append("JPEG XR bytes outside its directory and planes")
            break
        position = max(position, start + length)
    else:
        if data[position:].strip(b"\0"):
            names.append("JPEG XR bytes outside its directory and planes")
    return names
