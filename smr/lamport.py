"""Interactive Lamport (space-time) diagrams of a simulated run, drawn with Bokeh.

Replicas and clients are horizontal lanes and simulated time runs to the right.
Every message is a segment from its send (on the sender's lane) to its delivery
(on the receiver's lane, a dot); a dropped message is a short dashed stub ending
in a cross.  A star marks a node becoming leader, a tick an entry it commits; a
grey band is a node down, a red background a partition, a dashed vertical line
a scheduled fault.  Under it, a per-process timeline of the client operations:
a bar from invocation to completion, coloured by outcome.

The page pans and zooms, has a time-window slider and jumps to each focus
window, filters messages by type and by node (a message is drawn when both its
ends are checked), and hovering or clicking a message shows it.

One recording serves both users: ``smr trace`` draws one continuous window,
the ``smr compare`` report (:mod:`smr.report_html`) draws only focus windows
around the first election and each fault, and both bound how many messages they
draw, saying what they left out.  To keep a page small, numbers live in typed
columns (numpy float32 and int8, which Bokeh stores as base64) and the message
texts are deflated, then unpacked by the browser's DecompressionStream when the
page opens (:func:`document`).
"""

from __future__ import annotations

import base64
import html
import math
import re
import zlib
from collections.abc import Iterable, Sequence
from typing import Any

import attrs
import numpy as np

from .errors import LocalProtocolError
from .history import Operation, Outcome
from .sim import SimConfig
from .sim.config import FaultEvent
from .sim.engine import Simulation

#: How long after a fault a new leader still counts as that fault's election (ms).
SETTLE_MS = 500.0
#: Margin drawn before a fault and after an election (ms).
BEFORE_MS, AFTER_MS = 2.0, 6.0
#: The furthest ``smr trace`` looks by default for the first election and the faults (ms).
TRACE_HORIZON_MS = 10_000.0

_TYPE_COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22",
                 "#7f7f7f", "#aec7e8", "#ffbb78", "#98df8a", "#c5b0d5", "#c49c94", "#f7b6d2", "#9edae5"]
#: Operation outcomes, in the order of their codes in the data.
OUTCOMES = (Outcome.OK, Outcome.FAIL, Outcome.UNKNOWN)
OUTCOME_COLOURS = ("#2ca02c", "#d62728", "#ff7f0e")


@attrs.frozen
class Window:
    """A span of simulated time drawn in full, and why it was chosen."""

    start: float
    end: float
    label: str

    def holds(self, t: float) -> bool:
        """True when ``t`` lies in the window (ends included)."""
        return self.start <= t <= self.end


@attrs.frozen
class Message:
    """One message as the diagram draws it: ``arrive`` is None for a dropped one."""

    sent: float
    arrive: float | None
    src: str
    dst: str
    kind: str
    text: str


@attrs.frozen
class Recording:
    """What one run did inside some windows, before any cap: the input of :func:`diagram`."""

    title: str
    lanes: tuple[str, ...]
    windows: tuple[Window, ...]
    messages: tuple[Message, ...]
    #: (time, node, epoch) of every leadership change in the windows.
    leaders: tuple[tuple[float, str, str], ...]
    #: (time, node, index) of every commit in the windows.
    commits: tuple[tuple[float, str, int], ...]
    #: (start, end, lane or None for the whole cluster, text): nodes down, partitions.
    bands: tuple[tuple[float, float, str | None, str], ...]
    faults: tuple[FaultEvent, ...]
    operations: tuple[Operation, ...]
    #: Where the recording stopped; an operation still open there drew as unknown.
    horizon: float
    #: The run's configured length: an operation open at a horizon this late was given up by its client.
    duration: float
    #: Messages sent in the run between the windows (not drawn), per gap.
    gaps: tuple[tuple[float, float, int], ...] = ()
    #: The first election and each fault with its election (:func:`focus_windows`): places to jump to.
    focus: tuple[Window, ...] = ()


def _natural(name: str) -> tuple[str, int]:
    m = re.match(r"(\D*)(\d*)", name)
    assert m is not None
    return m[1], int(m[2]) if m[2] else -1


def record(config: SimConfig, seed: int, until_ms: float) -> Simulation:
    """Run ``config`` with ``seed`` up to ``until_ms`` with a timeline; the same run as the full one, cut short."""
    sim = Simulation(config, seed, timeline=True)
    sim.run(until_ms=until_ms)
    return sim


