"""The status page for technicians: one static HTML file (`report.html` in paw.yaml) that each run
rewrites, for the technician on Windows who opens it from the share.

It shows what `paw.py status` shows (the same dict, status.assemble): the slides waiting in the
inbox and why, what needs a person, the last slides delivered or quarantined, the quarantine
with reasons and how to retry, and a chart of slides per day. It is self-contained: inline CSS,
an inline SVG chart, no script, no font, no image from anywhere else (it is opened from a file
share, often on a machine without internet access), and it refreshes itself once a minute when
left open (a meta refresh, not a script).

It names original files, so config.py refuses a place inside the outbox or the inbox; it is
written atomically (a hidden partial file renamed over the page) with `report.mode` (0640 by
default; a setgid folder gives it the folder's group, as any new file there).

The idle tick must stay cheap: the page is rewritten only when what it shows changed, or, to
keep its "last run" time current, when it is older than REFRESH seconds.
"""

import hashlib
import html
import json
import os
import secrets
import time

from . import durable
from .naming import printable

STATE_FILE = "report.json"
REFRESH = 60  # seconds: a page showing nothing new is rewritten at most this often
BAR_DAYS = 14


def after_run(config, ledger, stability, left, waiting, skipped, noted, runs, now=None):
    """Write the page from what a run saw: `left` the stable slides it did not take (left alone,
    open for writing, a failed claim), `waiting` how many others wait (stability.waiting holds
    the first of them). Returns whether the page was written."""
    from .status import SHOWN, Schedule, assemble, judge
    now = time.time() if now is None else now
    schedule = Schedule(runs, now)
    units = (left + stability.waiting)[:SHOWN]
    slides = [judge(config, u.main, u.fingerprint, u.newest_change, stability.previous(u.main), noted,
                    schedule, now) for u in units]
    info = assemble(config, now, [], slides, len(left) + waiting, skipped, noted, runs, schedule, ledger)
    return write(config, info, now)


def write(config, info, now=None):
    """Write the page for `info` unless it shows nothing new and was written less than REFRESH
    seconds ago. Returns whether it was written."""
    now = time.time() if now is None else now
    key = hashlib.sha256(render(info, stamp=False).encode("utf-8")).hexdigest()
    state_path = os.path.join(config.state_dir, STATE_FILE)
    try:
        with open(state_path, encoding="utf-8") as fh:
            last = json.load(fh)
    except (OSError, ValueError):
        last = {}
    if last.get("key") == key and last.get("path") == config.report_html \
            and 0 <= now - last.get("written", 0) < REFRESH and os.path.exists(config.report_html):
        return False
    _replace(config.report_html, render(info).encode("utf-8"), config.report_mode)
    durable.write_atomic(state_path, json.dumps({"key": key, "written": now,
                                                 "path": config.report_html}).encode("utf-8"))
    return True


def _replace(path, data, mode):
    """Put `data` at `path` so that a reader sees the old page or the new one, never half of
    one: a hidden partial file in the same folder, fsynced, renamed over the page. The page is
    paw's own file; whatever else holds its name (a link) is replaced, never followed."""
    folder = os.path.dirname(path) or "."
    partial = os.path.join(folder, f"{durable.PARTIAL_PREFIX}{secrets.token_hex(8)}.html")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        try:
            os.fchmod(fd, mode)  # whatever the umask
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(partial, path)
    except BaseException:
        try:
            os.unlink(partial)
        except OSError:
            pass
        raise
    durable.fsync_dir(folder)


# --- the page -----------------------------------------------------------------------------------

