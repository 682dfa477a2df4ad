"""Which format a slide is, decided by content (never by extension), and what paw does with it.

A TIFF format module has NAME, TITLE, LABEL_PLACE, ALLOWED_TAGS, detect(tiff),
plan(tiff, surgery, options) and check(tifffile.TiffFile, options, drawn) (`drawn`: the
directories holding paw's drawn label). A module for another layout (MRXS, iSyntax, DICOM) has
NAME, TITLE, LABEL_PLACE, detect(path), prepare(path, options, pseudonym, label) -> (plan, roles found),
check_file(path, plan, options) and searched_files(path, plan), and PLAN if its plan is not a
tiff.Plan. Variants paw recognises but cannot anonymize are named in the refusal, so an OME-TIFF
is never mistaken for a generic TIFF and passed through.
"""

from . import aperio, dicom, generic, isyntax, leica, mrxs, ndpi, philips, ventana
from .tiff import Surgery, Tiff, TiffError

# Tried in order, as OpenSlide does: vendors first, the generic reader last.
SUPPORTED = (ndpi, aperio, leica, philips, ventana, generic)
# Formats that are not TIFF: recognised by their first bytes, with their own prepare/check_file.
OTHER = (mrxs, isyntax, dicom)
BY_NAME = {m.NAME: m for m in SUPPORTED + OTHER}


class Unsupported(Exception):
    """A file paw will not anonymize; the message is the one-line reason."""


def _recognised_but_unsupported(tiff):
    first = tiff.directories[0]
    description = tiff.text(first, 270)[:4096]
    if 65420 in first.entries and not tiff.ndpi:
        return "Hamamatsu NDPI in classic TIFF layout"
    if "leica-microsystems.com/scn" in description and not leica.detect(tiff):
        return "Leica SCN variant (namespace or layout not understood)"
    if ("DPUfsImport" in description) != tiff.text(first, 305).startswith("Philips"):
        return "Philips TIFF variant (only one of Software and XML says Philips)"
    if "<OME" in description:
        return "OME-TIFF"
    return None


def identify(tiff):
    other = _recognised_but_unsupported(tiff)
    if other:
        raise Unsupported(f"format not supported yet: {other}")
    for module in SUPPORTED:
        if module.detect(tiff):
            return module
    raise Unsupported("not a supported slide: directory 0 of the TIFF is not tiled")


def prepare(path, options, pseudonym="PAW-ANONYMIZED", label=None):
    """Parse without writing: the format module, the edit plan, and the image roles found.
    `pseudonym` goes into formats that name the patient inside the file (DICOM); `label` is the
    drawn label (paw.label.Label) for formats that have one, None to only destroy labels."""
    for module in OTHER:
        if module.detect(path):
            try:
                plan, found = module.prepare(path, options, pseudonym, label)
            except TiffError as exc:
                raise Unsupported(f"cannot parse: {exc}") from None
            return module, plan, found
    try:
        with open(path, "rb") as fh:
            tiff = Tiff(fh)
            module = identify(tiff)
            surgery = Surgery(tiff, label)
            module.plan(tiff, surgery, options)
            return module, surgery.finish(), surgery.found
    except TiffError as exc:
        if path.lower().endswith(".mrxs"):  # MIRAX is known by its extension (as in OpenSlide)
            raise Unsupported("format not supported yet: 3DHistech MRXS without its data folder") from None
        raise Unsupported(f"cannot parse: {exc}") from None
