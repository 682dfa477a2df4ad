"""What microscope optics are called: the vocabularies a kept name must come from.

Channel, dye, objective and manufacturer names are free text in Zeiss CZI and Olympus VSI
metadata; a lab can type anything there, a person's name or an accession included, and a
"letters, digits and a few separators" pattern keeps all of that. So paw keeps such a name
only when it is built from these tables; anything else is replaced by a neutral name where a
reader wants one ("Channel 1") or removed (README, "What paw keeps"). The tables are small on
purpose and grow with the sources (a real name paw does not know is lost, never a name kept
that should not be). Matching ignores case and runs of spaces; every kind is an allow.Kind, so
the residual audits explain kept names with the same tables.

Sources: the names in the real CZI and VSI fixtures (DAPI, GFP, EGFP, AF488, Alexa Fluor 488,
C405/C488, Plan-Apochromat 5x/0.35, UPLXAPO O 60x / 1.42, Olympus, Hamamatsu, Yokogawa);
ZEN's channel naming (dye, then -T1 for the track) and cellSens' (C + excitation wavelength);
the product catalogues of the dye families and the objective series of Zeiss, Olympus/Evident,
Nikon and Leica.
"""

import re

from .allow import Kind


def _words(text):
    return [w for w in text.split("|") if w]


# Dyes and fluorescent proteins named without a number.
DYES = _words(
    "DAPI|Hoechst|Hoechst 33342|Hoechst 33258|DRAQ5|DRAQ7|PI|Propidium Iodide|SYTOX Green|"
    "SYTOX Orange|SYTOX Red|TO-PRO-3|FITC|TRITC|TxRed|Texas Red|TexasRed|Rhodamine|"
    "Oregon Green|Pacific Blue|Cascade Blue|Lucifer Yellow|Calcein|Fluorescein|Phalloidin|"
    "GFP|EGFP|eGFP|AcGFP|TurboGFP|YFP|EYFP|CFP|ECFP|BFP|EBFP|TagBFP|RFP|mRFP|TagRFP|DsRed|"
    "mCherry|tdTomato|mScarlet|mNeonGreen|mVenus|mCitrine|mTurquoise2|mCerulean|mKate2|"
    "mOrange|mKO|iRFP|mEmerald|Dendra2|mEos|Kaede|"
    "Cy2|Cy3|Cy3.5|Cy5|Cy5.5|Cy7|"
    "Brightfield|Bright Field|Bright-Field|BF|TL|TL Brightfield|TL BF|DIC|TL DIC|Phase|"
    "Phase Contrast|PhaseContrast|PC|Darkfield|Dark Field|Polarization|Transmitted Light|"
    "Reflected Light|Fluorescence|Autofluorescence|RGB|Red|Green|Blue|Gray|Grey|"
    "HE|H&E|Hematoxylin|Haematoxylin|Eosin|DAB|Nuclear|Nuclei")
# Dye families named with a number (an emission or excitation wavelength, or a series number).
DYE_FAMILIES = _words(
    "Alexa Fluor|Alexa|AF|Atto|ATTO|DyLight|CF|Opal|iFluor|Janelia Fluor|JF|BODIPY|"
    "Brilliant Violet|BV|Qdot|Abberior STAR|STAR|Star|SeTau|NorthernLights|Spectrum|"
    "CellTracker|MitoTracker|LysoTracker|ER-Tracker|SiR|SPY|DRAQ|Cy")
_DYE = (r"(?:%s)" % "|".join(re.escape(w) for w in sorted(DYES, key=len, reverse=True)))
_FAMILY = (r"(?:%s)[ -]?\d{1,3}(?:\.\d)?" % "|".join(re.escape(w) for w in
                                                    sorted(DYE_FAMILIES, key=len, reverse=True)))
# cellSens names a channel by its excitation (C405); ZEN and LSM by index and track (Ch1-T1,
# ChS1-T2); paw's own neutral name is "Channel 1"; a bare wavelength is "488 nm" or "488".
_NUMBERED = r"C\d{3}|ChS?\d{1,2}|Channel \d{1,3}|\d{3}(?: ?nm)?"
CHANNEL_NAME_GRAMMAR = rf"(?:{_DYE}|{_FAMILY}|{_NUMBERED})(?:-T\d{{1,2}})?"

