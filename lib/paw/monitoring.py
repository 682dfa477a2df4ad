"""Sentry errors and Crons check-ins, with nothing about any patient leaving the host.

Imported only when `sentry.enabled` is true. What may leave is decided by allow-lists, not by
removing what is known to leak:
- events keep their level, exception *types*, code locations (module, function, line), paw's
  version and the configured site name; exception messages are replaced (OSError texts carry
  paths; parser errors may quote metadata), and so is everything else: no argv, no environment,
  no local variables, no breadcrumbs, no host name;
- log records of WARNING and above become events with their *template* only
  (`"quarantined %s: %s"`), never their arguments: sentry-sdk's own logging integration, which
  formats the arguments in, stays off;
- check-ins keep the monitor slug, status, duration and the monitor's schedule.
A run that finds the lock held sends no check-in: if a run hangs, Sentry's max_runtime says so.
"""

import logging
import time

import sentry_sdk
from sentry_sdk.crons import capture_checkin

from . import __version__

REDACTED = "<redacted>"
_EVENT_KEYS = {"event_id", "timestamp", "level", "platform", "logger", "message", "exception",
               "sdk", "server_name", "environment", "release", "type", "fingerprint"}
_CHECKIN_KEYS = {"type", "check_in_id", "monitor_slug", "status", "duration", "monitor_config",
                 "event_id", "timestamp", "sdk", "environment", "release", "contexts"}
_FRAME_KEYS = {"function", "module", "lineno", "in_app"}


def scrub(event, hint=None):
    """before_send (which sentry-sdk also calls for check-ins): keep only the allow-lists."""
    if event.get("type") == "check_in":
        clean = {k: v for k, v in event.items() if k in _CHECKIN_KEYS}
        if "contexts" in clean:  # the trace context links the check-in; nothing else is kept
            clean["contexts"] = {"trace": {k: v for k, v in clean["contexts"].get("trace", {}).items()
                                           if k in ("trace_id", "span_id")}}
        return clean
    clean = {k: v for k, v in event.items() if k in _EVENT_KEYS}
    if "logentry" in event:  # the template only; its params would be file names
        clean["message"] = (event["logentry"] or {}).get("message", REDACTED)
    elif "message" in clean and not isinstance(clean["message"], str):
        clean["message"] = REDACTED
    for exc in (clean.get("exception") or {}).get("values", []):
        for key in list(exc):
            if key not in ("type", "module", "stacktrace", "mechanism"):
                del exc[key]
        exc["value"] = REDACTED
        if exc.get("mechanism"):
            exc["mechanism"] = {"type": exc["mechanism"].get("type", "generic"),
                                "handled": exc["mechanism"].get("handled", True)}
        frames = (exc.get("stacktrace") or {}).get("frames", [])
        exc["stacktrace"] = {"frames": [{k: f[k] for k in _FRAME_KEYS if k in f} for f in frames]}
    return clean


class TemplateHandler(logging.Handler):
    """WARNING and above as Sentry events: the message template, never its arguments."""

    def emit(self, record):
        if record.name.startswith("sentry_sdk"):
            return
        level = "error" if record.levelno >= logging.ERROR else "warning"
        sentry_sdk.capture_message(str(record.msg), level=level)


class Monitor:
    def __init__(self, settings, transport=None):
        self.settings = settings
        options = dict(
            dsn=settings["dsn"], release=f"paw@{__version__}", server_name=settings["site"],
            include_local_variables=False, include_source_context=False,
            max_breadcrumbs=0, default_integrations=False, auto_enabling_integrations=False,
            before_send=scrub, shutdown_timeout=5,
        )
        if transport is not None:
            options["transport"] = transport
        sentry_sdk.init(**options)
        self.handler = TemplateHandler(level=logging.WARNING)
        logging.getLogger("paw").addHandler(self.handler)

    def checked(self, run):
        """Run one locked pass between an in_progress and an ok/error check-in."""
        config = {"schedule": {"type": "crontab", "value": self.settings["schedule"]},
                  "timezone": self.settings["timezone"], "checkin_margin": 5,
                  "max_runtime": 120, "failure_issue_threshold": 2, "recovery_threshold": 1}
        slug = self.settings["monitor_slug"]
        check_in = capture_checkin(monitor_slug=slug, status="in_progress", monitor_config=config)
        began = time.monotonic()
        status = "error"
        try:
            code = run()
            status = "ok" if code in (0, 3) else "error"
            return code
        except Exception:
            sentry_sdk.capture_exception()
            raise
        finally:
            capture_checkin(monitor_slug=slug, check_in_id=check_in, status=status,
                            duration=time.monotonic() - began, monitor_config=config)

    def close(self):
        logging.getLogger("paw").removeHandler(self.handler)
        sentry_sdk.flush(timeout=10)
