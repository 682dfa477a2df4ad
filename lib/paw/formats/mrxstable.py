"""What an MRXS slide may keep: the typed allow-list of Slidedat.ini, section by section.

Both the scrubber (mrxs.py, which writes Slidedat.ini anew from this table) and the audit
(mrxsaudit.py, which reads the written file with its own parser and explains every line with this
table) read it. A section is known by its *role* (what [HIERARCHICAL] says it is), never by its
name, and gets a canonical name; in every role a key is one of:

  a Kind      its value is kept when the kind accepts it (numbers, enumerations, versions);
              otherwise the key is written empty (or the slide refused, when OpenSlide needs it:
              REQUIRED)
  EMPTIED     known vocabulary whose value never stays (names, dates, serials, barcodes)
Keys that are not in their role's table are left out: a key name may itself be an identifier.

[HIERARCHICAL] and [DATAFILE] are structure, written by the scrubber from what it understood:
counts, canonical layer and value names, canonical section names, `Index.dat` and
`Data%04d.dat` (the files are renamed to match).

Sources: OpenSlide's openslide-vendor-mirax.c (which keys it reads and how: IMAGENUMBER_X/Y,
OBJECTIVE_MAGNIFICATION with one trailing `x`, the zoom level keys, IMAGE_FORMAT JPEG/PNG/BMP24,
the Scan data layer values, VIMSLIDE_POSITION_BUFFER / StitchingIntensityLayer); the key
inventories of real Slidedat.ini files in wsi-anon (mirax-io.c), Slidescape (mrxs.c) and the
OpenReadout MIRAX notes, and OpenSlide's CMU-1 test case (SLIDE_VERSION 1.9, SCANNER_SOFTWARE_VERSION
`1,12,25,1`, SCANNED_FOV_COUNT); see /work/notes/dicom-mrxs.md section 7.
"""

from .allow import Integer, Number, OneOf, Pattern

EMPTIED = None

GENERAL, HIERARCHICAL, DATAFILE = "GENERAL", "HIERARCHICAL", "DATAFILE"
ZOOM_LEVEL, HIER_LEVEL, HIER_LAYER, NONHIER_LAYER, NONHIER_VALUE = (
    "zoom level", "hierarchical level", "hierarchical layer", "non-hierarchical layer",
    "non-hierarchical value")

INDEX_VERSION = b"01.02"   # Index.dat and every data file start with it, then SLIDE_ID
INDEX_FILE = "Index.dat"
DATA_FILE = "Data{:04d}.dat"
DATA_FILE_PATTERN = r"Data[0-9]{4}\.dat"
SLIDEDAT = "Slidedat.ini"
SLIDEDAT_MAX = 1 << 20    # a real Slidedat.ini is a few KiB; a larger one is refused

GENERAL_KEYS = {
    "SLIDE_ID": "replaced",   # a record id of the scanner's database: a fresh one, everywhere
    "SLIDE_VERSION": Pattern(r"[0-9]{1,3}(\.[0-9]{1,3}){0,3}"),          # CMU-1: 1.9
    "CURRENT_SLIDE_VERSION": Pattern(r"[0-9]{1,3}(\.[0-9]{1,3}){0,3}"),
    "IMAGENUMBER_X": Integer(low=1), "IMAGENUMBER_Y": Integer(low=1),
    "CameraImageDivisionsPerSide": Integer(low=1),
    "OBJECTIVE_MAGNIFICATION": Pattern(r"[1-9][0-9]{0,3}x?"),             # openslide.objective-power
    "SLIDE_TYPE": OneOf("SLIDE_TYPE_BRIGHTFIELD", "SLIDE_TYPE_FLUORESCENCE"),
    "SLIDE_NAME": EMPTIED, "PROJECT_NAME": EMPTIED, "SLIDE_CREATIONDATETIME": EMPTIED,
    "SLIDE_UTC_CREATIONDATETIME": EMPTIED, "SLIDE_CREATION_FINISHED": EMPTIED,
    "SLIDE_CONTENT": EMPTIED, "SLIDE_ORIGINAL_SOURCE": EMPTIED, "SLIDE_POSITION_X": EMPTIED,
    "SLIDE_POSITION_Y": EMPTIED, "OBJECTIVE_NAME": EMPTIED, "CAMERA_TYPE": EMPTIED,
    "SLIDE_BARCODE": EMPTIED, "SLIDE_LABEL": EMPTIED,
}
# What OpenSlide refuses to open without (a value of another shape refuses the slide).
REQUIRED = {GENERAL: {"SLIDE_VERSION", "IMAGENUMBER_X", "IMAGENUMBER_Y"},
            ZOOM_LEVEL: {"OVERLAP_X", "OVERLAP_Y", "MICROMETER_PER_PIXEL_X", "MICROMETER_PER_PIXEL_Y",
                         "IMAGE_FILL_COLOR_BGR", "DIGITIZER_WIDTH", "DIGITIZER_HEIGHT", "IMAGE_FORMAT",
                         "IMAGE_CONCAT_FACTOR"}}

