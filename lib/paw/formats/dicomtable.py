"""What a DICOM whole-slide instance may keep: the typed, recursive allow-list.

Both the scrubber (dicom.py, which rebuilds every kept instance from this table) and the audit
(dicomaudit.py, which re-reads the written bytes and explains every element with this table)
read it; neither reads the other's code. An element is looked up by its keyword *where it
stands*: TABLE for the top level, the table of its sequence below (ContainerIdentifier at the
top level is the pseudonym, Manufacturer inside ContributingEquipmentSequence is nowhere). What
is not in the table goes, at every depth: private elements, unknown sequences with their items,
anything after the pixel data.

Rules:
  Text(kind)    a string value (each of its values, `vm` of them) the kind accepts; otherwise the
                element goes (or, with `fallback`, that fixed value is written: Type 1 attributes;
                `required`: the slide is refused, readers need it)
  Numbers       a binary number VR (US, UL, SL, FL, FD, AT, OV): numbers by construction
  NEW_UID       replaced by a UID paw issues, the same old UID to the same new one in every
                instance of the slide (PS3.15 Annex E action U)
  PSEUDONYM     the slide's pseudonym (PatientName, PatientID, ContainerIdentifier ...)
  Fixed(value)  this value is written whatever was there (dummy dates, `UNKNOWN` serial)
  EMPTY         kept present but empty (Type 2 attributes, Annex E action Z)
  Items(table)  a sequence, each item by `table`
  CODES         a code sequence: items whose (scheme, value) is in CODES keep that triple with
                the table's meaning; other items go
  ICC           an ICC profile whose every byte icc.unexplained explains with ICC_TEXTS

Sources: PS3.3 A.32.8 (VL Whole Slide Microscopy Image IOD) and its modules, PS3.15 Table E.1-1
(Basic Application Level Confidentiality Profile: which attributes are dummies, empty or
replaced UIDs), PS3.10 section 7 (file meta), OpenSlide's openslide-vendor-dicom.c and libdicom
(which attributes a reader needs: ImageType[2], geometry, pixel description, concatenation,
per-frame positions, PixelSpacing, ObjectiveLensPower, ICCProfile). Values seen in the real
fixtures (PixelMed `boxes`, highdicom, EZ-WSI) are marked "fixture". An element a real file
shows that is missing here is quarantined ("... not in the allow-list"): add it here, typed,
with its source.
"""

import uuid
from dataclasses import dataclass

from . import icc, j2k
from .allow import Integer, Number, OneOf, Pattern

WSI_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.77.1.6"
# Sequences nested deeper than this refuse the instance (a WSI header nests five or six deep:
# SpecimenDescription > SpecimenPreparation > PreparationStepContentItem > ConceptCode; a
# hostile file nesting thousands would exhaust the reader's stack).
MAX_DEPTH = 32
DICOMDIR_SOP_CLASS = "1.2.840.10008.1.3.10"   # Media Storage Directory Storage (PS3.3 Annex F)
PIXEL_DATA = 0x7FE00010

