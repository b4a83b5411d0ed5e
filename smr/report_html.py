"""``report.html``: one self-contained page per ``smr compare`` run, opened with no network.

The page holds the comparison table, every figure the run wrote (its PNG files,
embedded), the replay command of every run, and for each scenario and backend
an interactive Lamport diagram of the first seed with its client operations
(:mod:`smr.lamport`).  Bokeh's JavaScript is inlined, so the file needs nothing
but a browser; it is kept under :data:`BUDGET_BYTES` by drawing fewer messages
per diagram when the figures and diagrams would not fit, and says so.
"""

from __future__ import annotations

import base64
import datetime
import html
import io
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from . import lamport

if TYPE_CHECKING:
    from .compare import Cell
    from .sim import SimConfig

#: The page must stay below this size (issue 20: under 3 MB for the default ``smr compare``).
BUDGET_BYTES = 2_900_000
#: Messages drawn per diagram when they fit in the budget.
DEFAULT_MESSAGES = 400
#: Characters of a message's text kept for its hover and click.
TEXT_LIMIT = 160


def _fmt(value: Any) -> str:
    if value is None:
        return "&ndash;"
    if isinstance(value, float):
        return f"{value:,.1f}" if abs(value) >= 100 else f"{value:.2f}"
    return html.escape(str(value))


def html_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], left: int = 2,
               flagged: Sequence[bool] = ()) -> str:
    """An HTML table of raw values: the first ``left`` columns left-aligned text, the rest numbers."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = []
    for i, row in enumerate(rows):
        cells = "".join(f"<td{'' if j < left else ' class=num'}>{_fmt(v)}</td>" for j, v in enumerate(row))
        body.append(f"<tr{' class=bad' if i < len(flagged) and flagged[i] else ''}>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def palette_png(raw: bytes) -> bytes:
    """``raw`` (a PNG) re-encoded with a 256-colour palette when it is opaque and that makes it smaller, else ``raw``.

    Matplotlib figures and page screenshots shrink to about a third and look
    alike to the eye.
    """
    try:
        from PIL import Image

        with Image.open(io.BytesIO(raw)) as image:
            opaque = image.mode == "RGB" or (image.mode == "RGBA" and image.getchannel("A").getextrema()[0] == 255)
            if not opaque:
                return raw
            out = io.BytesIO()
            image.convert("RGB").quantize(256, method=Image.Quantize.FASTOCTREE,
                                          dither=Image.Dither.NONE).save(out, "PNG", optimize=True)
    except (ImportError, OSError, ValueError):  # no Pillow, or not a PNG it reads: keep the file as it is
        return raw
    return out.getvalue() if len(out.getvalue()) < len(raw) else raw


def png_data_uri(path: Path) -> tuple[str, bool]:
    """A ``data:`` URI of the PNG at ``path`` (through :func:`palette_png`), and whether it was re-encoded."""
    raw = path.read_bytes()
    data = palette_png(raw)
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii"), data is not raw


def _figures_of(name: str, figures: Sequence[Path]) -> list[Path]:
    return [p for p in figures if p.stem == name or p.stem.startswith((f"{name}-", f"{name}_", f"{name}."))]


@attrs.frozen
class _Section:
    """One scenario's cells and configuration."""

    name: str
    config: SimConfig
    cells: tuple[Cell, ...]


