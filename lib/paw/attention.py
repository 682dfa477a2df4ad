"""What needs a person, remembered between runs in `state_dir/attention.json`:

  unreadable  entries the scan skipped: a folder or file paw cannot read, a path past the
              system's limit, a FIFO, socket or device (never opened)
  held        slides paw could not take from the inbox in MAX_ATTEMPTS runs (at once for a slide
              holding a FIFO or device): left alone until they change (saved again, renamed,
              touched), so one bad entry neither stops nor clogs the runs
  skewed      slides whose file times lie ahead of paw's clock (a client with a wrong clock)
  busy        slides a process on this host still holds open for writing
  unwritable  slides paw's user could not edit or move out of their folder (a scan another
              user saved 0644): left in the inbox, never claimed, until that changes
  modes_kept  the last run that delivered slides whose files paw's user could not give the
              outbox's group and modes (they belong to another user): its warning
  blind       the open-for-writing check could not be made (the kernel grants no lease on
              another user's file without CAP_LEASE): the owners it concerned

Each is logged as a warning when it first appears, not at every run (Sentry makes an event of
each warning); `status` lists what is current. Everything here is keyed by the path relative to
the inbox and holds no file content.
"""

import json
import os
import time

from .durable import write_atomic

FILE = "attention.json"
MAX_ATTEMPTS = 3
KINDS = ("unreadable", "held", "skewed", "busy", "unwritable", "blind", "modes_kept")


class Attention:
    def __init__(self, state_dir):
        self.path = os.path.join(state_dir, FILE)
        self.data = {kind: {} for kind in KINDS}
        try:
            with open(self.path, encoding="utf-8") as fh:
                loaded = json.load(fh)
            self.data.update({k: v for k, v in loaded.items() if k in KINDS and isinstance(v, dict)})
        except (OSError, ValueError, AttributeError):
            pass
        self.changed = False

    def _set(self, kind, value):
        if self.data[kind] != value:
            self.data[kind] = value
            self.changed = True

    def scanned(self, found):
        """This scan's skipped entries [(path, reason)]; returns those not reported before."""
        current = dict(found)
        fresh = [(p, r) for p, r in current.items() if self.data["unreadable"].get(p) != r]
        self._set("unreadable", current)
        return fresh

    def skewed(self, found):
        """This scan's [(unit, seconds ahead)]; returns those not reported before."""
        fresh = [(u, s) for u, s in found if u.main not in self.data["skewed"]]
        self._set("skewed", {u.main: round(s) for u, s in found})
        return fresh

    def is_held(self, unit):
        entry = self.data["held"].get(unit.main)
        return bool(entry) and entry["fingerprint"] == unit.fingerprint and entry["held"]

    def claim_failed(self, unit, reason, final=False):
        """Count a failed claim; returns (attempts, whether the slide is now left alone)."""
        entry = self.data["held"].get(unit.main)
        if not entry or entry["fingerprint"] != unit.fingerprint:
            entry = {"fingerprint": unit.fingerprint, "attempts": 0, "since": int(time.time())}
        attempts = entry["attempts"] + 1
        held = final or attempts >= MAX_ATTEMPTS
        self.data["held"] = {**self.data["held"], unit.main: {**entry, "attempts": attempts,
                                                              "reason": reason, "held": held}}
        self.changed = True
        return attempts, held

    def busy(self, unit):
        """A process holds the unit open for writing; True the first time it is seen so."""
        if unit.main in self.data["busy"]:
            return False
        self.data["busy"] = {**self.data["busy"], unit.main: int(time.time())}
        self.changed = True
        return True

    def unwritable(self, unit, why):
        """paw's user cannot take the unit (`why`); True when this is news (log it once)."""
        if self.data["unwritable"].get(unit.main) == why:
            return False
        self.data["unwritable"] = {**self.data["unwritable"], unit.main: why}
        self.changed = True
        return True

    def blind(self, owners):
        """The lease check was refused on files of `owners` (uids) in this run; True when
        that is news (log it once). An empty list after files were checked clears it."""
        value = {str(uid): True for uid in sorted(set(owners))}
        fresh = bool(value) and not set(value) <= set(self.data["blind"])
        self._set("blind", value)
        return fresh

    def modes_kept(self, line):
        """The last delivery's warning about files that kept their owner's modes (None: clear)."""
        self._set("modes_kept", {"warning": line, "time": int(time.time())} if line else {})

    def settle(self, present, busy, unwritable=()):
        """After the scan: forget what is gone, changed (a held slide saved again is tried
        afresh), no longer open for writing (`busy`: the mains found busy in this run) or no
        longer unwritable (`unwritable`: the mains found so in this run).
        `present()` gives {main: fingerprint} of the scan; asked only when something is held."""
        if self.data["held"]:
            seen = present()
            self._set("held", {m: e for m, e in self.data["held"].items()
                               if seen.get(m) == e["fingerprint"]})
        self._set("busy", {m: t for m, t in self.data["busy"].items() if m in busy})
        self._set("unwritable", {m: w for m, w in self.data["unwritable"].items() if m in unwritable})

    def claimed(self, main):
        if main in self.data["held"]:
            self._set("held", {m: e for m, e in self.data["held"].items() if m != main})

    def save(self):
        if self.changed:
            write_atomic(self.path, json.dumps(self.data).encode("utf-8"))
            self.changed = False


def load(state_dir):
    """What `status` shows: {kind: {path: details}}."""
    return Attention(state_dir).data