def leader_times(timeline: Iterable[tuple[Any, ...]]) -> list[tuple[float, str, str]]:
    """(time, node, epoch) of every ``LEADER`` line of a timeline, in order."""
    out = []
    for event in timeline:
        if event[0] == "log":
            m = re.match(r"(\S+) LEADER epoch=(\S+)", event[2])
            if m:
                out.append((event[1], m[1], m[2]))
    return out


def _fault_label(fault: FaultEvent) -> str:
    return f"{fault.action}{f' {fault.node}' if fault.node else ''} at {fault.at:g} ms"


def focus_windows(timeline: Sequence[tuple[Any, ...]], faults: Sequence[FaultEvent],
                  horizon: float) -> list[Window]:
    """The spans worth drawing: from 0 to just after the first election, and around each fault and its election.

    A fault's window runs from a little before it to a little after the first
    leader elected within :data:`SETTLE_MS` of it (or just after the fault when
    none is); overlapping windows merge.  Everything ends by ``horizon``.
    """
    leaders = leader_times(timeline)
    first = leaders[0][0] if leaders else None
    spans = [(0.0, horizon if first is None else first + AFTER_MS,
              "start, no leader elected" if first is None else "first election")]
    for fault in sorted(faults, key=lambda f: f.at):
        if fault.at > horizon:
            break
        end = fault.at + 2 * AFTER_MS
        after = next((t for t, _, _ in leaders if fault.at < t <= fault.at + SETTLE_MS), None)
        if after is not None:
            end = max(end, after + AFTER_MS)
        spans.append((max(0.0, fault.at - BEFORE_MS), end, _fault_label(fault)))
    merged: list[list[Any]] = []
    for start, end, label in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
            merged[-1][2] += f"; {label}"
        else:
            merged.append([start, end, label])
    return [Window(round(s, 3), round(min(e, horizon), 3), label) for s, e, label in merged]


def trace_window(timeline: Sequence[tuple[Any, ...]], faults: Sequence[FaultEvent], horizon: float) -> Window:
    """One window from 0 that holds the first election and every fault with its election (``smr trace``'s default)."""
    focus = focus_windows(timeline, faults, horizon)
    return Window(0.0, focus[-1].end, "first election and faults" if len(focus) > 1 else focus[0].label)


def _horizon(config: SimConfig) -> float:
    """How far to record to find the first election and every fault's election."""
    if config.swarm:  # the faults are drawn from the seed: look as far as a trace may
        return min(config.duration_ms, TRACE_HORIZON_MS)
    last = max((f.at for f in config.faults), default=0.0)
    return min(config.duration_ms, TRACE_HORIZON_MS, last + SETTLE_MS + 2 * AFTER_MS)


def record_windows(config: SimConfig, seed: int, history: Sequence[Operation] | None = None,
                   with_clients: bool = True) -> Recording:
    """Record the run and keep what happened in its :func:`focus_windows` (the report's diagrams).

    ``history`` (the run's full client history, when the caller has it) is used
    for the operations; otherwise those still open when the recording stops
    are drawn as open up to there.
    """
    sim = record(config, seed, _horizon(config))
    assert sim.timeline is not None
    focus = focus_windows(sim.timeline, sim.faults, sim.now)
    return _recording(sim, focus, with_clients, history, focus)


def record_span(config: SimConfig, seed: int, start: float | None = None, end: float | None = None,
                with_clients: bool = True) -> Recording:
    """Record the run and keep one window, ``start`` to ``end`` in simulated ms (``smr trace``).

    Left out, ``start`` is 0 and ``end`` the end of :func:`trace_window`: just
    after the first election and every fault's election.
    """
    if end is None:
        sim = record(config, seed, _horizon(config))
        assert sim.timeline is not None
        end = trace_window(sim.timeline, sim.faults, sim.now).end
        label = "first election and faults" if not start else "to just after the faults' elections"
    else:
        end = min(end, config.duration_ms)
        sim = record(config, seed, end)
        label = "chosen window"
    start = 0.0 if start is None else start
    if not start < end:
        raise LocalProtocolError(f"the window must start before it ends (from {start:g} to {end:g} ms)")
    assert sim.timeline is not None
    focus = [attrs.evolve(w, start=max(w.start, start), end=min(w.end, end))
             for w in focus_windows(sim.timeline, sim.faults, sim.now) if w.end > start and w.start < end]
    return _recording(sim, [Window(start, end, label)], with_clients, None, focus)


