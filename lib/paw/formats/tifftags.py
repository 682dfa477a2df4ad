"""TIFF tag and field-type codes, named once for the parser, the surgery, the vendors and the
test generators.

Sources: TIFF 6.0 (Adobe, 1992) sections 2, 8 and the baseline/extension tag tables; BigTIFF
(LONG8/SLONG8/IFD8); Adobe's XMP specification part 3 (tag 700); tifffile's TIFF.TAGS and
TIFF.NDPI_TAGS for the Hamamatsu private tags (65420–65500), which OpenSlide's
openslide-vendor-hamamatsu.c reads by the same numbers.
"""

from enum import IntEnum


class Type(IntEnum):
    """TIFF field types (TIFF 6.0 section 2; 16–18 from BigTIFF)."""
    BYTE = 1
    ASCII = 2
    SHORT = 3
    LONG = 4
    RATIONAL = 5
    SBYTE = 6
    UNDEFINED = 7
    SSHORT = 8
    SLONG = 9
    SRATIONAL = 10
    FLOAT = 11
    DOUBLE = 12
    IFD = 13
    LONG8 = 16
    SLONG8 = 17
    IFD8 = 18


# Bytes per item and struct code; RATIONAL types are two items each.
TYPE_FORMAT = {
    Type.BYTE: (1, "B"), Type.ASCII: (1, "B"), Type.SHORT: (2, "H"), Type.LONG: (4, "I"),
    Type.RATIONAL: (8, "I"), Type.SBYTE: (1, "b"), Type.UNDEFINED: (1, "B"), Type.SSHORT: (2, "h"),
    Type.SLONG: (4, "i"), Type.SRATIONAL: (8, "i"), Type.FLOAT: (4, "f"), Type.DOUBLE: (8, "d"),
    Type.IFD: (4, "I"), Type.LONG8: (8, "Q"), Type.SLONG8: (8, "q"), Type.IFD8: (8, "Q"),
}
RATIONALS = (Type.RATIONAL, Type.SRATIONAL)
INTEGER_ARRAYS = {Type.SHORT: "u2", Type.LONG: "u4", Type.IFD: "u4", Type.LONG8: "u8", Type.IFD8: "u8"}

CLASSIC_MAGIC, BIG_MAGIC = 42, 43


class Tag(IntEnum):
    # Baseline and extension tags (TIFF 6.0 sections 8 and 18-22).
    NEW_SUBFILE_TYPE = 254
    SUBFILE_TYPE = 255
    IMAGE_WIDTH = 256
    IMAGE_LENGTH = 257
    BITS_PER_SAMPLE = 258
    COMPRESSION = 259
    PHOTOMETRIC = 262
    THRESHHOLDING = 263
    FILL_ORDER = 266
    DOCUMENT_NAME = 269
    IMAGE_DESCRIPTION = 270
    MAKE = 271
    MODEL = 272
    STRIP_OFFSETS = 273
    ORIENTATION = 274
    SAMPLES_PER_PIXEL = 277
    ROWS_PER_STRIP = 278
    STRIP_BYTE_COUNTS = 279
    MIN_SAMPLE_VALUE = 280
    MAX_SAMPLE_VALUE = 281
    X_RESOLUTION = 282
    Y_RESOLUTION = 283
    PLANAR_CONFIGURATION = 284
    PAGE_NAME = 285
    GRAY_RESPONSE_UNIT = 290
    GRAY_RESPONSE_CURVE = 291
    RESOLUTION_UNIT = 296
    SOFTWARE = 305
    DATE_TIME = 306
    ARTIST = 315
    HOST_COMPUTER = 316
    PREDICTOR = 317
    WHITE_POINT = 318
    PRIMARY_CHROMATICITIES = 319
    COLOR_MAP = 320
    TILE_WIDTH = 322
    TILE_LENGTH = 323
    TILE_OFFSETS = 324
    TILE_BYTE_COUNTS = 325
    SUB_IFDS = 330
    EXTRA_SAMPLES = 338
    SAMPLE_FORMAT = 339
    S_MIN_SAMPLE_VALUE = 340
    S_MAX_SAMPLE_VALUE = 341
    JPEG_TABLES = 347
    YCBCR_COEFFICIENTS = 529
    YCBCR_SUBSAMPLING = 530
    YCBCR_POSITIONING = 531
    REFERENCE_BLACK_WHITE = 532
    XMP = 700
    IMAGE_DEPTH = 32997   # SGI: Aperio writes it; OpenSlide requires 1
    TILE_DEPTH = 32998
    COPYRIGHT = 33432
    IPTC = 33723
    PHOTOSHOP = 34377
    EXIF_IFD = 34665
    ICC_PROFILE = 34675
    GPS_IFD = 34853
    IMAGE_SOURCE_DATA = 37724
    INTEROPERABILITY_IFD = 40965
    IMAGE_UNIQUE_ID = 42016
    # Hamamatsu NDPI private tags (tifffile TIFF.NDPI_TAGS; OpenSlide hamamatsu reader).
    NDPI_FORMAT_FLAG = 65420       # present in every NDPI directory: what detection looks for
    NDPI_SOURCE_LENS = 65421       # magnification; -1 macro, -2 map
    NDPI_X_OFFSET = 65422          # from slide centre, nm
    NDPI_Y_OFFSET = 65423
    NDPI_Z_OFFSET = 65424          # focal plane
    NDPI_TISSUE_INDEX = 65425
    NDPI_MCU_STARTS = 65426
    NDPI_SLIDE_LABEL = 65427       # the label text ("Reference")
    NDPI_AUTH_CODE = 65428
    NDPI_MCU_STARTS_HIGH = 65432
    NDPI_CHANNEL = 65433
    NDPI_FLUORESCENCE = 65434
    NDPI_EXPOSURE_RATIO = 65435
    NDPI_RED_MULTIPLIER = 65436
    NDPI_GREEN_MULTIPLIER = 65437
    NDPI_BLUE_MULTIPLIER = 65438
    NDPI_FOCUS_POINTS = 65439
    NDPI_FOCUS_POINT_REGIONS = 65440
    NDPI_CAPTURE_MODE = 65441
    NDPI_SCANNER_SERIAL = 65442
    NDPI_JPEG_QUALITY = 65444
    NDPI_REFOCUS_INTERVAL = 65445
    NDPI_FOCUS_OFFSET = 65446
    NDPI_BLANK_LINES = 65447
    NDPI_FIRMWARE_VERSION = 65448
    NDPI_PROPERTY_MAP = 65449      # `key=value\r\n` text (OpenSlide: hamamatsu.*)
    NDPI_LABEL_OBSCURED = 65450
    NDPI_WAVELENGTH = 65451
    NDPI_LAMP_AGE = 65453
    NDPI_EXPOSURE_TIME = 65454
    NDPI_FOCUS_TIME = 65455
    NDPI_SCAN_TIME = 65456
    NDPI_WRITE_TIME = 65457
    NDPI_FULLY_AUTO_FOCUS = 65458
    NDPI_DEFAULT_GAMMA = 65500


