"""The checker's verdict as one self-contained, interactive HTML page (``smr check --html``).

Porcupine's visualisation is the model: the history drawn per process on a
shared time axis, every operation a bar from invocation to completion, the
linearization the search found drawn through the bars, and -- for a history
that is not linearizable -- the longest linearizable prefix, the operation
that cannot be placed after it, and the states that operation could have seen
(for a read, the values it could have returned).

The plot is Bokeh with its JavaScript inlined, so the page opens with no
network: pan, zoom (wheel or box), hover for an operation's details, and a
checkbox that hides the partitions not being explained.  The verdict, the
prefix and the states are plain HTML beside it, readable without JavaScript.
"""

from __future__ import annotations

import bisect
import html
from collections.abc import Hashable, Sequence
from typing import Any

from smr.history import Operation, Outcome

from .counterexample import format_operation, format_result
from .models import UNKNOWN, Model
from ._check import Explanation
from .verdict import Status

#: The colour of each kind of bar (colour-blind-safe Okabe-Ito tones).
COLOURS = {
    "linearized": "#009E73",
    "cannot be placed": "#D55E00",
    "not reached": "#E69F00",
    "undecided": "#56B4E9",
    "no effect (outcome unknown)": "#999999",
    "other partition": "#DDDDDD",
}
#: The last this many operations before a stuck one's concurrent ones are explored in every order too.
REACH_LOOKBACK = 12
#: At most this many (operations done, state) configurations are explored for the states a stuck operation could see.
REACH_MAX_CONFIGS = 20_000
#: The page shows at most this many of the prefix's last operations as a table.
PREFIX_ROWS = 30
#: At most this many states a stuck operation could have seen are listed.
STATES_LISTED = 50
#: Longer operations, results and states are cut to this many characters (the page stays small).
TEXT_LIMIT = 200


def _short(text: str) -> str:
    """Return ``text`` cut to :data:`TEXT_LIMIT` characters, saying how much was left out."""
    if len(text) <= TEXT_LIMIT:
        return text
    return f"{text[:TEXT_LIMIT]}... ({len(text) - TEXT_LIMIT} more characters)"


def linearization_points(ordered: Sequence[Operation]) -> list[float]:
    """Return a time inside each operation's interval, non-decreasing along ``ordered``.

    Each point is the earliest instant at or after both the operation's
    invocation and the previous point; for a valid linearization it lies
    within the operation's interval (an operation whose outcome is unknown
    has no end).
    """
    points: list[float] = []
    last = float("-inf")
    for op in ordered:
        last = max(last, op.invoke)
        points.append(last)
    return points