def _recording(sim: Simulation, windows: Sequence[Window], with_clients: bool,
               history: Sequence[Operation] | None, focus: Sequence[Window]) -> Recording:
    timeline = sim.timeline
    assert timeline is not None
    config = sim.config
    # The caller's history is the whole run's; otherwise the recording ends the history where it stopped.
    horizon = config.duration_ms if history is not None else sim.now
    windows = tuple(sorted(windows, key=lambda w: w.start))

    def inside(t: float) -> bool:
        return any(w.holds(t) for w in windows)

    replicas = list(sim.nodes)
    others: set[str] = set()
    messages: list[Message] = []
    gap_counts = [0] * max(len(windows) - 1, 0)
    for event in timeline:
        if event[0] != "msg":
            continue
        _, sent, arrive, src, dst, kind, text = event
        for end in (src, dst):
            if end not in sim.nodes:
                others.add(end)
        if inside(sent) or (arrive is not None and inside(arrive)):
            if text.startswith(kind + " "):
                text = text[len(kind) + 1:]
            messages.append(Message(round(sent, 3), None if arrive is None else round(arrive, 3), src, dst,
                                    kind, text))
        else:
            for i in range(len(gap_counts)):
                if windows[i].end < sent < windows[i + 1].start:
                    gap_counts[i] += 1
    lanes = replicas + (sorted(others, key=_natural) if with_clients else [])
    if not with_clients:
        messages = [m for m in messages if m.src in sim.nodes and m.dst in sim.nodes]
    leaders = tuple((round(t, 3), node, epoch) for t, node, epoch in leader_times(timeline) if inside(t))
    commits = tuple((round(e[1], 3), e[2], e[3]) for e in timeline if e[0] == "commit" and inside(e[1]))
    operations = tuple(op for op in (history if history is not None else sim.history.finish())
                       if any(op.invoke <= w.end and op.end >= w.start for w in windows))
    title = f"{config.backend}, {config.name or 'scenario'}, seed {sim.seed}"
    return Recording(title, tuple(lanes), windows, tuple(messages), leaders, commits, _bands(timeline, horizon),
                     sim.faults, operations, horizon, config.duration_ms,
                     tuple((windows[i].end, windows[i + 1].start, n) for i, n in enumerate(gap_counts)),
                     tuple(focus))


def _bands(timeline: Sequence[tuple[Any, ...]], horizon: float) -> tuple[tuple[float, float, str | None, str], ...]:
    """Nodes down (crash to restart, stop to the end) and partitions (cut to heal) of a timeline."""
    bands: list[tuple[float, float, str | None, str]] = []
    down: dict[str, tuple[float, str]] = {}
    cut: tuple[float, str] | None = None
    for event in timeline:
        if event[0] != "log":
            continue
        t, text = event[1], event[2]
        m = re.match(r"(\S+) (CRASH|RESTART|STOP)\b", text)
        if m:
            node, what = m[1], m[2]
            if what == "RESTART" and node in down:
                since, why = down.pop(node)
                bands.append((since, t, node, f"{node} {why} from {since:g} to {t:g} ms"))
            elif what != "RESTART":
                down[node] = (t, "down" if what == "CRASH" else "stopped")
        elif text.startswith(("PARTITION", "BRIDGE")):
            if cut is not None:
                bands.append((cut[0], t, None, cut[1]))
            cut = (t, text)
        elif text.startswith("HEAL") and cut is not None:
            bands.append((cut[0], t, None, f"{cut[1]} (until {t:g} ms)"))
            cut = None
    for node, (since, why) in down.items():
        bands.append((since, horizon, node, f"{node} {why} from {since:g} ms"))
    if cut is not None:
        bands.append((cut[0], horizon, None, cut[1]))
    return tuple((round(a, 3), round(b, 3), lane, text) for a, b, lane, text in bands)


@attrs.frozen
class Diagram:
    """A recording cut to at most ``max_messages`` messages: exactly what a page draws."""

    recording: Recording
    #: The windows drawn, in time order; a window cut short by the cap ends at its last drawn message.
    windows: tuple[Window, ...]
    messages: tuple[Message, ...]
    #: Message types present in the recording, in first-seen order (the type filter lists them all).
    types: tuple[str, ...]
    notes: tuple[str, ...]
    max_messages: int

    def within(self, t: float) -> bool:
        """True when ``t`` lies in a drawn window."""
        return any(w.holds(t) for w in self.windows)