CSS = """
:root { color-scheme: light; }
body { font-family: "Segoe UI", system-ui, -apple-system, Roboto, "Helvetica Neue", Arial, sans-serif;
       margin: 0; background: #f4f5f7; color: #1d2430; font-size: 15px; line-height: 1.4; }
header { background: #23395d; color: #fff; padding: 14px 24px; }
header h1 { margin: 0; font-size: 22px; font-weight: 600; }
header p { margin: 4px 0 0; color: #d5deec; }
main { padding: 16px 24px 32px; max-width: 1200px; }
.cards { display: flex; flex-wrap: wrap; gap: 12px; margin-bottom: 8px; }
.card { background: #fff; border-radius: 6px; padding: 10px 16px; min-width: 120px;
        box-shadow: 0 1px 2px rgba(0,0,0,.12); }
.card b { display: block; font-size: 28px; font-weight: 600; }
.card.warn b { color: #b54708; }
section { background: #fff; border-radius: 6px; padding: 12px 16px 14px; margin-top: 14px;
          box-shadow: 0 1px 2px rgba(0,0,0,.12); }
h2 { font-size: 17px; margin: 0 0 8px; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; vertical-align: top; padding: 5px 8px; border-bottom: 1px solid #e6e8ec; }
th { font-weight: 600; color: #475467; font-size: 13px; }
tr:nth-child(even) td { background: #fafbfc; }
td.name { font-family: Consolas, "DejaVu Sans Mono", monospace; font-size: 13px; overflow-wrap: anywhere;
          min-width: 16em; }
td.when { white-space: nowrap; }
.card small { display: block; color: #475467; font-size: 12px; }
.problem { background: #fef3f2; border-left: 4px solid #d92d20; padding: 8px 12px; margin: 8px 0; }
.note { color: #475467; margin: 6px 0 0; }
.ok { color: #067647; } .bad { color: #b42318; } .wait { color: #b54708; }
.empty { color: #667085; font-style: italic; }
footer { color: #667085; font-size: 13px; padding: 0 24px 24px; }
"""


def render(info, stamp=True):
    """The page as a string: static HTML, everything inline. Without `stamp`, the times that
    change at every run (updated, last run) are left out: what is left is what the page shows."""
    now = info["time"]
    inbox, attention = info["inbox"], info["attention"]
    today = info["per_day"][-1] if info["per_day"] else {"anonymized": 0, "quarantined": 0}
    ago = info["seconds_since_last_run"]
    every = info["schedule"]["interval_seconds"]
    out = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<meta http-equiv="refresh" content="60">',
        "<title>paw: slides status</title>", f"<style>{CSS}</style></head><body>",
        "<header><h1>paw: slides status</h1>",
        (f"<p>Updated <time id=\"updated\">{_when(now, now)}</time>"
         + (f" · last run {_when(now - ago, now)}" if ago is not None else " · no run yet")
         + (f" · runs about every {_duration(every)}" if every else "") + "</p>") if stamp else "",
        "</header><main>",
    ]
    for problem in info["problems"]:
        out.append(f'<div class="problem">Not ready: {_e(problem)}</div>')
    if info["schedule"]["late"]:
        out.append('<div class="problem">No run for a long time: runs seem to have stopped. Tell '
                   "the administrator (cron, the systemd timer or the Task Scheduler).</div>")
    needs = sum(len(v) for v in attention.values())
    out += [
        '<div class="cards">',
        _card("In the inbox", inbox["slides"], "inbox-count",
              note=f'<span id="ready-count">{inbox["stable"]}</span> ready for the next run'),
        _card("Waiting", inbox["waiting"], "waiting-count"),
        _card("Delivered today", today["anonymized"], "delivered-today"),
        _card("Quarantined today", today["quarantined"], "quarantined-today", warn=today["quarantined"]),
        _card("In quarantine", len(info["quarantine"]), "quarantine-count", warn=len(info["quarantine"])),
        _card("Needs a person", needs, "attention-count", warn=needs),
        "</div>",
    ]
    out += _waiting(info)
    out += _attention(attention)
    out += _outcomes(info["last_outcomes"], now)
    out += _quarantine(info)
    out += _chart(info["per_day"][-BAR_DAYS:])
    out.append("</main><footer>Written by paw. This page names original files: keep it where only the "
               "lab's staff can read it. It refreshes itself every minute.</footer></body></html>")
    return "\n".join(out) + "\n"


