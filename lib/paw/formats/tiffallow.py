"""What a TIFF directory may keep, tag by tag, and what each kept value may be.

One table, read by both halves of paw: the scrubber (surgery.keep_typed) keeps a tag only if its
rule here accepts it, and the residual audit (tiffaudit.py) explains every tag left in the output
by the same rules. A vendor module builds its table from STRUCTURE plus its own entries.

Rules:
- `Numbers(types, count)`: image structure. Only numeric TIFF types: a structural tag typed
  ASCII/BYTE/UNDEFINED can carry text (tifffile shows it; OpenSlide refuses such files as
  "Invalid TIFF"), so the slide is refused. `scan=False` marks tables of offsets or levels whose
  bytes form printable runs by chance (tile offsets of a multi-gigabyte file); every other
  numeric value is also searched for printable text by the audit.
- `Text(kind)`: a text tag kept only when its *whole* stored value (every byte up to `count`,
  not the C string a reader stops at) is the text `kind` accepts followed by NULs; otherwise
  dropped, or the slide refused when `required` (a reader needs it).
- `Blob(what)`: binary with a structure paw parses: JPEG tables ("jpeg-tables": segments, only
  tables survive), ICC profiles ("icc": icc.py; text tags typed), vendor XML ("xml").
- `Vendor(what)`: a value the vendor module rewrites itself (the Aperio description, NDPI's
  properties text); the audit explains it with the vendor's own allow-list.

Types real writers use are wider than the specification's (checked on the real fixtures):
NDPI writes ReferenceBlackWhite as LONG, OME writes NewSubfileType as SHORT, Aperio writes
ImageWidth and RowsPerStrip as SHORT.
"""

from .allow import Kind
from .tifftags import Tag, Type

INTEGERS = frozenset({Type.SHORT, Type.LONG, Type.LONG8})
RATIONAL = frozenset({Type.RATIONAL})
NUMBERS = frozenset({Type.SHORT, Type.LONG, Type.LONG8, Type.SSHORT, Type.SLONG, Type.SLONG8,
                     Type.RATIONAL, Type.SRATIONAL, Type.FLOAT, Type.DOUBLE})


class Numbers:
    """`types` TIFF types; `count` exact count (None: any count up to `most`); `scan`: search the
    value's bytes for printable runs (False: offset tables); `only_with` (tag, value): the tag
    means something only in a directory where that tag has that value, elsewhere it is dropped
    (a ColorMap outside a palette image is bytes no reader uses)."""
    __slots__ = ("types", "count", "most", "scan", "only_with")

    def __init__(self, types=INTEGERS, count=1, most=1 << 24, scan=True, only_with=None):
        self.types, self.count, self.most, self.scan = types, count, most, scan
        self.only_with = only_with

    def accepts(self, entry_type, count):
        if entry_type not in self.types:
            return False
        return count == self.count if self.count is not None else 0 < count <= self.most

    @property
    def label(self):
        return "a number" if self.count == 1 else "numbers"


class Text:
    __slots__ = ("kind", "required")

    def __init__(self, kind: Kind, required=False):
        self.kind, self.required = kind, required


class Blob:
    __slots__ = ("what",)

    def __init__(self, what):
        self.what = what


class Vendor:
    __slots__ = ("what",)

    def __init__(self, what):
        self.what = what


ANY = None  # Numbers(count=ANY)
PALETTE = 3  # Photometric: a palette image, whose pixels the ColorMap gives colours to