def states_it_could_see(model: Model, ops: Sequence[Operation], blocked: int, prefix: Sequence[int],
                        prefix_state: Hashable) -> tuple[list[str], bool]:
    """Return every state operation ``blocked`` could have taken effect in, and whether all were explored.

    The operations of its partition invoked before it completed may take
    effect before it, in any order real time allows (one that completed
    before another was invoked goes first); every operation that completed
    before it was invoked must.  Each such order the model accepts ends in a
    state it could have seen -- for a read, a value it could have returned.

    The exploration starts after the longest linearizable prefix's first
    operations that all completed before anything concurrent with
    ``blocked`` began, kept in the prefix's order but for the last
    :data:`REACH_LOOKBACK` of them, and only minimal
    operations are tried at each step, as in the search; ``prefix_state``
    (the state after the whole prefix, which holds every operation completed
    before ``blocked``) is always one of the answers.  At most
    :data:`REACH_MAX_CONFIGS` configurations are explored; the flag says
    whether that covered everything.
    """
    target = ops[blocked]
    candidates = [i for i, op in enumerate(ops) if i != blocked and op.invoke <= target.end]
    # Ok operations get bits in completion order: "every one completed before t is done" is then
    # "the first one not done completed at or after t".
    ok = sorted((i for i in candidates if ops[i].outcome is Outcome.OK), key=lambda i: (ops[i].end, i))
    ok_bit = {i: 1 << n for n, i in enumerate(ok)}
    ok_ends = [ops[i].end for i in ok] + [float("inf")]
    unknown_bit = {i: 1 << n for n, i in enumerate(i for i in candidates if i not in ok_bit)}
    by_invoke = sorted(candidates, key=lambda i: (ops[i].invoke, i))
    must = bisect.bisect_left(ok_ends, target.invoke, hi=len(ok))
    # Start after the prefix's operations that precede, in real time, everything concurrent with it.
    concurrent_from = min([target.invoke] + [ops[i].invoke for i in candidates if ops[i].end >= target.invoke])
    settled = 0
    for i in prefix:
        if ops[i].end >= concurrent_from or i not in ok_bit and i not in unknown_bit:
            break
        settled += 1
    ok_done = unknown_done = 0
    state = model.init()
    for i in prefix[:max(0, settled - REACH_LOOKBACK)]:  # the last few settled ones may go in any order
        op = ops[i]
        after = model.step(state, op.command, UNKNOWN if op.outcome is Outcome.UNKNOWN else op.result)
        if after is None:
            break
        state = after
        if i in ok_bit:
            ok_done |= ok_bit[i]
        else:
            unknown_done |= unknown_bit[i]
    found: dict[str, None] = {model.describe(prefix_state): None}
    seen: set[tuple[int, int, Hashable]] = set()
    stack: list[tuple[int, int, Hashable]] = [(ok_done, unknown_done, state)]
    while stack:
        config = stack.pop()
        if config in seen:
            continue
        if len(seen) >= REACH_MAX_CONFIGS:
            return sorted(found), False
        seen.add(config)
        ok_done, unknown_done, state = config
        first_open = (~ok_done & (ok_done + 1)).bit_length() - 1  # the first ok operation not done
        if first_open >= must:
            found.setdefault(model.describe(state), None)
        bound = ok_ends[first_open]
        for i in by_invoke:
            op = ops[i]
            if op.invoke > bound:
                break  # not minimal: an operation that completed before it was invoked is not done
            bit = ok_bit.get(i)
            if (ok_done & bit) if bit is not None else (unknown_done & unknown_bit[i]):
                continue
            after = model.step(state, op.command, UNKNOWN if bit is None else op.result)
            if after is not None:
                stack.append((ok_done | bit, unknown_done, after) if bit is not None
                             else (ok_done, unknown_done | unknown_bit[i], after))
    return sorted(found), True


def _focus(explanation: Explanation) -> str:
    """Return the partition shown first: the one that failed, else the largest."""
    cex = explanation.verdict.counterexample
    if cex is not None:
        return cex.partition
    if not explanation.pieces:
        return ""
    return repr(max(explanation.pieces, key=lambda k: (len(explanation.pieces[k]), repr(k))))


def _bars(explanation: Explanation, end: float) -> dict[str, list[Any]]:
    """Return the column data of every operation's bar: kind, linearization position and details.

    ``own_kind`` and ``own_label`` are what a bar shows when its partition is
    the one in focus; ``kind``, ``colour`` and ``label`` what it shows now.
    """
    focus = _focus(explanation)
    data: dict[str, list[Any]] = {name: [] for name in (
        "process", "left", "right", "own_kind", "kind", "colour", "alpha", "outline", "own_label", "label",
        "position", "operation", "result", "outcome", "interval", "partition")}
    for key, piece in explanation.pieces.items():
        found = explanation.found.get(key)
        positions: dict[int, int] = {}
        blocked = -1
        if found is not None:
            positions = {i: n for n, i in enumerate(found.order, 1)}
            blocked = found.blocked
        name = repr(key)
        for i, op in enumerate(piece):
            if found is None:
                own = "undecided"
            elif i == blocked:
                own = "cannot be placed"
            elif i in positions:
                own = "linearized"
            elif found.linearizable:
                own = "no effect (outcome unknown)"
            else:
                own = "not reached"
            kind = own if name == focus else "other partition"
            label = str(positions[i]) if i in positions else ""
            data["process"].append(op.process)
            data["left"].append(op.invoke)
            data["right"].append(op.complete if op.complete is not None else end)
            data["own_kind"].append(own)
            data["kind"].append(kind)
            data["colour"].append(COLOURS[kind])
            data["alpha"].append(0.45 if op.outcome is Outcome.UNKNOWN else 0.85)
            data["outline"].append("#000000" if i == blocked else COLOURS[kind])
            data["own_label"].append(label)
            data["label"].append(label if name == focus else "")
            data["position"].append(f"{positions[i]} of {len(found.order)}" if found and i in positions
                                    else "-")
            data["operation"].append(_short(f"#{op.id} {op.command}"))
            data["result"].append(_short(format_result(op)))
            data["outcome"].append(op.outcome.value)
            data["interval"].append(f"{op.invoke:g} .. {'' if op.complete is None else format(op.complete, 'g')}")
            data["partition"].append(name)
    return data