def _waiting(info):
    slides, inbox = info["slides"], info["inbox"]
    out = ['<section id="waiting"><h2>In the inbox</h2>']
    if not slides:
        out.append('<p class="empty">Nothing in the inbox.</p></section>')
        return out
    out.append("<table><thead><tr><th>Slide</th><th>State</th><th>Why, and when paw takes it</th>"
               "</tr></thead><tbody>")
    for item in slides:
        state = ('<span class="ok">ready</span>' if item["ready"] else
                 '<span class="bad">needs a person</span>' if "held" in item["why"] else
                 '<span class="wait">waiting</span>')
        out.append(f'<tr class="slide"><td class="name">{_e(item["path"])}</td><td>{state}</td>'
                   f"<td>{_e(item['text'])}</td></tr>")
    out.append("</tbody></table>")
    if inbox["listed"] < inbox["slides"]:
        out.append(f'<p class="note">The first {inbox["listed"]} of {inbox["slides"]} are listed; '
                   "<code>paw.py status</code> lists every one.</p>")
    out.append("</section>")
    return out


def _attention(attention):
    rows = []
    for item in attention["skipped"]:
        rows.append((item["path"], f"paw cannot read it ({item['reason']}); it is left alone until it can"))
    for item in attention["left_alone"]:
        rows.append((item["path"], f"left alone after {item['attempts']} failed attempts to take it "
                                   f"({item['reason']}); fix that, then save, rename or touch the file"))
    for item in attention["failed_claims"]:
        rows.append((item["path"], f"could not be taken yet ({item['attempts']} attempts: {item['reason']})"))
    for item in attention["clock_ahead"]:
        rows.append((item["path"], f"dated {item['seconds']} s in the future: the clock of the computer "
                                   "that wrote it is ahead; paw counts the age from when it saw the file"))
    for path in attention["open_for_writing"]:
        rows.append((path, "still open for writing on this host"))
    if not rows:
        return []
    out = ['<section id="attention"><h2>Needs a person</h2><table><thead><tr><th>Entry</th><th>What is '
           "wrong</th></tr></thead><tbody>"]
    out += [f'<tr class="problem-row"><td class="name">{_e(p)}</td><td>{_e(t)}</td></tr>' for p, t in rows]
    out.append("</tbody></table></section>")
    return out


def _outcomes(rows, now):
    out = ['<section id="recent"><h2>Last slides</h2>']
    if not rows:
        out.append('<p class="empty">No slide processed yet.</p></section>')
        return out
    out.append("<table><thead><tr><th>When</th><th>Result</th><th>Original</th>"
               "<th>Delivered as / reason</th></tr></thead><tbody>")
    for row in reversed(rows):
        if row.get("by_hand"):  # paw.py anonymize --output: a copy in the admin's folder
            result = '<span class="ok">copied by hand</span>'
            detail = f'<td class="name">{_e(os.path.join(row["folder"], row["output"]))}</td>'
        elif row["status"] == "anonymized":
            result = '<span class="ok">delivered</span>'
            output = "/".join(p for p in (row.get("folder", ""), row["output"]) if p)
            detail = f'<td class="name">outbox/{_e(output)}</td>'
        else:
            result = '<span class="bad">quarantined</span>'
            detail = f"<td>{_e(row['error'])}</td>"
        out.append(f'<tr class="outcome"><td class="when">{_utc(row["time_utc"], now)}</td>'
                   f'<td>{result}</td><td class="name">{_e(row["original"])}</td>{detail}</tr>')
    out.append("</tbody></table></section>")
    return out


def _quarantine(info):
    from .status import SHOWN
    items = info["quarantine"]
    out = ['<section id="quarantine"><h2>Quarantine</h2>']
    if not items:
        out.append('<p class="empty">The quarantine is empty.</p></section>')
        return out
    out.append(f'<p class="note">Not anonymized. {_e(info["retry"][0].upper() + info["retry"][1:])}.</p>')
    out.append("<table><thead><tr><th>Slide</th><th>Reason</th><th>Since</th></tr></thead><tbody>")
    for item in items[:SHOWN]:
        out.append(f'<tr class="quarantined"><td class="name">{_e(item["name"])}</td>'
                   f"<td>{_e(item['reason'] or '(no reason recorded)')}</td>"
                   f'<td class="when">{_when(item["time"], info["time"])}</td></tr>')
    out.append("</tbody></table>")
    if len(items) > SHOWN:
        out.append(f'<p class="note">The newest {SHOWN} of {len(items)} are listed.</p>')
    out.append("</section>")
    return out


