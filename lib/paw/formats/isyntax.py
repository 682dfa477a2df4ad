"""Philips iSyntax: a DPUfsImport XML header ended by `\\r\\n\\x04`, then the wavelet-coded image.

There is no public iSyntax reader in OpenSlide; the layout is Philips' (the header is the same
DataObject XML as in Philips TIFF, and the readers published for iSyntax locate the binary part
by the end-of-text byte 0x04 after the header). The header carries the same identifying
attributes as Philips TIFF, the base64 LABELIMAGE/MACROIMAGE JPEGs, and the codec's own tables
(`UFS_*` block headers, `DP_*` colour and wavelet settings) that a reader needs.

What paw does: the header is scrubbed like Philips TIFF's XML, in place in its raw text
(philips.Scrub: attributes outside the typed allow-list cut out, LABELIMAGE/MACROIMAGE removed),
keeping in addition the codec's `UFS_*` and `DP_*` attributes typed by CODEC (numbers, number
arrays, small enumerations, Base64 tables that hide no text); a codec attribute paw does not
know, or one with a value of another shape, refuses the file (the decoder needs them); the new
header is padded with spaces to exactly the old length, so `\\r\\n\\x04` and the binary data stay
where they were. The binary part is never written. A file without the end-of-text byte
within the first 256 MiB is refused.

The binary part (codeblocks of wavelet coefficients, and in files whose header holds partial
block headers a seek table first: a tag 0x301D,0x2015 and 40-byte entries of offsets and sizes,
as libisyntax reads it) has no structure paw can explain byte for byte without a real file to
check it against, so verification bounds what it can:
- its first BINARY_HEAD bytes, where a seek table or the first codeblocks are, must hold no XML
  markup (a second header after the separator: `<DataObject`, `<Attribute`, `<?xml`, in
  Latin-1/UTF-8 or UTF-16) — refused;
- the removed values and the name's identifier-like parts are searched (every encoding,
  any case) in those first BINARY_HEAD bytes and in DRAWN windows of WINDOW bytes drawn at
  random (`secrets`) over the rest — a fixed ~5 MiB per slide; with verify.full_scan, in all of it.
Other text there (a value paw never saw) is not found: no reader shows it, but `strings` would
(README: what is left).

The codec value kinds come from the attribute table of DSA-WSI-DeID (Group, Element, PMSVR) and
libisyntax; no real iSyntax file was available to check the enumerations against.
"""

import os
import secrets

from .. import ranges
from ..errors import FormatError
from . import philips
from .allow import Base64, Integer, Number, OneOf, Pattern
from .base import Handler, Prepared
from .edits import EditPlan

END = b"\r\n\x04"
MAX_HEADER = 256 << 20
BINARY_HEAD = 1 << 20   # the start of the binary part: no XML there, and always searched
DRAWN, WINDOW = 64, 64 << 10   # random windows of the rest the value search reads
MARKUP = tuple(text.encode(codec) for text in ("<DataObject", "<Attribute", "<?xml")
               for codec in ("latin-1", "utf-16-le", "utf-16-be"))


def detect(path):
    if not os.path.isfile(path):
        return False
    with open(path, "rb") as fh:
        head = fh.read(512)
    return head[:2] not in (b"II", b"MM") and b"<DataObject" in head and b"DPUfsImport" in head