# Where a directory's strips or tiles are and how long they are.
STRIP_LAYOUT = (Tag.STRIP_OFFSETS, Tag.STRIP_BYTE_COUNTS)
TILE_LAYOUT = (Tag.TILE_OFFSETS, Tag.TILE_BYTE_COUNTS)
LAYOUT = frozenset(STRIP_LAYOUT + TILE_LAYOUT)

# Tags that hold image structure: kept as they are.
STRUCTURAL = frozenset({
    Tag.NEW_SUBFILE_TYPE, Tag.SUBFILE_TYPE, Tag.IMAGE_WIDTH, Tag.IMAGE_LENGTH,
    Tag.BITS_PER_SAMPLE, Tag.COMPRESSION, Tag.PHOTOMETRIC, Tag.THRESHHOLDING, Tag.FILL_ORDER,
    Tag.STRIP_OFFSETS, Tag.ORIENTATION, Tag.SAMPLES_PER_PIXEL, Tag.ROWS_PER_STRIP,
    Tag.STRIP_BYTE_COUNTS, Tag.MIN_SAMPLE_VALUE, Tag.MAX_SAMPLE_VALUE, Tag.X_RESOLUTION,
    Tag.Y_RESOLUTION, Tag.PLANAR_CONFIGURATION, Tag.GRAY_RESPONSE_UNIT, Tag.GRAY_RESPONSE_CURVE,
    Tag.RESOLUTION_UNIT, Tag.PREDICTOR, Tag.WHITE_POINT, Tag.PRIMARY_CHROMATICITIES,
    Tag.COLOR_MAP, Tag.TILE_WIDTH, Tag.TILE_LENGTH, Tag.TILE_OFFSETS, Tag.TILE_BYTE_COUNTS,
    Tag.EXTRA_SAMPLES, Tag.SAMPLE_FORMAT, Tag.S_MIN_SAMPLE_VALUE, Tag.S_MAX_SAMPLE_VALUE,
    Tag.JPEG_TABLES, Tag.YCBCR_COEFFICIENTS, Tag.YCBCR_SUBSAMPLING, Tag.YCBCR_POSITIONING,
    Tag.REFERENCE_BLACK_WHITE, Tag.IMAGE_DEPTH, Tag.TILE_DEPTH, Tag.ICC_PROFILE,
})
# Descriptive tags naming a product, not a person or a unit: kept, and covered by verification.
PRODUCT = frozenset({Tag.MAKE, Tag.MODEL, Tag.SOFTWARE})

# How tags are named in reasons and in the ledger (TIFF's own spelling).
_NAMES = {
    Tag.DOCUMENT_NAME: "DocumentName", Tag.IMAGE_DESCRIPTION: "ImageDescription", Tag.MAKE: "Make",
    Tag.MODEL: "Model", Tag.PAGE_NAME: "PageName", Tag.SOFTWARE: "Software",
    Tag.DATE_TIME: "DateTime", Tag.ARTIST: "Artist", Tag.HOST_COMPUTER: "HostComputer",
    Tag.SUB_IFDS: "SubIFDs", Tag.XMP: "XMP", Tag.COPYRIGHT: "Copyright", Tag.IPTC: "IPTC",
    Tag.PHOTOSHOP: "Photoshop", Tag.EXIF_IFD: "EXIF", Tag.GPS_IFD: "GPS",
    Tag.IMAGE_SOURCE_DATA: "ImageSourceData", Tag.INTEROPERABILITY_IFD: "Interoperability",
    Tag.IMAGE_UNIQUE_ID: "ImageUniqueID", Tag.NDPI_SLIDE_LABEL: "NDPI SlideLabel",
    Tag.NDPI_AUTH_CODE: "NDPI AuthCode", Tag.NDPI_SCANNER_SERIAL: "NDPI ScannerSerialNumber",
    Tag.NDPI_FIRMWARE_VERSION: "NDPI FirmwareVersion", Tag.NDPI_PROPERTY_MAP: "NDPI properties",
    Tag.NDPI_FLUORESCENCE: "NDPI Fluorescence", Tag.JPEG_TABLES: "JPEGTables",
    Tag.ICC_PROFILE: "ICC profile", Tag.COLOR_MAP: "ColorMap",
}


def tag_name(code):
    return _NAMES.get(code, f"tag {int(code)}")
