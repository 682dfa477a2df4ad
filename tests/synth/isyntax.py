"""Synthetic Philips iSyntax: the Philips TIFF XML plus codec attributes, `\\r\\n\\x04`, binary.

The codec part follows the attribute table of DSA-WSI-DeID (Name, Group, Element, PMSVR) and
libisyntax: a general header sequence with its dimensions, the Base64 block header table and
the wavelet settings. No real iSyntax file was available to copy values from.
"""

import os

from . import philips

BINARY = 1 << 16


def write(path, hole=0):
    """A header like the Philips TIFF one, with UFS_*/DP_* codec attributes, then binary data."""
    a = philips._attr
    dimension = ('<DataObject ObjectType="UFSImageDimension">'
                 + a("UFS_IMAGE_DIMENSION_NAME", "x", group="0x301D", element="0x2004")
                 + a("UFS_IMAGE_DIMENSION_UNIT", "mm", group="0x301D", element="0x2006")
                 + a("UFS_IMAGE_DIMENSION_TYPE", "spatial", group="0x301D", element="0x2005")
                 + a("UFS_IMAGE_DIMENSION_SCALE_FACTOR", "0.00025", "IDouble", "0x301D", "0x2007")
                 + "</DataObject>")
    general = ('<DataObject ObjectType="UFSImageGeneralHeader">'
               + a("UFS_IMAGE_NUMBER_OF_BLOCKS", "6", "IUInt32", "0x301D", "0x2001")
               + a("UFS_IMAGE_DIMENSIONS_OVER_BLOCK", "&quot;2&quot; &quot;3&quot;", "IUInt16Array",
                   "0x301D", "0x2002")
               + a("UFS_IMAGE_DIMENSIONS", f"<Array>{dimension}</Array>", "IDataObjectArray",
                   "0x301D", "0x2003")
               + "</DataObject>")
    codec = (a("UFS_IMAGE_GENERAL_HEADERS", f"<Array>{general}</Array>", "IDataObjectArray",
               "0x301D", "0x2000")
             + a("UFS_IMAGE_BLOCK_HEADER_TABLE", "AAECAwQFBgcICQ==", "IString", "0x301D", "0x2014")
             + a("DP_WAVELET_QUANTIZER", "12", "IUInt16", "0x301D", "0x101B"))
    header = philips.description(2).split("?>", 1)[1].strip()  # iSyntax: no XML declaration
    header = header[: header.rindex("</DataObject>")] + codec + "</DataObject>"
    with open(path, "wb") as fh:
        fh.write(header.encode() + b"\r\n\x04")
        fh.write(bytes(range(256)) * (BINARY // 256))
        if hole:
            fh.seek(hole, 1)
            fh.write(os.urandom(16))
    return philips.planted()
