"""Every slide format paw anonymizes, behind one interface (see base.py).

    identify(path) -> Handler           which format a slide is, by content (never by extension)
    handler(name) -> Handler            the handler a journal recorded, after a crash
    plan_from_json(name, data) -> Plan
    prepare(path, options, ...) -> (Handler, Plan, roles found)    identify, then plan

Nothing outside this package imports a format module. Submodules are imported on first use:
the idle tick (nothing to do) must not pay for parsing code or numpy.

Where a new format goes: a TIFF vendor is a module beside aperio.py listed in
tiffhandler.VENDORS; any other layout is a Handler subclass in its own module, added to
_OTHER below (tried before the TIFF family, as OpenSlide tries MIRAX and DICOM first).
"""

import os

from .. import bundle
from ..errors import FormatError, Unsupported

_OTHER = (("mrxs", "MrxsHandler"), ("isyntax", "IsyntaxHandler"), ("dicom", "DicomHandler"),
          ("czi", "CziHandler"), ("vsi", "VsiHandler"))


def _others():
    from importlib import import_module
    for module_name, class_name in _OTHER:
        module = import_module(f"{__name__}.{module_name}")
        yield module, getattr(module, class_name)()


def identify(path):
    """The handler for the slide at `path` (its main member); Unsupported with the reason if
    paw cannot anonymize it."""
    for module, each in _others():
        if module.detect(path):
            return each
    if os.path.isdir(path):  # a folder that is no slide paw knows: bundle.py says why
        raise Unsupported(bundle.folder_refusal(path))
    from . import tiffhandler
    try:
        return tiffhandler.identify(path)
    except FormatError as exc:
        if path.lower().endswith(".mrxs"):  # MIRAX is known by its extension (as in OpenSlide)
            raise Unsupported("format not supported yet: 3DHistech MRXS without its data folder") from None
        from .sniff import unreadable
        raise Unsupported(unreadable(path, exc)) from None


def handler(name):
    """The handler called `name` (as recorded in a journal)."""
    for _, each in _others():
        if each.name == name:
            return each
    from . import tiffhandler
    for vendor in tiffhandler.VENDORS:
        if vendor.NAME == name:
            return tiffhandler.TiffHandler(vendor)
    raise Unsupported(f"unknown format {name!r} in a journal")


def plan_from_json(name, data):
    return handler(name).plan_from_json(data)


def prepare(path, options, pseudonym="PAW-ANONYMIZED", label=None):
    """Identify and plan in one call: (handler, plan, image roles found). Writes nothing.
    `pseudonym` goes into formats that name the patient inside the file (DICOM); `label` is the
    drawn label for formats that have one, None to only destroy labels."""
    found = identify(path)
    prepared = found.plan(path, options, pseudonym, label)
    return found, prepared.plan, prepared.found