# The file meta group paw writes (PS3.10 Table 7.1-1): exactly these elements.
META_VERSION = b"\x00\x01"
IMPLEMENTATION_CLASS_UID = "2.25." + str(uuid.uuid5(uuid.NAMESPACE_URL, "paw:dicom-implementation").int)
IMPLEMENTATION_VERSION_NAME = "PAW"
# Transfer syntaxes paw keeps (PS3.5 Table A-1 / PS3.6 Annex A) and how their frames are coded:
# native pixels have no headers, JPEG-family frames are marker segments (jpeg.py), JPEG 2000
# frames are codestreams (j2k.py). Others (big endian, deflate, JPEG XL ...) are refused.
EXPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2.1"
# Implicit VR Little Endian (how a DICOM store often saves uncompressed images): read, and
# rebuilt as Explicit VR Little Endian (the header is written anew anyway; the pixel bytes are
# the same in both). paw never writes it, so it is not in TRANSFER_SYNTAXES.
IMPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2"
TRANSFER_SYNTAXES = {
    EXPLICIT_VR_LITTLE_ENDIAN: "native",  # Explicit VR Little Endian
    "1.2.840.10008.1.2.4.50": "jpeg",     # JPEG Baseline (Process 1) - fixture boxes_0
    "1.2.840.10008.1.2.4.51": "jpeg",     # JPEG Extended (Process 2 & 4)
    "1.2.840.10008.1.2.4.57": "jpeg",     # JPEG Lossless (Process 14)
    "1.2.840.10008.1.2.4.70": "jpeg",     # JPEG Lossless, first-order prediction
    "1.2.840.10008.1.2.4.80": "jpeg-ls",  # JPEG-LS Lossless - fixture sm_image_jpegls
    "1.2.840.10008.1.2.4.81": "jpeg-ls",  # JPEG-LS Lossy (Near-Lossless)
    "1.2.840.10008.1.2.4.90": "j2k",      # JPEG 2000 Image Compression (Lossless Only)
    "1.2.840.10008.1.2.4.91": "j2k",      # JPEG 2000 Image Compression
    "1.2.840.10008.1.2.4.201": "j2k",     # High-Throughput JPEG 2000 (Lossless Only)
    "1.2.840.10008.1.2.4.202": "j2k",     # High-Throughput JPEG 2000 with RPCL (Lossless Only)
    "1.2.840.10008.1.2.4.203": "j2k",     # High-Throughput JPEG 2000
}
JPEG_LS_MARKERS = frozenset({0xF7, 0xF8})  # SOF55 and LSE: JPEG-LS frame and preset parameters
# The banner an encoder writes into a JPEG 2000 COM segment (OpenJPEG, as Pillow 13 / OpenJPEG
# 2.5 write it; one rule for every format, j2k.ENCODER_BANNER); any other comment in a frame
# refuses the slide.
CODESTREAM_COMMENT = j2k.ENCODER_BANNER

# The dummies of PS3.15 action D for Type 1 attributes, and the record of de-identification.
DUMMY_DATE, DUMMY_TIME, DUMMY_DATETIME, UNKNOWN = "19000101", "000000", "19000101000000", "UNKNOWN"
DEIDENTIFICATION_METHOD = "paw typed allow-list, PS3.15 Basic Profile"


@dataclass(frozen=True)
class Rule:
    always: bool = False     # paw writes the element even when the instance does not have it
    required: bool = False   # a reader needs it: the slide is refused rather than lose it


@dataclass(frozen=True)
class Text(Rule):
    kind: object = None          # an allow.Kind for every value, or a tuple of kinds by position
    vm: tuple = (1, 1)
    fallback: str = None

    def accepts(self, values):
        if not self.vm[0] <= len(values) <= self.vm[1]:
            return False
        kinds = self.kind if isinstance(self.kind, tuple) else (self.kind,)
        return all(kinds[min(i, len(kinds) - 1)].accepts(v) for i, v in enumerate(values))


@dataclass(frozen=True)
class Numbers(Rule):
    vm: tuple = (1, 1)


@dataclass(frozen=True)
class NewUid(Rule):
    pass


@dataclass(frozen=True)
class Pseudonym(Rule):
    pass


@dataclass(frozen=True)
class Fixed(Rule):
    value: str = ""


@dataclass(frozen=True)
class Empty(Rule):
    pass


@dataclass(frozen=True)
class Items(Rule):
    table: dict = None


@dataclass(frozen=True)
class Codes(Rule):
    pass


@dataclass(frozen=True)
class Icc(Rule):
    pass


