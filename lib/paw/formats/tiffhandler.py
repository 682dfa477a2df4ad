"""The TIFF family as one Handler: Aperio, Hamamatsu NDPI, Leica SCN, Philips TIFF, Ventana BIF,
OME-TIFF and generic tiled TIFF, each a vendor table on the shared parser (tiff.py) and surgery
(surgery.py).

A vendor module provides:
    NAME, TITLE, LABEL_PLACE    names, and where a drawn label goes (None: no label image)
    TAGS                        every tag it keeps, with its value's type (tiffallow rules);
                                the residual audit refuses any other tag or value
    refused_variant(tiff)       a reason when the file is this vendor's but a variant paw does
                                not understand (checked for every vendor before any detect)
    detect(tiff)                whether directory 0 says this vendor
    plan(tiff, surgery, options)    what to destroy, blank, drop and replace; surgery.keep_typed
                                with TAGS on every kept directory
    check(tf, options, drawn)   independent structural checks on tifffile's view of the result
and the typed tables its texts are audited with (KEYS, PROPERTY_TYPES, ATTRIBUTES, ELEMENTS:
see tiffaudit.EXPLAINERS). Vendors are tried in OpenSlide's order, the generic reader last; a
tiled TIFF that carries some other vendor's metadata is refused, never treated as generic.

Before anything is written, a random sample of tiles of every kept image is walked whole
(tileheaders.py): a segment that may carry text, or bytes after a stream's end, refuses the
slide while it is still as the scanner wrote it.

Verification here is independent of the writer: the file is re-read with tifffile (not paw's
parser; every directory of the main chain and the SubIFDs each lists), the vendor is re-detected, the kept image payload and its tile tables must be exactly
where they were, every byte tifffile does not see referenced (header, directories, tag values,
kept payload) must be zero — that is where destroyed label and macro pixels were — and the
residual audit (tiffaudit.py) must explain every text left.
"""

import os

import numpy as np

from .. import ranges
from ..errors import FormatError, Unsupported
from ..sparse import first_nonzero
from . import aperio, generic, leica, ndpi, ome, philips, tileheaders, ventana
from .base import Handler, Prepared
from .edits import EditPlan
from .surgery import Surgery
from .tiff import Tiff
from .tifftags import LAYOUT, Tag

VENDORS = (ndpi, aperio, leica, philips, ventana, ome, generic)


def vendor_of(tiff):
    """The vendor module for a parsed TIFF; Unsupported if none, or a variant paw refuses."""
    for vendor in VENDORS:
        variant = vendor.refused_variant(tiff)
        if variant:
            raise Unsupported(f"format not supported yet: {variant}")
    for vendor in VENDORS:
        if vendor.detect(tiff):
            unknown = generic.unknown_vendor(tiff) if vendor is generic else None
            if unknown:
                raise Unsupported(f"format not supported yet: {unknown}")
            return vendor
    raise Unsupported("not a supported slide: directory 0 of the TIFF is not tiled")


def identify(path):
    """The TiffHandler for the file's vendor (FormatError if it is not a TIFF paw can read)."""
    with open(path, "rb") as fh:
        return TiffHandler(vendor_of(Tiff(fh)))


class TiffHandler(Handler):
    plan_type = EditPlan

    def __init__(self, vendor):
        self.vendor = vendor
        self.name, self.title, self.label_place = vendor.NAME, vendor.TITLE, vendor.LABEL_PLACE

    def _plan(self, path, options, pseudonym, label):
        with open(path, "rb") as fh:
            tiff = Tiff(fh)
            if vendor_of(tiff) is not self.vendor:
                raise FormatError(f"the file is no longer {self.title}")
            surgery = Surgery(tiff, label)
            self.vendor.plan(tiff, surgery, options)
            # A sample, to refuse early and unchanged; verification draws again (full_scan: all).
            problems = tileheaders.problems(fh.fileno(), self._kept_images(tiff, surgery))
            if problems:
                raise Unsupported(f"refused: {problems[0]}")
            return Prepared(surgery.finish(), surgery.found)

    def _kept_images(self, tiff, surgery):
        for directory in tiff.directories:
            if directory.index in surgery.destroyed or directory.index in surgery.blanked:
                continue
            for image in [directory, *surgery.children.get(directory.index, ())]:
                yield walked_image(tiff, image, self.vendor)

    def check(self, path, plan, options):
        import tifffile

        from . import tiffaudit
        try:
            with tifffile.TiffFile(path, is_ndpi=self.vendor is ndpi) as tf:
                pages, payload, drawn, blanked = every_page(tf), [], set(), set()
                for where, page in pages:
                    payload.append(_payload(tf, page, where))
                    if plan.added and ranges.covers(plan.added, payload[-1]):
                        drawn.add(where)
                    if plan.blanked and ranges.covers(plan.blanked, payload[-1]):
                        blanked.add(where)  # zeros (checked below), not a stream to walk
                problems = self.vendor.check(tf, options, drawn)
                problems += _placement(path, plan, payload, *_structure(tf, pages))
                if problems:
                    return problems
                return tiffaudit.audit(tf, self.vendor, options, drawn, pages, payload, blanked)
        except FormatError as exc:
            return [str(exc)]
        except Exception as exc:  # the independent reader disagrees with paw's parser: fail closed
            reason = " ".join(str(exc).split())[:160]
            return [f"the independent reader cannot read the result ({type(exc).__name__}: {reason})"]

    def searched(self, path, plan):
        """The whole file but the kept tiles and their offset tables (binary positions `check`
        compared with tifffile's: at 20 GB they are megabytes of numbers) — except a sample of
        the kept tiles, drawn afresh per image as tileheaders.sample draws (with full_scan,
        verify searches everything anyway): a removed value or a part of the name hidden inside
        a tile's recorded bytes is found there as the tile walk would find its segments."""
        skip = ranges.merge(plan.kept_data, plan.layout or [])
        with open(path, "rb") as fh:
            tiff = Tiff(fh)
            images = [walked_image(tiff, image, self.vendor) for directory in tiff.directories
                      for image in (directory, *tiff.sub_directories(directory))]
        size = os.path.getsize(path)
        searched = ranges.merge(ranges.complement(skip, size), tileheaders.sampled_spans(images))
        yield path, ranges.merge(ranges.complement(searched, size))