def write_report(outdir: Path, cells: Sequence[Cell], configs: Sequence[SimConfig], seeds: Sequence[int],
                 figures: Sequence[Path], record: dict[str, Any] | None = None,
                 budget: int = BUDGET_BYTES, max_messages: int = DEFAULT_MESSAGES) -> Path:
    """Write ``outdir/report.html`` for a compare run and return its path."""
    from .compare import cell_rows, change_rows

    record = record or {}
    sections = [_Section(c.name or Path(str(c.source)).stem, c,
                         tuple(cell for cell in cells if cell.scenario == (c.name or Path(str(c.source)).stem)))
                for c in configs]
    recordings: dict[tuple[str, str], lamport.Recording] = {}
    for section in sections:
        for cell in section.cells:
            if not cell.runs:
                continue
            first = cell.runs[0]
            config = attrs.evolve(section.config, backend=cell.backend, count_bytes=True, trace=False)
            recordings[(section.name, cell.backend)] = lamport.record_windows(
                config, first.summary.seed, history=first.history)
    pngs = [p for p in figures if p.suffix == ".png" and p.is_file()]
    images = {p: png_data_uri(p) for p in pngs}
    headers, rows = cell_rows(cells)
    flagged = [bool(c.failures) for c in cells]
    parts: list[dict[str, str]] = []
    title = f"smr compare: {outdir.name}"
    seeds_text = f"{seeds[0]}..{seeds[-1]}" if seeds else "none"
    intro = [f"<h1>{html.escape(title)}</h1>",
             f"<p>Seeds {seeds_text}, the same for every backend; times in simulated ms; table figures are "
             "means over seeds. Written " + datetime.datetime.now(datetime.timezone.utc).strftime(
                 "%Y-%m-%d %H:%M UTC") + ".</p><ul>"]
    for key, label in (("rerun", "run it again"), ("version", "version"), ("commit", "commit")):
        if record.get(key):
            intro.append(f"<li>{label}: <code>{html.escape(str(record[key]))}</code></li>")
    intro.append("</ul><nav><b>Contents</b>: <a href='#table'>comparison</a> &middot; "
                 "<a href='#runs'>runs and replay commands</a>"
                 + "".join(f" &middot; <a href='#s-{html.escape(s.name)}'>{html.escape(s.name)}</a>"
                           for s in sections) + "</nav>")
    intro.append(f"<h2 id='table'>Comparison</h2>{html_table(headers, rows, flagged=flagged)}")
    change_headers, changes = change_rows(cells)
    if changes:
        intro.append("<h3>Membership changes</h3><p>unavail: the longest gap in OK client operations while the "
                     "change ran; peer messages and bytes: the whole cluster's meanwhile.</p>"
                     + html_table(change_headers, changes, left=3))
    runs = [[c.scenario, c.backend, r.summary.seed,
             r.verdict + "".join(f"; {p}" for p in r.workload_problems), f"<code>{html.escape(r.replay)}</code>"]
            for c in cells for r in c.runs]
    intro.append(f"<h2 id='runs'>Runs and replay commands</h2><details><summary>{len(runs)} runs: each one's "
                 "verdict and the command that replays it exactly (<code>--trace -</code> prints every "
                 "event)</summary><table><thead><tr><th>scenario</th>"
                 "<th>backend</th><th>seed</th><th>verdict</th><th>replay</th></tr></thead><tbody>"
                 + "".join("<tr>" + "".join(f"<td>{v if i == 4 else html.escape(str(v))}</td>"
                                              for i, v in enumerate(row)) + "</tr>" for row in runs)
                 + "</tbody></table></details>")
    parts.append({"html": "".join(intro)})
    shown: set[Path] = set()
    reencoded = any(smaller for _, smaller in images.values())
    for section in sections:
        faults = ", ".join(f"{f.action}{f' {f.node}' if f.node else ''} at {f.at:g} ms"
                           for f in section.config.faults) or "none"
        text = [f"<h2 id='s-{html.escape(section.name)}'>{html.escape(section.name)}</h2>"
                f"<p>{section.config.nodes} nodes, {section.config.clients.count} clients "
                f"({html.escape(section.config.clients.workload)}), {section.config.duration_ms:g} ms; "
                f"faults: {html.escape(faults)}.</p>"]
        for path in _figures_of(section.name, pngs):
            shown.add(path)
            text.append(_figure(path, images[path][0]))
        parts.append({"html": "".join(text)})
        for cell in section.cells:
            if (section.name, cell.backend) not in recordings:
                continue
            first = cell.runs[0]
            parts.append({"html": f"<h3>{html.escape(cell.backend)}: Lamport diagram and client operations of "
                                  f"seed {first.summary.seed} (the first of {seeds_text})</h3>"
                                  f"<p>replay: <code>{html.escape(first.replay)}</code></p>",
                          "root": f"lamport-{len(parts)}", "key": f"{section.name}\n{cell.backend}"})
    rest = [p for p in pngs if p not in shown]
    if rest:
        parts.append({"html": "<h2>Other figures</h2>" + "".join(_figure(p, images[p][0]) for p in rest)})
    if reencoded:
        parts.append({"html": "<p class=note>Figures are embedded with a 256-colour palette to keep this page "
                              "small; the full-colour PNG and SVG files are next to it.</p>"})
    cap, fixed = max_messages, None
    for _ in range(3):
        page = _render(parts, recordings, cap, title)
        size = len(page.encode())
        if size <= budget or not recordings or cap == 0:
            break
        if fixed is None:  # the page with no messages at all: JavaScript, tables, figures, diagram frames
            fixed = len(_render(parts, recordings, 0, title).encode())
        # Draw fewer messages per diagram, in proportion to what must go.
        cap = max(0, int(cap * (budget * 0.98 - fixed) / max(size - fixed, 1)))
    path = outdir / "report.html"
    path.write_text(page, encoding="utf-8")
    return path


def _figure(path: Path, uri: str) -> str:
    links = " ".join(f"<a href='{html.escape(p.name)}'>{p.suffix[1:].upper()}</a>"
                     for p in (path, path.with_suffix(".svg")) if p.exists())
    return (f"<figure><img src='{uri}' alt='{html.escape(path.stem)}'><figcaption>{html.escape(path.name)} "
            f"({links})</figcaption></figure>")


def _render(parts: Sequence[dict[str, str]], recordings: dict[tuple[str, str], lamport.Recording], cap: int,
            title: str) -> str:
    from bokeh.embed import file_html
    from bokeh.resources import INLINE

    roots = []
    for part in parts:
        if "root" in part:
            scenario, backend = part["key"].split("\n")
            roots.append(lamport.layout(lamport.diagram(recordings[(scenario, backend)], cap),
                                        text_limit=TEXT_LIMIT, name=part["root"]))
    if not roots:  # no run finished: a page with no diagrams still needs a Bokeh root
        from bokeh.models.widgets import Div

        roots.append(Div(text="", name="empty"))
    return file_html(lamport.document(roots), resources=INLINE, title=title, template=_TEMPLATE,
                     template_variables={"parts": parts})


_TEMPLATE = """
{% block preamble %}<style>
body { font-family: sans-serif; margin: 0 1.5em 2em; height: auto; color: #222; }
h1 { font-size: 1.4em; } h2 { margin-top: 2em; border-bottom: 1px solid #ccc; } h3 { margin-top: 1.6em; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.5em 0; }
th, td { border: 1px solid #ddd; padding: 2px 6px; } th { background: #f3f3f3; }
td.num { text-align: right; font-variant-numeric: tabular-nums; } tr.bad td { background: #fde0e0; }
code { font-size: 0.85em; word-break: break-all; } figure { margin: 1em 0; }
figure img { max-width: 100%; border: 1px solid #eee; } .note { color: #666; }
summary { cursor: pointer; }
</style>{% endblock %}
{% block contents %}
{% for part in parts %}{{ part.html }}{% if part.root %}{{ embed(roots[part.root]) }}{% endif %}
{% endfor %}{% endblock %}
"""