NEW_UID, PSEUDONYM, EMPTY, CODES, ICC = NewUid(), Pseudonym(always=True), Empty(), Codes(), Icc()
PIXEL = Numbers(required=True)   # libdicom needs it to decode a frame
ANY = (0, 1 << 30)
YES_NO = OneOf("YES", "NO")
DECIMAL = Number()
WHOLE = Integer()
# OpticalPathIdentifier: fixture values "0", "1". A name-like identifier ("DAPI") is not kept.
PATH_ID = Pattern(r"[0-9]{1,4}")
# ImageType / FrameType (PS3.3 C.8.12.4.1.1): value 3 is the flavour; LABEL and OVERVIEW only
# stay for the drawn label and with keep_macro (dicom.py decides which instances stay).
FLAVOURS = ("VOLUME", "THUMBNAIL", "LABEL", "OVERVIEW")
# Value 2 is PRIMARY, or SECONDARY for a level a converter made from another image (PS3.3
# C.7.6.1.1.2: still a pyramid level; the level rules in dicom.py decide).
IMAGE_TYPE = Text(kind=(OneOf("ORIGINAL", "DERIVED"), OneOf("PRIMARY", "SECONDARY"), OneOf(*FLAVOURS),
                        OneOf("NONE", "RESAMPLED")), vm=(3, 4), required=True)

# Known codes (scheme, value) -> meaning, each seen in a fixture (PS3.16 CID 8121-8125, 8101).
CODE_MEANINGS = {
    ("DCM", "111744"): "Brightfield illumination",     # fixture boxes, sm_image
    ("DCM", "111743"): "Epifluorescence illumination",  # fixture sm_image_grayscale
    ("SCT", "414298005"): "Full Spectrum",              # fixture boxes, sm_image
    ("SCT", "405738005"): "Blue",                       # fixture sm_image_grayscale
    ("SCT", "433466003"): "Microscope slide",           # fixture boxes, sm_image (container type)
}
# Text a kept ICC profile may carry (icc.unexplained): the fixtures' two profiles, and the ICC's
# own "sRGB v4 ICC preference" profile (color.org; the profile highdicom embeds by default, v4
# `mluc` texts).
ICC_TEXTS = frozenset({
    "uRGB", "CC0",                                                          # fixture boxes (lcms)
    "sRGB IEC61966-2.1", "Copyright (c) 1998 Hewlett-Packard Company",      # fixture sm_image
    "IEC http://www.iec.ch", "IEC 61966-2.1 Default RGB colour space - sRGB",
    "Reference Viewing Condition in IEC61966-2.1",
    "sRGB v4 ICC preference perceptual intent beta",                         # ICC sRGB v4 preference
    "Copyright 2007 International Color Consortium",
})
# The ICC header's 4-byte signature fields (CMM, platform, device maker and model, creator) a
# kept profile may name: the registered ones icc.py knows, and those of the fixtures' profiles
# (boxes: lcms with `saws`/`ctrl`/`hand`). Any other 4 bytes drop the profile.
ICC_SIGNATURES = frozenset(icc.SIGNATURES | {b"saws", b"ctrl", b"hand"})
# Manufacturer: product names seen in real files; any other value becomes UNKNOWN.
MANUFACTURERS = OneOf("Leica Biosystems")  # fixture boxes (Aperio GT 450 / converted)

POSITION = {  # PlanePositionSlideSequence, TotalPixelMatrixOriginSequence
    "XOffsetInSlideCoordinateSystem": Text(kind=DECIMAL),
    "YOffsetInSlideCoordinateSystem": Text(kind=DECIMAL),
    "ZOffsetInSlideCoordinateSystem": Text(kind=DECIMAL),
}
FUNCTIONAL_GROUP = {  # an item of Shared/PerFrameFunctionalGroupsSequence (PS3.3 C.8.12.9)
    "PixelMeasuresSequence": Items(table={
        "PixelSpacing": Text(kind=DECIMAL, vm=(2, 2)),       # openslide.mpp-x/y
        "SliceThickness": Text(kind=DECIMAL),
        "SpacingBetweenSlices": Text(kind=DECIMAL)}),
    "WholeSlideMicroscopyImageFrameTypeSequence": Items(table={"FrameType": IMAGE_TYPE}),
    "PlanePositionSlideSequence": Items(table={             # libdicom: sparse frame positions
        **POSITION,
        "ColumnPositionInTotalImagePixelMatrix": Numbers(),
        "RowPositionInTotalImagePixelMatrix": Numbers()}),
    "OpticalPathIdentificationSequence": Items(table={"OpticalPathIdentifier": Text(kind=PATH_ID)}),
    # Frame Content: only the dimension index. FrameAcquisitionDateTime, FrameReferenceDateTime,
    # FrameComments, FrameLabel go (Annex E D/X); so do DerivationImageSequence (Derivation
    # Description, old SOP Instance UIDs) and ReferencedImageSequence.
    "FrameContentSequence": Items(table={"DimensionIndexValues": Numbers(vm=ANY)}),
}