def _order_lines(explanation: Explanation) -> dict[str, dict[str, list[Any]]]:
    """Return, per decided partition, its linearization as points (time, process) to join in order."""
    lines: dict[str, dict[str, list[Any]]] = {}
    for key, found in explanation.found.items():
        piece = explanation.pieces[key]
        ordered = [piece[i] for i in found.order]
        lines[repr(key)] = {"x": linearization_points(ordered), "y": [op.process for op in ordered]}
    return lines


def _focus_window(explanation: Explanation, start: float, end: float) -> tuple[float, float]:
    """Return the initial time window: the failure and the prefix's last steps, or everything."""
    cex = explanation.verdict.counterexample
    if cex is None:
        return start, end
    near = [cex.failed] + list(cex.prefix[-5:])
    lo = min(op.invoke for op in near)
    hi = max(op.end if op.complete is not None else op.invoke for op in near)
    pad = 0.25 * ((hi - lo) or 1.0)
    return max(start, lo - pad), min(end, hi + pad)


#: The browser side of the partition selector and the "other partitions" checkbox.
_REFRESH_JS = """
const focus = select.value;
const show_others = toggle.active.includes(0);
const d = bars.data;
for (let n = 0; n < d.partition.length; n++) {
  const mine = d.partition[n] === focus;
  d.kind[n] = mine ? d.own_kind[n] : 'other partition';
  d.colour[n] = colours[d.kind[n]];
  if (d.outline[n] !== '#000000') d.outline[n] = d.colour[n];
  d.label[n] = mine ? d.own_label[n] : '';
  d.alpha[n] = mine || show_others ? (d.outcome[n] === 'unknown' ? 0.45 : 0.85) : 0.0;
}
bars.change.emit();
const line = lines[focus] || {x: [], y: []};
order.data = {x: line.x, y: line.y};
"""


