"""Synthetic Ventana BIF (iScan/DP scanners): BigTIFF whose directory 0 is the label photo.

As in real files, directory 0 is `Label_Image` and carries the `iScan` XMP that OpenSlide
detects the format by (the VENTANA DP 200 packet of Ventana-1.bif: single-quoted declaration,
attributes on several lines); then `Thumbnail` (the whole slide, label included), then the tiled
levels described `level=N mag=M quality=Q`, level 0 with the `EncodeInfo` XMP OpenSlide reads
tile positions from (one area, its tiles joined without overlap).
"""

from paw.formats.tifftags import Tag, Type

from . import ACCESSION, BARCODE, DATETIME, OPERATOR, PATIENT, SERIAL, TILE, stripped, tiled
from .tiffwriter import write_tiff
BUILD_DATE = "11/20/2026 2:32:07 PM"


def xmp():
    return ("<?xml version='1.0' encoding='utf-8' ?>\n<Metadata>\n"
            f'  <iScan Mode="brightfield" Magnification="40" ScanRes="0.25"\n'
            f'   UnitNumber="{SERIAL}" ScannerModel="VENTANA DP 200" Z-layers="1"\n'
            f'   Z-spacing="1" UserName="{OPERATOR}" BuildVersion="1.1.0.15854"\n'
            f'   BuildDate="{BUILD_DATE}" SlideAnnotation="{PATIENT}" ShowLabel="1"\n'
            f'   LabelBoundary="0" Barcode1D="{BARCODE}" Barcode2D="{PATIENT}" FocusMode="0" FocusQuality="1"\n'
            f'   ScanMode="1" ScanWhitePoint="235" Anonymization="0" BaseName="{ACCESSION}"\n'
            f'   JP2FileName="{ACCESSION}.jp2">\n'
            '    <AOI0 Left="297" Top="2323" Right="574" Bottom="2069"/>\n'
            "  </iScan>\n  <ProcessingParameters>\n"
            '    <Registration Method="None" UseLinearEncoder="1" Radius="0"\n'
            '     OverlapMinMicrons="" OverlapMaxMicrons="" ShiftMaxMicrons="" OverlapMin=""\n'
            '     OverlapMax="" ShiftMax=""/>\n'
            '    <Color TwistRGB="1,0,0,0,1,0,0,0,1" Applied="0"/>\n'
            "  </ProcessingParameters>\n</Metadata>").encode()


def encode_info(width, height):
    """Level 0's EncodeInfo: one area of whole tiles; tiles are numbered from the bottom left,
    every other row right to left (openslide-vendor-ventana.c)."""
    cols, rows = -(-width // TILE), -(-height // TILE)
    up_partner = 2 * cols  # tile 1 (bottom row, first column) and the tile above it
    return ("<?xml version='1.0' encoding='utf-8' ?>\n<EncodeInfo Ver=\"2\">\n"
            f'  <SlideInfo Rack="0" Slot="2" BaseName="{ACCESSION}" '
            f'OutputFileName="/raid/{ACCESSION} {PATIENT}.bif">\n'
            f'    <ServerDirectory Path="\\\\srv\\{OPERATOR}" Copy="1"/>\n'
            f'    <LabelImage Path="{ACCESSION}_label.jpg" ShowLabel="1" LabelBoundary="0"/>\n'
            f'    <AoiInfo XIMAGESIZE="{width}" YIMAGESIZE="{height}" NumRows="{rows}" NumCols="{cols}" '
            f'Pos-X="0" Pos-Y="0" DirPath="D:\\{ACCESSION}"/>\n'
            "  </SlideInfo>\n"
            '  <SlideStitchInfo Left="-1" Top="-1" Right="-1" Bottom="-1">\n'
            f'    <ImageInfo AOIScanned="1" AOIIndex="0" NumRows="{rows}" NumCols="{cols}" '
            f'Width="{TILE}" Height="{TILE}" Pos-X="0" Pos-Y="0">\n'
            '      <TileJointInfo FlagJoined="1" Confidence="95" Direction="RIGHT" Tile1="1" Tile2="2" '
            'OverlapX="0" OverlapY="0"/>\n'
            f'      <TileJointInfo FlagJoined="1" Confidence="95" Direction="UP" Tile1="1" Tile2="{up_partner}" '
            'OverlapX="0" OverlapY="0"/>\n'
            "    </ImageInfo>\n  </SlideStitchInfo>\n"
            '  <AoiOrigin>\n    <AOI0 OriginX="0" OriginY="0"/>\n  </AoiOrigin>\n'
            "</EncodeInfo>").encode()


def planted():
    return [PATIENT, ACCESSION, OPERATOR, SERIAL, BARCODE, BUILD_DATE, DATETIME, "/raid/"]


def write(path, width=1024, height=768, label_description="Label_Image", bigtiff=True,
          sparse=False, probability=False, extra_images=(), level_description="level=0 mag=40 quality=90"):
    """Write a synthetic BIF and return the identifiers planted in it; `probability` adds a
    tiled Probability_Image directory after the levels (as some writers do), `extra_images`
    are appended, `level_description` describes level 0."""
    date = {Tag.DATE_TIME: (Type.ASCII, DATETIME)}
    images = [stripped({Tag.IMAGE_DESCRIPTION: (Type.ASCII, label_description), **date,
                        Tag.XMP: (Type.BYTE, xmp())}, 96, 64),
              stripped({Tag.IMAGE_DESCRIPTION: (Type.ASCII, "Thumbnail"), **date}, 128, 96),
              tiled({Tag.IMAGE_DESCRIPTION: (Type.ASCII, level_description), **date,
                     Tag.XMP: (Type.BYTE, encode_info(width, height))}, width, height, 0, sparse),
              tiled({Tag.IMAGE_DESCRIPTION: (Type.ASCII, "level=1 mag=10 quality=90"), **date}, width // 4,
                    height // 4, 1, sparse)]
    if probability:
        images.append(tiled({Tag.IMAGE_DESCRIPTION: (Type.ASCII, "Probability_Image"), **date},
                            width // 4, height // 4, 2, sparse))
    write_tiff(path, images + list(extra_images), bigtiff=bigtiff)
    return planted()