TABLE = {
    # SOP Common (C.12.1)
    "SOPClassUID": Text(kind=OneOf(WSI_SOP_CLASS), required=True),
    "SOPInstanceUID": NEW_UID,
    "PatientIdentityRemoved": Fixed(always=True, value="YES"),
    "DeidentificationMethod": Fixed(always=True, value=DEIDENTIFICATION_METHOD),
    "LongitudinalTemporalInformationModified": Fixed(always=True, value="REMOVED"),  # PS3.15 E.2
    # Patient (C.7.1.1): the pseudonym; the rest empty
    "PatientName": PSEUDONYM,
    "PatientID": PSEUDONYM,
    "PatientBirthDate": EMPTY,
    "PatientSex": EMPTY,
    # General Study (C.7.2.1)
    "StudyInstanceUID": NEW_UID,
    "StudyDate": EMPTY, "StudyTime": EMPTY, "ReferringPhysicianName": EMPTY,
    "StudyID": EMPTY, "AccessionNumber": EMPTY,
    # General Series, Whole Slide Microscopy Series (C.7.3.1, C.8.12.3)
    "Modality": Text(kind=OneOf("SM")),
    "SeriesInstanceUID": NEW_UID,       # OpenSlide: instances of one slide share it
    "SeriesNumber": Text(kind=WHOLE, vm=(0, 1)),
    # Frame of Reference (C.7.4.1)
    "FrameOfReferenceUID": NEW_UID,
    "PositionReferenceIndicator": Text(kind=OneOf("SLIDE_CORNER", "UNKNOWN"), vm=(0, 1)),  # fixtures
    # General and Enhanced General Equipment (C.7.5.1, C.7.5.2): Type 1 there, so dummies
    "Manufacturer": Text(kind=MANUFACTURERS, fallback=UNKNOWN),
    "ManufacturerModelName": Fixed(value=UNKNOWN),   # fixture: "Aperio converted by ..."
    "DeviceSerialNumber": Fixed(value=UNKNOWN),
    "SoftwareVersions": Text(kind=Pattern(r"v?[0-9]{1,4}(\.[0-9]{1,6}){1,3}"), vm=(1, 8), fallback=UNKNOWN),
    # General Image, General Acquisition, Multi-frame Functional Groups: Type 1 dates are dummies
    "ImageType": IMAGE_TYPE,
    "InstanceNumber": Text(kind=WHOLE),
    "ContentDate": Fixed(value=DUMMY_DATE),
    "ContentTime": Fixed(value=DUMMY_TIME),
    "AcquisitionDateTime": Fixed(value=DUMMY_DATETIME),
    "BurnedInAnnotation": Text(kind=YES_NO),
    "RecognizableVisualFeatures": Text(kind=YES_NO),
    "LossyImageCompression": Text(kind=OneOf("00", "01")),
    "LossyImageCompressionRatio": Text(kind=DECIMAL, vm=(1, 16)),
    "LossyImageCompressionMethod": Text(kind=OneOf("ISO_10918_1", "ISO_14495_1", "ISO_15444_1",
                                                   "ISO_15444_15", "ISO_18181_1"), vm=(1, 16)),
    "ContentQualification": Text(kind=OneOf("PRODUCT", "RESEARCH", "SERVICE")),
    # Image Pixel (C.7.6.3): what libdicom reads to decode frames
    "SamplesPerPixel": PIXEL, "Rows": PIXEL, "Columns": PIXEL,
    "BitsAllocated": PIXEL, "BitsStored": PIXEL, "HighBit": PIXEL,
    "PixelRepresentation": PIXEL, "PlanarConfiguration": Numbers(),
    "PixelPaddingValue": Numbers(),
    "PhotometricInterpretation": Text(kind=OneOf("RGB", "YBR_FULL_422", "YBR_FULL", "YBR_ICT",
                                                 "YBR_RCT", "MONOCHROME2"), required=True),
    "NumberOfFrames": Text(kind=Integer(low=1), required=True),
    "PresentationLUTShape": Text(kind=OneOf("IDENTITY", "INVERSE")),
    "RescaleIntercept": Text(kind=DECIMAL), "RescaleSlope": Text(kind=DECIMAL),
    # Whole Slide Microscopy Image (C.8.12.4)
    "VolumetricProperties": Text(kind=OneOf("VOLUME", "SAMPLED", "DISTORTED", "MIXED")),
    "SpecimenLabelInImage": Text(kind=YES_NO),
    "FocusMethod": Text(kind=OneOf("AUTO", "MANUAL")),
    "ExtendedDepthOfField": Text(kind=YES_NO),
    "NumberOfFocalPlanes": Numbers(), "DistanceBetweenFocalPlanes": Numbers(),
    "ImagedVolumeWidth": Numbers(), "ImagedVolumeHeight": Numbers(), "ImagedVolumeDepth": Numbers(),
    "RecommendedAbsentPixelCIELabValue": Numbers(vm=(3, 3)),
    # Microscope Slide Layer Tile Organization (C.8.12.14)
    "TotalPixelMatrixColumns": Numbers(), "TotalPixelMatrixRows": Numbers(),
    "TotalPixelMatrixFocalPlanes": Numbers(),
    "TotalPixelMatrixOriginSequence": Items(table=POSITION),
    "ImageOrientationSlide": Text(kind=DECIMAL, vm=(6, 6)),
    # Multi-frame Functional Groups, concatenations (C.7.6.16)
    "SharedFunctionalGroupsSequence": Items(table=FUNCTIONAL_GROUP),
    "PerFrameFunctionalGroupsSequence": Items(table=FUNCTIONAL_GROUP),
    "ConcatenationUID": NEW_UID, "SOPInstanceUIDOfConcatenationSource": NEW_UID,
    "InConcatenationNumber": Numbers(), "InConcatenationTotalNumber": Numbers(),
    "ConcatenationFrameOffsetNumber": Numbers(), "RepresentativeFrameNumber": Numbers(),
    # Multi-frame Dimension (C.7.6.17)
    "DimensionOrganizationType": Text(kind=OneOf("TILED_FULL", "TILED_SPARSE", "3D")),
    "DimensionOrganizationSequence": Items(table={"DimensionOrganizationUID": NEW_UID}),
    "DimensionIndexSequence": Items(table={
        "DimensionOrganizationUID": NEW_UID,
        "DimensionIndexPointer": Numbers(), "FunctionalGroupPointer": Numbers(),
        "DimensionDescriptionLabel": Text(kind=OneOf(  # fixtures boxes and sm_image
            "Row Position", "Column Position", "Row tile index", "Column tile index"))}),
    # Specimen (C.7.6.22): identifiers become the pseudonym, issuers and preparation empty;
    # descriptions, anatomy and preparation steps (text, dates, people) go
    "ContainerIdentifier": PSEUDONYM,
    "IssuerOfTheContainerIdentifierSequence": EMPTY,
    "ContainerTypeCodeSequence": CODES,
    "SpecimenDescriptionSequence": Items(table={
        "SpecimenIdentifier": PSEUDONYM,
        "SpecimenUID": NEW_UID,
        "IssuerOfTheSpecimenIdentifierSequence": EMPTY,
        "SpecimenPreparationSequence": EMPTY}),
    # Acquisition Context (C.7.6.14): Type 2, emptied (its items are free text, dates, people)
    "AcquisitionContextSequence": EMPTY,
    # Optical Path (C.8.12.5): OpticalPathDescription (free text) goes
    "OpticalPathSequence": Items(table={
        "OpticalPathIdentifier": Text(kind=PATH_ID),
        "IlluminationTypeCodeSequence": CODES, "IlluminationColorCodeSequence": CODES,
        "IlluminatorTypeCodeSequence": CODES, "LensesCodeSequence": CODES,
        "ChannelDescriptionCodeSequence": CODES, "LightPathFilterTypeStackCodeSequence": CODES,
        "ImagePathFilterTypeStackCodeSequence": CODES,
        "IlluminationWaveLength": Numbers(),
        "LightPathFilterPassThroughWavelength": Numbers(), "LightPathFilterPassBand": Numbers(vm=(2, 2)),
        "ImagePathFilterPassThroughWavelength": Numbers(), "ImagePathFilterPassBand": Numbers(vm=(2, 2)),
        "ObjectiveLensPower": Text(kind=Number(low=0)),       # openslide.objective-power
        "ObjectiveLensNumericalAperture": Text(kind=Number(low=0)),
        "CondenserLensPower": Text(kind=Number(low=0)),
        "ColorSpace": Text(kind=OneOf("SRGB", "ADOBERGB", "ROMMRGB")),
        "ICCProfile": ICC}),                                  # openslide.icc-size
    "NumberOfOpticalPaths": Numbers(),
    # Encapsulated pixel data offsets (C.7.6.3.1.6): checked against the fragments
    "ExtendedOffsetTable": Numbers(vm=ANY), "ExtendedOffsetTableLengths": Numbers(vm=ANY),
}