def _shares(counts: Sequence[int], cap: int) -> list[int]:
    """Split ``cap`` over windows holding ``counts`` messages: equal shares, what one needs not given to others."""
    shares = [0] * len(counts)
    left, open_ = cap, [i for i, n in enumerate(counts) if n > 0]
    while open_ and left > 0:
        each = max(left // len(open_), 1)
        for i in list(open_):
            give = min(each, counts[i] - shares[i], left)
            shares[i] += give
            left -= give
            if shares[i] >= counts[i]:
                open_.remove(i)
            if left <= 0:
                break
    return shares


def diagram(recording: Recording, max_messages: int) -> Diagram:
    """Keep at most ``max_messages`` messages, cutting windows short (never thinning them) and saying so."""
    per_window: list[list[Message]] = [[] for _ in recording.windows]
    for m in sorted(recording.messages, key=lambda m: (m.sent, m.arrive or m.sent)):
        for i, w in enumerate(recording.windows):
            if w.holds(m.sent) or (m.arrive is not None and w.holds(m.arrive)):
                per_window[i].append(m)
                break
    shares = _shares([len(ms) for ms in per_window], max_messages)
    windows, kept, notes = [], [], []
    for w, ms, share in zip(recording.windows, per_window, shares):
        if len(ms) > share:
            # Cut before the first message left out (and before any sent at that same instant), so every
            # message sent inside the drawn window is drawn.
            first_out = ms[share].sent
            end = max((m.sent for m in ms[:share] if m.sent < first_out), default=w.start)
            end = max(end, w.start)
            notes.append(f"window '{w.label}' cut at {end:g} ms (of {w.end:g}): at most {max_messages:,} "
                         f"messages are drawn, {len(ms) - share:,} more were sent by {w.end:g} ms")
            w = attrs.evolve(w, end=end)
            ms = [m for m in ms[:share] if w.holds(m.sent) or (m.arrive is not None and w.holds(m.arrive))]
        windows.append(w)
        kept.extend(ms)
    for start, end, n in recording.gaps:
        if n:
            notes.append(f"{n:,} messages sent between {start:g} and {end:g} ms are not drawn (outside the windows)")
    types = tuple(dict.fromkeys(m.kind for m in recording.messages))
    return Diagram(recording, tuple(windows), tuple(kept), types, tuple(notes), max_messages)


# ------------------------------------------------------------------ drawing
def _text(text: str, limit: int) -> str:
    text = text.replace("\n", " ")
    return text if len(text) <= limit else text[:limit - 1] + "…"


def pack_texts(texts: Sequence[str]) -> str:
    """``texts`` (no newlines) deflated and base64-encoded: a page unpacks them when it opens."""
    return base64.b64encode(zlib.compress("\n".join(texts).encode(), 9)).decode("ascii")


_FILTER_JS = """
const types = new Set(type_box.active);
const lanes = new Set(node_box.active);
for (const [source, filter] of pairs) {
  const d = source.data;
  const s = d.s, e = d.d, k = d.k;
  const n = s.length;
  const keep = new Array(n);
  for (let i = 0; i < n; i++)
    keep[i] = (s[i] < 0 || lanes.has(s[i])) && (e === undefined || lanes.has(e[i])) &&
              (k === undefined || types.has(k[i]));
  filter.booleans = keep;
  source.change.emit();
}
"""

_TAP_JS = """
const i = source.selected.indices[0];
if (i === undefined) return;
const d = source.data;
const esc = (t) => String(t).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
const arrive = dropped ? 'dropped' : 'delivered at ' + d.x1[i].toFixed(3) + ' ms';
div.text = '<b>' + esc(types[d.k[i]]) + '</b> ' + esc(lanes[d.s[i]]) + ' &rarr; ' + esc(lanes[d.d[i]]) +
  ', sent at ' + d.x0[i].toFixed(3) + ' ms, ' + arrive + '<br><code>' + esc(d.t[i]) + '</code>';
"""

#: Fills every packed text column (``tags[0]`` of its source) once the page has loaded.
_UNPACK_JS = """
(async () => {
  for (const source of sources) {
    try {
      const bytes = Uint8Array.from(atob(source.tags[0]), (c) => c.charCodeAt(0));
      const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream('deflate'));
      const texts = (await new Response(stream).text()).split('\\n');
      source.data = Object.assign({}, source.data, {t: texts});
    } catch (error) {
      console.warn('smr: this browser cannot unpack the message texts: ' + error);
    }
  }
})();
"""

_SLIDER_TO_RANGE_JS = """
const [a, b] = cb_obj.value;
if (Math.abs(r.start - a) > 1e-6 || Math.abs(r.end - b) > 1e-6) { r.start = a; r.end = b; }
"""

_RANGE_TO_SLIDER_JS = """
const a = Math.max(s.start, r.start), b = Math.min(s.end, r.end);
if (a < b && (Math.abs(s.value[0] - a) > 1e-6 || Math.abs(s.value[1] - b) > 1e-6)) s.value = [a, b];
"""


class _Sources:
    """Makes the diagram's data sources; remembers those the filters act on and those with packed texts."""

    def __init__(self) -> None:
        self.filtered: list[tuple[Any, Any]] = []
        self.packed: list[Any] = []

    def make(self, columns: dict[str, Any], texts: Sequence[str] | None = None) -> tuple[Any, Any]:
        """A source of ``columns`` (``texts`` packed into its ``t`` column) and a view its filter drives."""
        from bokeh.models import BooleanFilter, CDSView, ColumnDataSource

        tags = []
        if texts is not None:
            columns = {**columns, "t": [""] * len(texts)}
            tags = [pack_texts(texts)]
        src = ColumnDataSource(columns, tags=tags)
        view = CDSView(filter=BooleanFilter())  # no booleans: every row, until a filter changes
        if "s" in columns:
            self.filtered.append((src, view.filter))
        if texts is not None:
            self.packed.append(src)
        return src, view


def _lean(renderer: Any) -> Any:
    """Let BokehJS derive the muted and non-selected looks instead of storing two more glyphs."""
    renderer.nonselection_glyph = "auto"
    renderer.muted_glyph = "auto"
    return renderer


def _hover(fig: Any, renderer: Any, tooltips: str, **formatters: Any) -> None:
    from bokeh.models import HoverTool

    fig.add_tools(HoverTool(renderers=[renderer], tooltips=tooltips, formatters=formatters))


def _background(fig: Any, d: Diagram, lane_of: dict[str, int], sources: _Sources) -> None:
    """Gaps between windows (hatched), partitions (red), nodes down (grey), scheduled faults (dashed)."""
    n = len(lane_of)
    top, bottom = -0.6, n - 0.5
    gaps = [(a.end, b.start) for a, b in zip(d.windows, d.windows[1:])]
    if gaps:
        src, view = sources.make({"l": [a for a, _ in gaps], "r": [b for _, b in gaps],
                                  "t": [f"not drawn: {a:g} to {b:g} ms" for a, b in gaps]})
        _hover(fig, _lean(fig.quad(left="l", right="r", bottom=bottom, top=top, source=src, view=view,
                                   fill_color="#eeeeee", hatch_pattern="/", hatch_color="#cccccc",
                                   line_color=None)), "@t")
    rec = d.recording
    cuts = [(a, b, t) for a, b, lane, t in rec.bands if lane is None and (d.within(a) or d.within(b))]
    if cuts:
        src, view = sources.make({"l": [a for a, _, _ in cuts], "r": [b for _, b, _ in cuts],
                                  "t": [t for _, _, t in cuts]})
        _hover(fig, _lean(fig.quad(left="l", right="r", bottom=bottom, top=top, source=src, view=view,
                                   fill_color="#d62728", fill_alpha=0.08, line_color=None)), "@t")
    down = [(a, b, lane_of[lane], t) for a, b, lane, t in rec.bands if lane in lane_of]
    if down:
        src, view = sources.make({"l": [a for a, *_ in down], "r": [b for _, b, *_ in down],
                                  "s": np.array([s for *_, s, _ in down], np.int8), "t": [t for *_, t in down]})
        _hover(fig, _lean(fig.hbar(y="s", left="l", right="r", height=0.5, source=src, view=view,
                                   fill_color="#999999", fill_alpha=0.5, line_color=None)), "@t")
    faults = [f for f in rec.faults if d.within(f.at)]
    if faults:
        src, view = sources.make({"x": [f.at for f in faults], "t": [_fault_label(f) for f in faults]})
        _hover(fig, _lean(fig.segment(x0="x", x1="x", y0=bottom, y1=top, source=src, view=view,
                                      line_color="#8b0000", line_dash="dashed", line_width=1.5)), "@t")
        _lean(fig.text(x="x", y=top + 0.05, text="t", source=src, view=view, text_font_size="9pt",
                       text_color="#8b0000", text_baseline="top", x_offset=3))


def _messages(fig: Any, d: Diagram, lanes: list[str], sources: _Sources, colours: list[str], tap_div: Any,
              text_limit: int) -> None:
    """Delivered messages (segment and dot) and dropped ones (dashed stub and cross), hover and click."""
    from bokeh.models import CustomJS, CustomJSHover, LinearColorMapper, TapTool

    lane_of = {lane: i for i, lane in enumerate(lanes)}
    kind_of = {kind: i for i, kind in enumerate(d.types)}
    mapper = LinearColorMapper(palette=colours, low=-0.5, high=len(colours) - 0.5)
    colour = {"field": "k", "transform": mapper}
    type_name = CustomJSHover(args={"names": list(d.types)}, code="return names[value]")
    lane_name = CustomJSHover(args={"names": lanes}, code="return names[value]")
    span = max(w.end for w in d.windows) - min(w.start for w in d.windows)
    segments = []
    for dropped in (False, True):
        ms = [m for m in d.messages if (m.arrive is None) == dropped and m.src in lane_of and m.dst in lane_of]
        if not ms and dropped:
            continue
        s = np.array([lane_of[m.src] for m in ms], np.int8)
        e = np.array([lane_of[m.dst] for m in ms], np.int8)
        x0 = np.array([m.sent for m in ms], np.float32)
        if dropped:  # a stub a quarter of the way towards the receiver
            x1 = x0 + np.float32(max(span * 0.002, 0.15))
            y1 = (s + (e - s) * 0.25).astype(np.float32)
        else:
            x1 = np.array([m.arrive for m in ms], np.float32)
            y1 = e.astype(np.float32)
        src, view = sources.make({"x0": x0, "x1": x1, "s": s, "d": e, "y1": y1,
                                  "k": np.array([kind_of[m.kind] for m in ms], np.int8)},
                                 texts=[_text(m.text, text_limit) for m in ms])
        seg = fig.segment(x0="x0", y0="s", x1="x1", y1="y1", source=src, view=view, line_color=colour,
                          line_width=1.3, line_dash="dashed" if dropped else "solid", nonselection_line_alpha=0.3)
        seg.selection_glyph = seg.glyph.clone(line_width=3.5)
        seg.muted_glyph = "auto"
        _lean(fig.scatter(x="x1", y="y1", source=src, view=view, marker="x" if dropped else "circle",
                          size=8 if dropped else 4, line_color="#d62728" if dropped else colour, fill_color=colour))
        _hover(fig, seg, f"<b>@k{{custom}}</b> @s{{custom}} &rarr; @d{{custom}}<br>sent @x0{{0.000}} ms, "
                         f"{'DROPPED' if dropped else 'delivered @x1{0.000} ms'}<br>@t",
               **{"@k": type_name, "@s": lane_name, "@d": lane_name})
        src.selected.js_on_change("indices", CustomJS(
            args={"source": src, "div": tap_div, "types": list(d.types), "lanes": lanes, "dropped": dropped},
            code=_TAP_JS))
        segments.append(seg)
    fig.add_tools(TapTool(renderers=segments))


def _marks(fig: Any, d: Diagram, lane_of: dict[str, int], sources: _Sources) -> None:
    """A star where a node becomes leader, a tick where it commits an entry."""
    rec = d.recording
    leaders = [(t, node, epoch) for t, node, epoch in rec.leaders if node in lane_of and d.within(t)]
    if leaders:
        src, view = sources.make({"x": [t for t, _, _ in leaders],
                                  "s": np.array([lane_of[node] for _, node, _ in leaders], np.int8),
                                  "t": [f"{node} leads epoch {epoch} from {t:g} ms" for t, node, epoch in leaders]})
        _hover(fig, _lean(fig.scatter(x="x", y="s", source=src, view=view, marker="star", size=16,
                                      fill_color="#f2c200", line_color="#8a6d00")), "@t")
    commits = [(t, lane_of[node], index) for t, node, index in rec.commits if node in lane_of and d.within(t)]
    if commits:
        src, view = sources.make({"x": np.array([t for t, _, _ in commits], np.float32),
                                  "s": np.array([s for _, s, _ in commits], np.int8),
                                  "i": np.array([i for _, _, i in commits], np.int32)})
        _hover(fig, _lean(fig.scatter(x="x", y="s", source=src, view=view, marker="dash", angle=math.pi / 2,
                                      size=10, line_color="#333333", line_alpha=0.7)),
               "committed index @i at @x{0.000} ms")


def _operations(d: Diagram, x_range: Any, lane_of: dict[str, int], sources: _Sources) -> Any:
    """The client operations, one lane per process, on the diagram's time axis."""
    from bokeh.models import FixedTicker, LinearColorMapper, Range1d
    from bokeh.plotting import figure

    rec = d.recording
    processes = sorted({op.process for op in rec.operations}, key=_natural)
    row_of = {p: i for i, p in enumerate(processes)}
    ops = rec.operations
    fig: Any = figure(height=max(120, 24 * len(processes) + 70), sizing_mode="stretch_width", x_range=x_range,
                      y_range=Range1d(start=len(processes) - 0.5, end=-0.5), tools="xpan,xwheel_zoom,box_zoom,reset",
                      toolbar_location="above", x_axis_label="simulated time (ms)",
                      title="client operations (bar: invocation to completion)")
    fig.yaxis.ticker = FixedTicker(ticks=list(range(len(processes))))
    fig.yaxis.major_label_overrides = {i: p for i, p in enumerate(processes)}
    end = max(w.end for w in d.windows)
    codes = {o: i for i, o in enumerate(OUTCOMES)}
    src, view = sources.make(
        {"l": np.array([op.invoke for op in ops], np.float32),
         "r": np.array([op.complete if op.complete is not None else max(end, op.invoke) for op in ops], np.float32),
         "y": np.array([row_of[op.process] for op in ops], np.int8),
         "s": np.array([lane_of.get(op.process, -1) for op in ops], np.int8),
         "o": np.array([codes[op.outcome] for op in ops], np.int8)},
        texts=[_text(_describe_op(op, rec.horizon, rec.duration), 120) for op in ops])
    outcome = LinearColorMapper(palette=list(OUTCOME_COLOURS), low=-0.5, high=2.5)
    _hover(fig, _lean(fig.hbar(y="y", left="l", right="r", height=0.6, source=src, view=view,
                               fill_color={"field": "o", "transform": outcome}, line_color="white",
                               line_width=0.5)), "@t<br>@l{0.000} to @r{0.000} ms")
    return fig


def _describe_op(op: Operation, horizon: float, duration: float) -> str:
    if op.outcome is Outcome.OK:
        return f"{op.process} {op.command} -> {op.result!r} (ok)"
    if op.outcome is Outcome.FAIL:
        return f"{op.process} {op.command} (failed: did not happen)"
    if horizon < duration:
        return f"{op.process} {op.command} (no reply yet when the recording stopped at {horizon:g} ms)"
    return f"{op.process} {op.command} (unknown: the client gave up; it may or may not have happened)"


def layout(d: Diagram, *, text_limit: int = 400, scroll_zoom: bool = False, name: str | None = None) -> Any:
    """The Bokeh layout of ``d``: controls, the diagram and the client operations, their time axes linked.

    Put it in a page with :func:`document`, which unpacks the message texts when the page opens.
    """
    from bokeh.layouts import column, row
    from bokeh.models import CustomJS, FixedTicker, Range1d, WheelZoomTool
    from bokeh.models.widgets import CheckboxGroup, Div, RadioButtonGroup, RangeSlider
    from bokeh.plotting import figure

    lanes = list(d.recording.lanes)
    lane_of = {lane: i for i, lane in enumerate(lanes)}
    lo, hi = min(w.start for w in d.windows), max(w.end for w in d.windows)
    pad = max((hi - lo) * 0.01, 0.5)
    first = d.windows[0]
    first_pad = max((first.end - first.start) * 0.02, 0.5)
    x_range = Range1d(start=first.start - first_pad, end=first.end + first_pad, bounds=(lo - 10 * pad, hi + 10 * pad))
    n = len(lanes)
    fig: Any = figure(height=max(260, 34 * n + 90), sizing_mode="stretch_width", x_range=x_range,
                      y_range=Range1d(start=n - 0.5, end=-0.6), tools="xpan,xwheel_zoom,box_zoom,reset,save",
                      toolbar_location="above", x_axis_label="simulated time (ms)")
    fig.yaxis.ticker = FixedTicker(ticks=list(range(n)))
    fig.yaxis.major_label_overrides = {i: lane for i, lane in enumerate(lanes)}
    fig.ygrid.ticker = FixedTicker(ticks=list(range(n)))
    fig.ygrid.grid_line_color = "#888888"
    fig.xgrid.grid_line_alpha = 0.3
    sources = _Sources()
    colours = [_TYPE_COLOURS[i % len(_TYPE_COLOURS)] for i in range(max(len(d.types), 1))]
    tap_div = Div(text="<i>click a message to show it here</i>", sizing_mode="stretch_width")
    _background(fig, d, lane_of, sources)
    _messages(fig, d, lanes, sources, colours, tap_div, text_limit)
    _marks(fig, d, lane_of, sources)
    ops_fig = _operations(d, x_range, lane_of, sources)
    if scroll_zoom:
        for f in (fig, ops_fig):
            f.toolbar.active_scroll = f.select_one(WheelZoomTool)
    # Controls: filters by type and by node, the time window, jumps to each window.
    counts = dict.fromkeys(d.types, 0)
    for m in d.messages:
        counts[m.kind] += 1
    type_box = CheckboxGroup(labels=[f"{k} ({counts[k]})" for k in d.types], active=list(range(len(d.types))),
                             inline=True)
    node_box = CheckboxGroup(labels=lanes, active=list(range(n)), inline=True)
    refilter = CustomJS(args={"type_box": type_box, "node_box": node_box, "pairs": sources.filtered},
                        code=_FILTER_JS)
    type_box.js_on_change("active", refilter)
    node_box.js_on_change("active", refilter)
    slider = RangeSlider(start=lo, end=hi, value=(first.start, first.end), step=0.01,
                         title="time window (simulated ms)", sizing_mode="stretch_width")
    slider.js_on_change("value", CustomJS(args={"r": x_range}, code=_SLIDER_TO_RANGE_JS))
    follow = CustomJS(args={"s": slider, "r": x_range}, code=_RANGE_TO_SLIDER_JS)
    x_range.js_on_change("start", follow)
    x_range.js_on_change("end", follow)
    views = list(d.windows)
    if len(d.windows) > 1:
        views.append(Window(lo, hi, "all windows"))
    drawn = {w.label for w in d.windows}
    views += [w for w in d.recording.focus if w.label not in drawn and d.within(w.start)]
    presets = [(w.start - max((w.end - w.start) * 0.02, 0.5), w.end + max((w.end - w.start) * 0.02, 0.5))
               for w in views]
    labels = [f"{w.label} ({w.start:g}-{w.end:g} ms)" for w in views]
    jump = RadioButtonGroup(labels=labels, active=0)
    jump.js_on_change("active", CustomJS(args={"r": x_range, "presets": presets}, code="""
        const p = presets[cb_obj.active]; r.start = p[0]; r.end = p[1];"""))
    legend = " ".join(f'<span style="color:{colours[i]}">&#9632;</span>&nbsp;{html.escape(k)}'
                      for i, k in enumerate(d.types))
    outcomes = " ".join(f'<span style="color:{c}">&#9632;</span>&nbsp;{o.value}'
                        for o, c in zip(OUTCOMES, OUTCOME_COLOURS))
    notes = "".join(f"<li>{html.escape(note)}</li>" for note in d.notes)
    header = Div(text=(f"<b>{len(d.messages):,} messages drawn</b> (at most {d.max_messages:,}); "
                       f"colours: {legend}; dot: delivered, x: dropped; star: becomes leader; tick: commit; "
                       f"grey: node down; red: partition; hatched: not drawn"
                       + (f"<ul>{notes}</ul>" if notes else "")), sizing_mode="stretch_width")
    root = column(header, row(Div(text="<b>jump to</b>", width=120), jump), slider,
                  row(Div(text="<b>message types</b>", width=120), type_box),
                  row(Div(text="<b>nodes</b>: a message shows when both ends are checked", width=120), node_box),
                  fig, tap_div, Div(text=f"client operations: {outcomes}"), ops_fig,
                  sizing_mode="stretch_width", name=name)
    root.tags = ["smr-lamport"]
    return root


def document(roots: Sequence[Any]) -> Any:
    """A Bokeh document holding ``roots`` that unpacks their packed text columns when the page has loaded."""
    from bokeh.document import Document
    from bokeh.models import ColumnDataSource, CustomJS

    doc = Document()
    for root in roots:
        doc.add_root(root)
    packed = [m for m in doc.models if isinstance(m, ColumnDataSource) and m.tags and isinstance(m.tags[0], str)]
    if packed:
        doc.js_on_event("document_ready", CustomJS(args={"sources": packed}, code=_UNPACK_JS))
    return doc


def page(d: Diagram, *, text_limit: int = 400) -> str:
    """A standalone HTML page (Bokeh's JavaScript inlined, no network needed) drawing ``d``."""
    from bokeh.embed import file_html
    from bokeh.resources import INLINE

    title = f"Lamport diagram: {d.recording.title}"
    intro = (f"<h1>{html.escape(title)}</h1><p>Windows: "
             + "; ".join(f"{html.escape(w.label)}: {w.start:g} to {w.end:g} ms" for w in d.windows)
             + ". Drag to pan, scroll to zoom, hover over or click a message to read it.</p>")
    doc = document([layout(d, text_limit=text_limit, scroll_zoom=True)])
    return file_html(doc, resources=INLINE, title=title, template=_PAGE, template_variables={"intro": intro})


_PAGE = """
{% block preamble %}<style>body { font-family: sans-serif; margin: 0 1em; height: auto; }
h1 { font-size: 1.3em; }</style>{% endblock %}
{% block contents %}{{ intro }}{{ super() }}{% endblock %}
"""