def _figure(explanation: Explanation) -> Any:
    """Return the Bokeh layout: the partition selector, the checkbox and the timeline per process."""
    from bokeh.layouts import column, row
    from bokeh.models import ColumnDataSource, CustomJS, FactorRange, HoverTool, Range1d
    from bokeh.models.widgets import CheckboxGroup, Select
    from bokeh.plotting import figure
    from bokeh.transform import dodge

    ops = [op for piece in explanation.pieces.values() for op in piece]
    finite = [op.complete for op in ops if op.complete is not None] + [op.invoke for op in ops] + [0.0]
    start = min(op.invoke for op in ops) if ops else 0.0
    stop = max(finite)
    end = stop + 0.05 * ((stop - start) or 1.0)
    processes = sorted({op.process for op in ops}, key=lambda p: (len(p), p))
    height = max(260, min(1600, 90 + 26 * len(processes)))
    lo, hi = _focus_window(explanation, start, end)
    # room above the top lane for its labels
    lanes = FactorRange(factors=list(reversed(processes)), range_padding=0.1)
    fig = figure(y_range=lanes, x_range=Range1d(start=lo, end=hi, bounds=(start - (end - start), 2 * end - start)),
                 height=height, sizing_mode="stretch_width",
                 tools="xpan,xwheel_zoom,box_zoom,reset,save", active_scroll="xwheel_zoom",
                 x_axis_label="time (as the history gives it)", y_axis_label="process")
    focus = _focus(explanation)
    bars = ColumnDataSource(_bars(explanation, end))
    drawn = fig.hbar(y="process", left="left", right="right", height=0.6, fill_color="colour",
                     fill_alpha="alpha", line_color="outline", line_alpha="alpha", line_width=1.5,
                     source=bars, legend_field="kind")
    fig.text(x="left", y="process", text="label", source=bars, x_offset=3, y_offset=-9,
             text_font_size="9pt", text_color="#222222")
    lines = _order_lines(explanation)
    order = ColumnDataSource(lines.get(focus, {"x": [], "y": []}))
    fig.line(x="x", y="y", source=order, line_color="#333333", line_width=1.2, line_alpha=0.7,
             legend_label="linearization found")
    fig.scatter(x="x", y="y", source=order, size=5, color="#333333", legend_label="linearization found")
    cex = explanation.verdict.counterexample
    if cex is not None:
        stuck = ColumnDataSource({"x": [(cex.failed.invoke + cex.failed.end) / 2], "y": [cex.failed.process]})
        fig.scatter(x="x", y=dodge("y", 0.45, range=fig.y_range), source=stuck, marker="inverted_triangle",
                    size=14, color="#000000")
    fig.add_tools(HoverTool(renderers=[drawn], tooltips=[
        ("operation", "@operation"), ("result", "@result"), ("outcome", "@outcome"),
        ("interval", "@interval"), ("linearized", "@position"), ("partition", "@partition"),
        ("drawn as", "@kind")]))
    fig.add_layout(fig.legend[0], "above")
    fig.legend.orientation = "horizontal"
    fig.ygrid.grid_line_color = None
    names = sorted(explanation.pieces, key=lambda k: (-len(explanation.pieces[k]), repr(k)))
    options: list[str | tuple[Any, str]] = [(repr(k), f"{k!r} ({len(explanation.pieces[k])} ops)")
                                            for k in names]
    if len(options) <= 1:
        return fig
    select = Select(title="partition", value=focus, options=options, width=260)
    toggle = CheckboxGroup(labels=["show the other partitions (grey)"], active=[0])
    refresh = CustomJS(args={"select": select, "toggle": toggle, "bars": bars, "order": order,
                             "lines": lines, "colours": COLOURS}, code=_REFRESH_JS)
    select.js_on_change("value", refresh)
    toggle.js_on_change("active", refresh)
    return column(row(select, toggle), fig, sizing_mode="stretch_width")


def _prefix_table(explanation: Explanation) -> str:
    """Return the HTML table of the prefix's last operations, with the state after each."""
    cex = explanation.verdict.counterexample
    if cex is None:
        return ""
    start = max(0, len(cex.prefix) - PREFIX_ROWS)
    rows = "".join(f"<tr><td>{n}</td><td>{html.escape(op.process)}</td>"
                   f"<td><code>{html.escape(_short(format_operation(op)))}</code></td></tr>"
                   for n, op in enumerate(cex.prefix[start:], start + 1))
    caption = (f"The longest linearizable prefix found ({len(cex.prefix)} operations"
               + (f"; the last {PREFIX_ROWS} shown" if start else "") + ")")
    if not cex.prefix:
        rows = "<tr><td colspan=3>(empty: the operation cannot even come first)</td></tr>"
    return (f"<table><caption>{caption}</caption><tr><th>#</th><th>process</th><th>operation</th></tr>"
            f"{rows}</table>")