# --- Pyramid geometry: what makes an instance a level, and frames that fit their matrix --------
# Both the plan (which instances stay) and the audit (what was delivered) decide with these.

def level_of(size, base):
    """k when `size` (columns, rows) is the base level's size halved k times on both sides
    (each within rounding: the floor or the ceiling of base / 2**k), else None. A pyramid's
    levels are the base shrunk by powers of two (OpenSlide's DICOM and generic TIFF readers,
    every converter paw knows); an instance of another size or shape is not a level of it."""
    for k in range(64):
        step = 1 << k
        if all(abs(side * step - whole) < step for side, whole in zip(size, base)):
            return k
        if step > max(base):
            return None
    return None


def frames_fit(frames, size, tile, planes, tiled_full):
    """Whether NumberOfFrames fits the total pixel matrix cut into tiles of `tile`, over
    `planes` focal planes and optical paths (PS3.3 C.7.6.17.3): TILED_FULL holds every tile
    exactly once; any other organisation holds no more (a reader sizes its tile grid from
    the matrix: a matrix far larger than its frames makes a slide no reader opens)."""
    if min(tile) < 1 or min(size) < 1 or frames < 1:
        return False
    tiles = -(-size[0] // tile[0]) * -(-size[1] // tile[1]) * max(planes, 1)
    return frames == tiles if tiled_full else frames <= tiles


def _vocabulary(table, words):
    for rule in table.values():
        if isinstance(rule, Text):
            for kind in rule.kind if isinstance(rule.kind, tuple) else (rule.kind,):
                words |= getattr(kind, "values", frozenset())
            if rule.fallback:
                words.add(rule.fallback)
        elif isinstance(rule, Fixed):
            words.add(rule.value)
        elif isinstance(rule, Items):
            _vocabulary(rule.table, words)
    return words


# Words the table itself writes or accepts, case-folded: a removed value equal to one of them in
# any case is the standard's vocabulary ("VOLUME", "Brightfield illumination", the SOP class
# UID), not an identifier, so verification (which searches letters of any case) does not search
# for it.
VOCABULARY = frozenset(word.casefold() for word in (
    _vocabulary(TABLE, set()) | set(TRANSFER_SYNTAXES) | {IMPLICIT_VR_LITTLE_ENDIAN} | ICC_TEXTS
    | {x for code in CODE_MEANINGS for x in code} | set(CODE_MEANINGS.values())
    | {WSI_SOP_CLASS, IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME})) - {""}
