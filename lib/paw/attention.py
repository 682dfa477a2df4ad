"""What needs a person, remembered between runs in `state_dir/attention.json`:

  unreadable  entries the scan skipped: a folder or file paw cannot read, a path past the
              system's limit, a FIFO, socket or device (never opened)
  held        slides paw could not take from the inbox in MAX_ATTEMPTS runs (at once for a slide
              holding a FIFO or device): left alone until they change (saved again, renamed,
              touched), so one bad entry neither stops nor clogs the runs
  skewed      slides whose file times lie ahead of paw's clock (a client with a wrong clock)
  busy        slides a process on this host still holds open for writing

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
KINDS = ("unreadable", "held", "skewed", "busy")


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

    def settle(self, present, busy):
        """After the scan: forget what is gone, changed (a held slide saved again is tried
        afresh) or no longer open for writing (`busy`: the mains found busy in this run).
        `present()` gives {main: fingerprint} of the scan; asked only when something is held."""
        if self.data["held"]:
            seen = present()
            self._set("held", {m: e for m, e in self.data["held"].items()
                               if seen.get(m) == e["fingerprint"]})
        self._set("busy", {m: t for m, t in self.data["busy"].items() if m in busy})

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