def walked_image(tiff, image, vendor):
    """A directory of paw's parser as the tile walks see it (tileheaders.Image): an NDPI strip
    with MCU starts as its JPEG header and restart intervals, every other image by its tiles."""
    spans = tiff.data_ranges(image)
    compression = tiff.number(image, Tag.COMPRESSION, 1)
    comments = getattr(vendor, "STRIP_COMMENTS", None)
    starts = image.entries.get(Tag.NDPI_MCU_STARTS)
    if tiff.ndpi and starts is not None and len(spans) == 1:
        values = np.asarray(tiff.values(starts), dtype=np.int64)
        high = image.entries.get(Tag.NDPI_MCU_STARTS_HIGH)
        if high is not None and high.count == starts.count:
            values |= np.asarray(tiff.values(high), dtype=np.int64) << 32
        header, spans = tileheaders.restart_layout(image.name, int(spans[0][0]), int(spans[0][1]), values)
        return tileheaders.Image(image.name, compression, spans, comments, header)
    return tileheaders.Image(image.name, compression, spans, comments)


def _placement(path, plan, payload, structure, layout):
    """The kept image data and tile tables where the plan left them, and every byte nothing
    references zero (blanked pixels read as zeros; the drawn label is referenced, but searched
    like everything else that is not a kept tile)."""
    expected = ranges.merge(plan.kept_data, plan.blanked, plan.added)
    if not np.array_equal(ranges.merge(*payload), expected):
        return ["kept image data is not where it was"]
    if plan.layout is not None and not np.array_equal(ranges.merge(layout), ranges.merge(plan.layout)):
        return ["the tile tables are not where they were"]
    kept = ranges.from_spans(ranges.merge(plan.kept_data))
    referenced = ranges.merge(structure, layout, kept, plan.added)
    stray = first_nonzero(path, ranges.complement(referenced, os.path.getsize(path)))
    if stray is not None:
        return [f"unreferenced bytes at {stray} are not cleared"]
    return []


def every_page(tf):
    """(where, page) for every directory tifffile reads: the main chain (where: its index), then
    after each page the SubIFDs it lists (where: "0 SubIFD 1"), read the way tifffile reads a
    pyramid's levels (OME-TIFF)."""
    import tifffile
    pages = []
    for index, page in enumerate(tf.pages):
        pages.append((index, page))
        for level, offset in enumerate(page.subifds or (), 1):
            tf.filehandle.seek(offset)
            pages.append((f"{index} SubIFD {level}", tifffile.TiffPage(tf, index=(index, level))))
    return pages


def _payload(tf, page, index):
    """(offset, length) of a page's strips or tiles as stored in the file.

    tifffile shows an NDPI strip that has MCU starts as virtual tiles after the strip's JPEG
    header; the stored strip starts McuStarts[0] bytes before the first of them.
    """
    offsets, counts = page.dataoffsets, page.databytecounts
    if len(offsets) != len(counts):
        raise FormatError(f"directory {index}: tifffile sees {len(offsets)} image data "
                          f"offsets but {len(counts)} byte counts")
    if tf.is_ndpi and Tag.NDPI_MCU_STARTS in page.tags and len(offsets):
        start = int(offsets[0]) - int(page.tags[Tag.NDPI_MCU_STARTS].value[0])
        return [(start, int(offsets[-1]) + int(counts[-1]) - start)]
    return ranges.array(np.column_stack((np.asarray(offsets, np.int64), np.asarray(counts, np.int64))))


def _structure(tf, pages):
    """(offset, length) of the header, every directory and every out-of-line tag value; and,
    separately, of the strip/tile offset and byte-count arrays."""
    fmt = tf.tiff
    ndpi_layout = tf.is_ndpi  # 8-byte header pointer and next pointers, then 4 high bytes per entry
    structure, layout = [(0, 16 if fmt.version == 43 else 12 if ndpi_layout else 8)], []
    for _, page in pages:
        n = len(page.tags)
        structure.append((page.offset, fmt.tagnosize + n * fmt.tagsize
                          + (8 + 4 * n if ndpi_layout else fmt.offsetsize)))
        for tag in page.tags:
            if tag.valuebytecount > fmt.tagoffsetthreshold:
                where = layout if tag.code in LAYOUT else structure
                where.append((tag.valueoffset, tag.valuebytecount))
    return structure, layout