MANUFACTURERS = _words(
    "Zeiss|Carl Zeiss|Carl Zeiss Microscopy|Olympus|Evident|Leica|Leica Microsystems|Nikon|"
    "Hamamatsu|Hamamatsu Photonics|Yokogawa|Andor|Oxford Instruments|Photometrics|"
    "Teledyne Photometrics|Princeton Instruments|PCO|Excelitas|Lumencor|CoolLED|Prior|"
    "Prior Scientific|Märzhäuser|Marzhauser|Ludl|ASI|Applied Scientific Instrumentation|"
    "Thorlabs|Chroma|Semrock|IDEX|Sutter|Coherent|Toptica|Omicron|Cobolt|Vortran|X-Cite|"
    "Lumen Dynamics|Basler|FLIR|Teledyne FLIR|Allied Vision|Sony|Jenoptik|QImaging|Ximea|"
    "Lumenera|Point Grey|3DHISTECH|Visitron|Roper|Photron|Physik Instrumente|PI|Piezosystem Jena")

# Objective catalogue names: series words (one at least), optionally a magnification and
# numerical aperture ("20x/0.8", "60x / 1.42"), and the correction/immersion words around them.
OBJECTIVE_SERIES = _words(
    "Plan-Apochromat|Plan-Neofluar|Plan-Achromat|C-Apochromat|A-Plan|N-Achroplan|Achroplan|"
    "Epiplan|Epiplan-Neofluar|Epiplan-Apochromat|Fluar|Neofluar|Apochromat|Objective|"
    "UPlanSApo|UPLSAPO|UPLXAPO|UPLSXAPO|UPlanXApo|UPlanFLN|UPLFLN|UPlanFL|UPlanApo|UPLAPO|"
    "PlanApo|PLAPON|UApo|UAPON|LUCPlanFLN|UCPlanFLN|LCPlanFL|MPlanFL|MPLFLN|PlanCN|ACHN|XApo|"
    "UPLSAPO30XS|UPLSAPO60XS|CFI|Plan Apo|Plan Fluor|S Plan Fluor|Apo|Fluor|"
    "HC|HCX|PL|APO|FLUOTAR|Plan|Semi-Apochromat|Achromat")
OBJECTIVE_WORDS = _words(
    "EC|LD|LCI|Alpha|W|N|O|S|Sil|SIL|Oil|OIL|Water|W Corr|Glyc|Glycerol|Imm|Korr|Corr|DIC|"
    "Ph0|Ph1|Ph2|Ph3|PH|M25|M27|M32|Iris|UV|VIS-IR|IR|CS|CS2|TIRF|TIRFM|HR|OHR|XS|SIR|"
    "lambda|λ|MRD|SR|Dry|Air|Multi-Immersion|Multi Immersion")
_SERIES = "|".join(re.escape(w) for w in sorted(OBJECTIVE_SERIES, key=len, reverse=True))
_OWORD = "|".join(re.escape(w) for w in sorted(OBJECTIVE_WORDS + OBJECTIVE_SERIES, key=len, reverse=True))
_MAG_NA = r"\d{1,3}(?:\.\d{1,2})?[xX] ?/ ?\d(?:\.\d{1,3})?"
OBJECTIVE_GRAMMAR = (rf"(?:(?:{_OWORD}) )*(?:{_SERIES})(?: (?:{_OWORD}))*"
                     rf"(?: {_MAG_NA}(?: (?:{_OWORD}))*)?")


def _normal(text):
    return " ".join(text.split())


class Vocabulary(Kind):
    """A name from a list (case and runs of spaces ignored)."""
    label = "a known name"
    __slots__ = ("words",)

    def __init__(self, words):
        self.words = frozenset(_normal(w).casefold() for w in words)

    def accepts(self, text):
        return len(text) <= 64 and _normal(text).casefold() in self.words

    def __repr__(self):
        return f"Vocabulary({len(self.words)} words)"


class Grammar(Kind):
    """A name built from vocabulary words by a regular expression (full match, case ignored,
    runs of spaces taken as one)."""
    label = "a known name"
    __slots__ = ("regex",)

    def __init__(self, regex):
        self.regex = re.compile(regex, re.IGNORECASE)

    def accepts(self, text):
        return len(text) <= 64 and text == text.strip() and self.regex.fullmatch(_normal(text)) is not None

    def __repr__(self):
        return f"Grammar({self.regex.pattern[:40]!r}...)"


CHANNEL_NAME = Grammar(CHANNEL_NAME_GRAMMAR)
MANUFACTURER = Vocabulary(MANUFACTURERS)
OBJECTIVE_NAME = Grammar(OBJECTIVE_GRAMMAR)
NEUTRAL_CHANNEL = "Channel {}"   # what replaces a channel name no table explains (1-based)
