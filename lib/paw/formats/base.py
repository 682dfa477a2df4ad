"""The one interface between the pipeline and the formats.

The pipeline (slide, tools, verify) sees only a `Handler` and the `Plan` it returns:

    handler = formats.identify(path)            # by content, never by extension
    prepared = handler.plan(path, options, pseudonym, label)
    journal.plan = prepared.plan.to_json()      # the plan serialises itself ...
    plan = formats.plan_from_json(handler.name, journal.plan)   # ... and comes back after a crash
    plan.apply(path, undo=FOLDER)               # idempotent: a replay finishes a half-applied plan
    plan.rollback(path, undo=FOLDER)            # the slide as it was before apply, byte for byte
    problems = handler.check(path, plan, options)    # independent re-read of the result
    for file, skip in handler.searched(path, plan):  # where verification searches removed values
        ...

`options` is anything with the attributes paw.yaml gives (`keep_macro`, `full_scan`); `label` is
a drawn replacement label (paw.label.Label) or None. Nothing here touches the pipeline: formats
never move, claim, journal or record slides.
"""

from dataclasses import dataclass

from ..errors import FormatError, Unsupported


class Found(str):
    """A removed value that remembers the field it was in, for `paw.py inspect` (a local tool:
    it shows the admin the field and the value). Everywhere else it is the plain text: the
    journal, the value search; a field never reaches the ledger, the log or Sentry."""
    field = ""


def found(field, value):
    """`value` as a Found of `field` (a known name or a position, never a text of the file:
    an unknown key is named "an unknown key", its text is the value)."""
    text = Found(value)
    text.field = field
    return text


class Plan:
    """What anonymizing one slide changes. Subclasses hold the edits; every plan has:

    removed  the values taken out (verification searches the result for them; never written);
             a value may be a Found that names its field (for inspect)
    actions  what was done, for people (the ledger's `removed` column, `inspect`)
    """
    removed: list
    actions: list

    def apply(self, path, undo=None):
        """Make the edits; applying a plan a second time (after a crash) changes nothing more.

        With `undo` (a private, empty or partly filled folder on the slide's file system), first
        keep there, durably, whatever `rollback` needs to give the slide back exactly as it was:
        the original bytes of every range the plan overwrites (undo.RangeLog), or the original
        files a plan replaces. Nothing of the slide is written before that is committed, and a
        replay never saves again. Raises Unsupported, writing nothing, if that would pass
        undo.LIMIT. Without `undo` (by hand: a copy, or --in-place) nothing is kept."""
        raise NotImplementedError

    def rollback(self, path, undo):
        """Undo `apply(path, undo)`, whether it finished, was cut short at any point, or never
        started writing: afterwards the slide's files are byte for byte what they were.
        Idempotent (a crash during rollback is finished by running it again)."""
        raise NotImplementedError

    def to_json(self):
        raise NotImplementedError

    @classmethod
    def from_json(cls, data):
        raise NotImplementedError

    def summary(self):
        """One line on the size of the edit, for `inspect`."""
        raise NotImplementedError

    def changes(self, path):
        """Whether applying the plan would change a byte of the slide at `path` (False: it is
        already anonymized as this plan would leave it); None when the plan cannot tell
        without applying."""
        return None


@dataclass
class Prepared:
    plan: Plan
    found: dict   # image roles found in the slide ("level": 3, "label": 1 ...), for inspect and tests


class Handler:
    """One format. Subclasses set the names and implement `_plan`, `check` and `searched`."""
    name = ""           # short, stable: journals and the ledger record it
    title = ""          # for people
    label_place = None  # where a drawn label goes, or None when the format has no label image
    plan_type = Plan

    def plan(self, path, options, pseudonym="PAW-ANONYMIZED", label=None):
        """Parse without writing and decide every edit. A parser's FormatError becomes an
        Unsupported refusal ("cannot parse: ...", or "incomplete file: ..." for a copy cut
        short; sniff.unreadable): the slide is quarantined with that reason."""
        try:
            return self._plan(path, options, pseudonym, label)
        except FormatError as exc:
            from .sniff import unreadable
            raise Unsupported(unreadable(path, exc, self.title)) from None

    def _plan(self, path, options, pseudonym, label):
        raise NotImplementedError

    def plan_from_json(self, data):
        return self.plan_type.from_json(data)

    def check(self, path, plan, options):
        """Re-read the anonymized slide independently of the code that wrote it; the problems
        found (one line each), empty when the result may leave."""
        raise NotImplementedError

    def searched(self, path, plan):
        """(file, spans to skip) for every file of the slide: where removed values must not be
        found. Skipped spans are only the kept image payload and binary tables `check` has
        confirmed; with verify.full_scan nothing is skipped."""
        raise NotImplementedError
