"""Synthetic Philips iSyntax: the Philips TIFF XML plus codec attributes, `\\r\\n\\x04`, binary."""

import os

from . import philips

BINARY = 1 << 16


def write(path, hole=0):
    """A header like the Philips TIFF one, with UFS_*/DP_* codec attributes, then binary data."""
    codec = (philips._attr("UFS_IMAGE_BLOCK_HEADER_TABLE", "AAECAwQFBgcICQ==", "IString")
             + philips._attr("DP_COLOR_MANAGEMENT", "0", "IUInt16"))
    header = philips.description(2).split("?>", 1)[1].strip()  # iSyntax: no XML declaration
    header = header[: header.rindex("</DataObject>")] + codec + "</DataObject>"
    with open(path, "wb") as fh:
        fh.write(header.encode() + b"\r\n\x04")
        fh.write(bytes(range(256)) * (BINARY // 256))
        if hole:
            fh.seek(hole, 1)
            fh.write(os.urandom(16))
    return philips.planted()