# Image structure (TIFF 6.0 sections 8, 18-22; BigTIFF; the SGI ImageDepth/TileDepth tags).
STRUCTURE = {
    Tag.NEW_SUBFILE_TYPE: Numbers(),
    Tag.SUBFILE_TYPE: Numbers(),
    Tag.IMAGE_WIDTH: Numbers(),
    Tag.IMAGE_LENGTH: Numbers(),
    Tag.BITS_PER_SAMPLE: Numbers(count=ANY, most=16),
    Tag.COMPRESSION: Numbers(),
    Tag.PHOTOMETRIC: Numbers(),
    Tag.THRESHHOLDING: Numbers(),
    Tag.FILL_ORDER: Numbers(),
    Tag.STRIP_OFFSETS: Numbers(count=ANY, scan=False),
    Tag.ORIENTATION: Numbers(),
    Tag.SAMPLES_PER_PIXEL: Numbers(),
    Tag.ROWS_PER_STRIP: Numbers(),
    Tag.STRIP_BYTE_COUNTS: Numbers(count=ANY, scan=False),
    Tag.MIN_SAMPLE_VALUE: Numbers(count=ANY, most=16),
    Tag.MAX_SAMPLE_VALUE: Numbers(count=ANY, most=16),
    Tag.X_RESOLUTION: Numbers(RATIONAL),
    Tag.Y_RESOLUTION: Numbers(RATIONAL),
    Tag.PLANAR_CONFIGURATION: Numbers(),
    Tag.GRAY_RESPONSE_UNIT: Numbers(),
    Tag.GRAY_RESPONSE_CURVE: Numbers(count=ANY, most=1 << 16, scan=False),
    Tag.RESOLUTION_UNIT: Numbers(),
    Tag.PREDICTOR: Numbers(),
    Tag.WHITE_POINT: Numbers(RATIONAL, count=2),
    Tag.PRIMARY_CHROMATICITIES: Numbers(RATIONAL, count=6),
    Tag.COLOR_MAP: Numbers(count=ANY, most=3 << 16, scan=False, only_with=(Tag.PHOTOMETRIC, PALETTE)),
    Tag.TILE_WIDTH: Numbers(),
    Tag.TILE_LENGTH: Numbers(),
    Tag.TILE_OFFSETS: Numbers(count=ANY, scan=False),
    Tag.TILE_BYTE_COUNTS: Numbers(count=ANY, scan=False),
    Tag.EXTRA_SAMPLES: Numbers(count=ANY, most=16),
    Tag.SAMPLE_FORMAT: Numbers(count=ANY, most=16),
    Tag.S_MIN_SAMPLE_VALUE: Numbers(NUMBERS, count=ANY, most=16),
    Tag.S_MAX_SAMPLE_VALUE: Numbers(NUMBERS, count=ANY, most=16),
    Tag.JPEG_TABLES: Blob("jpeg-tables"),
    Tag.YCBCR_COEFFICIENTS: Numbers(RATIONAL, count=3),
    Tag.YCBCR_SUBSAMPLING: Numbers(count=2),
    Tag.YCBCR_POSITIONING: Numbers(),
    Tag.REFERENCE_BLACK_WHITE: Numbers(RATIONAL | INTEGERS, count=6),
    Tag.IMAGE_DEPTH: Numbers(),
    Tag.TILE_DEPTH: Numbers(),
    Tag.ICC_PROFILE: Blob("icc"),
}

# Tile and strip codecs paw can check. Uncompressed, LZW, Deflate and PackBits data has no
# place for metadata; JPEG and JPEG 2000 codestreams have header segments (COM, APPn) that
# tileheaders.py walks. Anything else (WebP and JPEG XL containers, zstd skippable frames,
# vendor codes) is refused: its tiles could carry text paw cannot find.
NO_CONTAINER = frozenset({1, 5, 8, 32773, 32946})   # none, LZW, Deflate, PackBits, old Deflate
DEFLATE = frozenset({8, 32946})                      # Deflate, old Deflate: zlib streams
JPEG = frozenset({7})
JPEG2000 = frozenset({33003, 33005, 34712})          # Aperio YCbCr/RGB J2K, JPEG 2000


def rule_name(rule):
    """How a rule is named in a reason: what the value should have been."""
    if isinstance(rule, Numbers):
        return rule.label
    if isinstance(rule, Text):
        return rule.kind.label
    return "a value paw can read"