_UINT = Integer(low=0)
_INTS = Pattern(r'"?-?\d+"?(?: "?-?\d+"?)*')
SEQUENCE = philips.SEQUENCE
# The codec's own attributes (PMSVR in parentheses): a decoder needs every one of them.
CODEC = {
    "DP_COLOR_MANAGEMENT": SEQUENCE,                               # IDataObjectArray
    "DP_WAVELET_DEADZONE": _UINT, "DP_WAVELET_QUANTIZER": _UINT,   # IUInt16
    "DP_WAVELET_QUANTIZER_SETTINGS_PER_COLOR": SEQUENCE,
    "DP_WAVELET_QUANTIZER_SETTINGS_PER_LEVEL": SEQUENCE,
    "UFS_IMAGE_BLOCK_COMPRESSION_METHOD": Pattern(r"\d{1,3}"),      # IString
    "UFS_IMAGE_BLOCK_COORDINATE": _INTS,                           # IUInt32Array
    "UFS_IMAGE_BLOCK_DATA_OFFSET": _UINT, "UFS_IMAGE_BLOCK_SIZE": _UINT,   # IUint64
    "UFS_IMAGE_BLOCK_HEADERS": SEQUENCE, "UFS_IMAGE_BLOCK_HEADER_TEMPLATES": SEQUENCE,
    "UFS_IMAGE_BLOCK_HEADER_TABLE": Base64(),                      # IString, binary
    "UFS_IMAGE_BLOCK_HEADER_TEMPLATE_ID": _UINT, "UFS_IMAGE_NUMBER_OF_BLOCKS": _UINT,
    "UFS_IMAGE_DIMENSIONS": SEQUENCE, "UFS_IMAGE_DIMENSION_RANGES": SEQUENCE,
    "UFS_IMAGE_GENERAL_HEADERS": SEQUENCE,
    "UFS_IMAGE_DIMENSIONS_IN_BLOCK": _INTS, "UFS_IMAGE_DIMENSIONS_OVER_BLOCK": _INTS,
    "UFS_IMAGE_DIMENSION_RANGE": _INTS,
    "UFS_IMAGE_DIMENSION_DISCRETE_VALUES_STRING": Pattern(r'"[A-Za-z]{1,3}"(?: "[A-Za-z]{1,3}")*'),
    "UFS_IMAGE_DIMENSION_NAME": Pattern(r"[a-z]{1,2}"),            # x, y, c, s
    "UFS_IMAGE_DIMENSION_SCALE_FACTOR": Number(),                  # IDouble (mm per pixel)
    "UFS_IMAGE_DIMENSION_TYPE": OneOf("spatial", "colour component", "color component", "scale"),
    "UFS_IMAGE_DIMENSION_UNIT": OneOf("", "mm", "um", "nm"),
}
ATTRIBUTES = {**philips.ATTRIBUTES, **CODEC}
OBJECT_TYPES = philips.OBJECT_TYPES | Pattern(r"(?:UFS|DP)[A-Z][A-Za-z]{2,60}")


def _codec_name(name):
    return name.startswith(("UFS_", "DP_"))


def _header(path):
    """(header text, offset of the end-of-text marker, file size)."""
    with open(path, "rb") as fh:
        head = fh.read(MAX_HEADER)
        fh.seek(0, 2)
        size = fh.tell()
    end = head.find(END)
    if end < 0:
        raise FormatError("iSyntax header has no end-of-text marker (\\r\\n\\x04)")
    return head[:end].decode("latin-1"), end, size


class IsyntaxHandler(Handler):
    name = "isyntax"
    title = "Philips iSyntax"
    # The label is base64 in the header, which may not grow, and no reader here shows it: none drawn.
    label_place = None
    plan_type = EditPlan

    def _plan(self, path, options, pseudonym, label):
        text, end, size = _header(path)
        scrub = philips.Scrub(text, "iSyntax header", options.keep_macro, attributes=ATTRIBUTES,
                              object_types=OBJECT_TYPES, refuse=_codec_name)
        data = scrub.result().encode("latin-1")
        actions = [f"XML: {name} removed" for name in scrub.names]
        if scrub.unknown:
            actions.append(f"{scrub.unknown} unknown XML attributes or elements removed")
        plan = EditPlan(writes=[(0, data + b" " * (end - len(data)))], removed=scrub.removed,
                        actions=actions, kept_data=[[end, size - end]] if size > end else [])
        return Prepared(plan, {"header": 1})

    def check(self, path, plan, options):
        """Independent re-read: the marker where it was, and every text of the header explained
        by the typed allow-list (tiffaudit's XML audit, against ATTRIBUTES)."""
        from . import tiffaudit
        try:
            text, end, size = _header(path)
        except FormatError as exc:
            return [str(exc)]
        binary = [[end, size - end]] if size > end else []
        if [list(k) for k in plan.kept_data] != binary:
            return ["the iSyntax binary data is not where it was"]
        with open(path, "rb") as fh:
            fh.seek(end + len(END))
            head = fh.read(BINARY_HEAD)
        if any(markup in head for markup in MARKUP):
            return ["the iSyntax binary part starts with XML (a second header?)"]
        return tiffaudit.philips_xml(text, "iSyntax header", options.keep_macro, ATTRIBUTES,
                                     OBJECT_TYPES, padded=True)

    def searched(self, path, plan):
        """The header, the binary part's first BINARY_HEAD bytes and DRAWN random windows of
        the rest (verify.full_scan: everything)."""
        if not plan.kept_data:
            yield path, ranges.merge()
            return
        (start, length), = plan.kept_data
        rest = start + BINARY_HEAD, start + length
        skip = [(start + BINARY_HEAD, max(0, length - BINARY_HEAD))]
        if rest[1] - rest[0] > DRAWN * WINDOW:
            draw = secrets.SystemRandom()
            windows = [(draw.randrange(rest[0], rest[1] - WINDOW), WINDOW) for _ in range(DRAWN)]
            searched = ranges.merge(ranges.complement(ranges.merge(skip), os.path.getsize(path)), windows)
            yield path, ranges.merge(ranges.complement(searched, os.path.getsize(path)))
        else:
            yield path, ranges.merge()