ROLE_KEYS = {
    GENERAL: GENERAL_KEYS,
    ZOOM_LEVEL: {
        "OVERLAP_X": Number(), "OVERLAP_Y": Number(),
        "MICROMETER_PER_PIXEL_X": Number(low=0), "MICROMETER_PER_PIXEL_Y": Number(low=0),
        "IMAGE_FILL_COLOR_BGR": Integer(low=0, high=0xFFFFFF),
        "DIGITIZER_WIDTH": Integer(low=1), "DIGITIZER_HEIGHT": Integer(low=1),
        "IMAGE_FORMAT": OneOf("JPEG", "PNG", "BMP24"),
        "IMAGE_CONCAT_FACTOR": Integer(low=0, high=31),
        "IMAGE_COMPRESSION_FACTOR": Integer(low=0, high=100),
    },
    HIER_LEVEL: {  # filter and focus levels
        "FILTER_NAME": OneOf("Default"),
        "COLOR_R": Integer(low=0, high=255), "COLOR_G": Integer(low=0, high=255),
        "COLOR_B": Integer(low=0, high=255), "STORING_CHANNEL_NUMBER": Integer(low=0),
        "EXPOSURE_TIME": Number(), "DIGITALGAIN": Number(), "ZSTACK_STEP_COUNT": Integer(low=0),
    },
    HIER_LAYER: {},
    NONHIER_LAYER: {
        "SCANNER_SOFTWARE_VERSION": Pattern(r"[0-9]{1,4}(,[0-9]{1,6}){0,3}"),   # CMU-1: 1,12,25,1
        "SCANNING_TIME_IN_SEC": Number(low=0), "SCANNED_FOV_COUNT": Integer(low=0),
        "VIMSLIDE_POSITION_DATA_FORMAT_VERSION": Integer(low=0),
        "SCANNER_HARDWARE_ID": EMPTIED, "SCANNER_HARDWARE_VERSION": EMPTIED,
    },
    NONHIER_VALUE: {
        **{f"{kind}_IMAGE_{key}": rule for kind in ("BARCODE", "THUMBNAIL", "PREVIEW", "SCANMAP", "STAGEPOSMAP")
           for key, rule in (("TYPE", OneOf("JPEG", "PNG", "BMP", "BMP24")), ("WIDTH", Integer(low=0)),
                             ("HEIGHT", Integer(low=0)))},
        "BARCODE_VALUE": EMPTIED,
    },
}

# [HIERARCHICAL] vocabulary: layer names and non-hierarchical values as scanners write them.
ZOOM_NAME = "Slide zoom level"
HIER_NAMES = OneOf(ZOOM_NAME, "Slide filter level", "Microscope focus level", "Scan info layer")
ZOOM_VALUE = Pattern(r"ZoomLevel_[0-9]{1,3}")
NONHIER_NAMES = OneOf("Scan data layer", "StitchingLayer", "StitchingIntensityLayer",
                      "VIMSLIDE_POSITION_BUFFER", "VIMSLIDE_HISTOGRAM_DATA")
NONHIER_VALUES = OneOf("ScanDataLayer_ScanMap", "ScanDataLayer_XMLInfoHeader", "ScanDataLayer_SlideThumbnail",
                       "ScanDataLayer_SlideBarcode", "ScanDataLayer_SlidePreview",
                       "ScanDataLayer_StagePositionMap", "ScanDataLayer_Empty", "ScanDataLayer_WholeSlide",
                       "ProfileXMLHeader", "ProfileXML", "ScannedFOVsMap", "DataLevel_V1.0",
                       "StitchingIntensityLevel", "default")
# Associated images (OpenSlide's names for them) and the layers that hold slide positions.
SCAN_DATA_LAYER = "Scan data layer"
ASSOCIATED = {"ScanDataLayer_SlideBarcode": "label", "ScanDataLayer_SlideThumbnail": "macro",
              "ScanDataLayer_SlidePreview": "thumbnail"}
POSITIONS = ("VIMSLIDE_POSITION_BUFFER", "StitchingIntensityLayer")
POSITION_RECORD = 9   # flag byte (0 or 1), then x and y as little-endian int32
REMOVED_VALUE = "removed-by-paw-{}"   # a destroyed associated image's value: no reader looks for it


def layer_name(kind, i):
    """The canonical name a layer gets when its own is not in the vocabulary."""
    return f"{kind}_Layer_{i}"


def value_name(i, j):
    return f"Value_{i}_{j}"


def section_name(role, i, j=None):
    """Canonical section names, as 3DHistech writes them."""
    if role in (ZOOM_LEVEL, HIER_LEVEL):
        return f"LAYER_{i}_LEVEL_{j}_SECTION"
    if role == HIER_LAYER:
        return f"LAYER_{i}_SECTION"
    if role == NONHIER_LAYER:
        return f"NONHIERLAYER_{i}_SECTION"
    return f"NONHIERLAYER_{i}_LEVEL_{j}_SECTION"


def _vocabulary():
    words = set()
    for keys in ROLE_KEYS.values():
        for rule in keys.values():
            words |= set(getattr(rule, "values", ()))
    for kind in (HIER_NAMES, NONHIER_NAMES, NONHIER_VALUES):
        words |= set(kind.values)
    return frozenset(word.casefold() for word in words | {GENERAL, HIERARCHICAL, DATAFILE})


# Words the table itself writes or accepts (`JPEG`, `Default`, `Scan data layer`, the section
# names ...), case-folded: a removed value equal to one in any case (a second section written
# `[general]`) is vocabulary, not an identifier, and verification, which searches letters of any
# case, does not search for it.
VOCABULARY = _vocabulary()