def _chart(days):
    """Slides per day as an inline SVG bar chart (delivered and quarantined stacked), with the
    numbers as text and in a title per bar (a tooltip without script)."""
    width, height, left, bottom, top = 760, 220, 36, 40, 16
    step = (width - left - 8) / max(len(days), 1)
    biggest = max([d["anonymized"] + d["quarantined"] for d in days] + [1])
    scale = (height - bottom - top) / biggest
    base = height - bottom
    parts = [f'<svg id="per-day" role="img" aria-label="Slides per day" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg" font-size="11" '
             'font-family="Segoe UI, system-ui, sans-serif">',
             f'<line x1="{left}" y1="{base}" x2="{width - 8}" y2="{base}" stroke="#98a2b3"/>',
             f'<text x="{left - 6}" y="{top + 4}" text-anchor="end" fill="#475467">{biggest}</text>',
             f'<text x="{left - 6}" y="{base}" text-anchor="end" fill="#475467">0</text>']
    for i, day in enumerate(days):
        x = left + i * step + step * 0.15
        w = step * 0.7
        done, refused = day["anonymized"], day["quarantined"]
        h_done, h_refused = done * scale, refused * scale
        label = f"{day['date']}: {done} delivered, {refused} quarantined"
        parts.append(f'<g class="day" data-date="{day["date"]}" data-delivered="{done}" '
                     f'data-quarantined="{refused}"><title>{_e(label)}</title>')
        if done:
            parts.append(f'<rect x="{x:.1f}" y="{base - h_done:.1f}" width="{w:.1f}" height="{h_done:.1f}" '
                         'fill="#2e7d32"/>')
        if refused:
            parts.append(f'<rect x="{x:.1f}" y="{base - h_done - h_refused:.1f}" width="{w:.1f}" '
                         f'height="{h_refused:.1f}" fill="#e07b00"/>')
        if done + refused:
            parts.append(f'<text x="{x + w / 2:.1f}" y="{base - h_done - h_refused - 3:.1f}" '
                         f'text-anchor="middle" fill="#1d2430">{done + refused}</text>')
        parts.append(f'<text x="{x + w / 2:.1f}" y="{base + 14}" text-anchor="middle" fill="#475467">'
                     f'{day["date"][8:]}.{day["date"][5:7]}</text></g>')
    legend_y = height - 8
    parts += [f'<rect x="{left}" y="{legend_y - 9}" width="10" height="10" fill="#2e7d32"/>',
              f'<text x="{left + 14}" y="{legend_y}" fill="#1d2430">delivered</text>',
              f'<rect x="{left + 90}" y="{legend_y - 9}" width="10" height="10" fill="#e07b00"/>',
              f'<text x="{left + 104}" y="{legend_y}" fill="#1d2430">quarantined</text>', "</svg>"]
    return ['<section id="chart"><h2>Slides per day (this host, last '
            f"{len(days)} days)</h2>", "".join(parts), "</section>"]


def _card(title, value, ident, warn=False, note=""):
    return (f'<div class="card{" warn" if warn else ""}"><b id="{ident}">{value}</b>{_e(title)}'
            + (f"<small>{note}</small>" if note else "") + "</div>")


def _e(text):
    """Text for the page: control and bidi characters shown as escapes (printable), then HTML-escaped."""
    return html.escape(printable(str(text)), quote=True)


def _when(epoch, now):
    same_day = time.strftime("%Y-%m-%d", time.localtime(epoch)) == time.strftime("%Y-%m-%d", time.localtime(now))
    return time.strftime("%H:%M" if same_day else "%Y-%m-%d %H:%M", time.localtime(epoch))


def _utc(stamp, now):
    """A ledger time (ISO 8601, UTC) as the local time people read."""
    from datetime import datetime
    try:
        return _when(datetime.fromisoformat(stamp).timestamp(), now)
    except ValueError:
        return _e(stamp)


def _duration(seconds):
    return f"{seconds / 60:.0f} min" if seconds >= 90 else f"{seconds:.0f} s"