def _stuck(explanation: Explanation, model: Model) -> str:
    """Return the HTML paragraph naming the stuck operation and the states it could have seen."""
    cex = explanation.verdict.counterexample
    if cex is None:
        return ""
    key = next(k for k in explanation.found if repr(k) == cex.partition)
    found = explanation.found[key]
    states, complete = states_it_could_see(model, explanation.pieces[key], found.blocked, found.order,
                                           found.state)
    listed = ", ".join(f"<code>{html.escape(_short(s))}</code>" for s in states[:STATES_LISTED])
    if len(states) > STATES_LISTED:
        listed += f" and {len(states) - STATES_LISTED} more"
    note = "" if complete else " (a bounded exploration: there may be more)"
    returned = format_result(cex.failed)
    why = ""
    if returned in states:
        why = (" Some of those orders give what it returned, but each of them leaves another operation "
               "no place, so the search found no linearization through them.")
    return (f"<p class=stuck>Operation <code>{html.escape(_short(format_operation(cex.failed)))}</code> "
            f"cannot be placed after the prefix, where the state is <code>{html.escape(_short(cex.state))}"
            f"</code>. In the orders real time allows of the operations that could take effect before it, "
            f"it could have seen {listed}{note}. It returned <code>{html.escape(_short(returned))}</code>."
            f"{why}</p>")


_STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 1.5em 2em; color: #222; }
h1 { font-size: 1.3em; margin: 0 0 .3em; }
.verdict { font-weight: 600; padding: .4em .7em; display: inline-block; border-radius: 4px; }
.ok { background: #d8f3e8; } .bad { background: #fbe0d0; } .unknown { background: #e3eef8; }
table { border-collapse: collapse; margin: 1em 0; } caption { text-align: left; font-weight: 600; }
td, th { border-bottom: 1px solid #ddd; padding: .15em .6em; text-align: left; vertical-align: top; }
code { font-size: 12.5px; } .muted { color: #666; }
"""


#: Bokeh's page template, extended: our style in the head, our text around the plot.
_TEMPLATE = """{% block postamble %}<style>{{ style }}</style>{% endblock %}
{% block contents %}{{ header }}{{ super() }}{{ footer }}{% endblock %}"""


def render_check_page(explanation: Explanation, model: Model, source: str) -> str:
    """Return the whole HTML page for one check of the history read from ``source``."""
    from bokeh.embed import file_html
    from bokeh.resources import INLINE

    verdict = explanation.verdict
    css = {Status.LINEARIZABLE: "ok", Status.NOT_LINEARIZABLE: "bad", Status.UNKNOWN: "unknown"}
    if verdict.status is Status.LINEARIZABLE:
        legend = ("Every operation is placed. One partition is drawn at a time (choose it above the plot; "
                  "the others are grey); the dark line joins its operations in the linearization the "
                  "search found, and each bar's number is its place in it.")
    elif verdict.status is Status.UNKNOWN:
        legend = "The budget ran out: blue bars belong to partitions the search did not decide."
    else:
        assert verdict.counterexample is not None
        legend = (f"Drawn: partition {html.escape(verdict.counterexample.partition)}, the one without "
                  f"a linearization (the others are grey; choose another above the plot). Numbers are "
                  f"places in the longest linearizable prefix; the black triangle marks the operation "
                  f"that cannot follow it.")
    header = f"""<h1>smr check: <code>{html.escape(source)}</code></h1>
<p><span class="verdict {css[verdict.status]}">{html.escape(verdict.status.value.upper())}</span>
 {html.escape(verdict.reason)}</p>
<p class=muted>model {html.escape(verdict.model)}; {verdict.operations} operations in {verdict.partitions}
 partition(s), {verdict.checked} decided; {verdict.steps} model steps; {verdict.elapsed:.3f} s</p>
{_stuck(explanation, model)}
<p class=muted>{legend} Drag to pan, scroll to zoom in time, hover a bar for the operation.</p>"""
    return file_html(_figure(explanation), INLINE, f"smr check: {source}", template=_TEMPLATE,
                     template_variables={"style": _STYLE, "header": header,
                                         "footer": _prefix_table(explanation)})
