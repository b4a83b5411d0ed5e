"""Space-time (Lamport) diagrams of a short simulated run, as a standalone HTML page with SVG.

Nodes (and clients) are horizontal lanes, time runs to the right, every
message is an arrow from its send to its delivery (a dropped one ends in a
cross), leaders are marked with a star, commits with a tick, crashed periods
are grey on the lane and partitions shade the background.  Hovering an arrow
shows the message.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from typing import Any

import attrs

from .sim import SimConfig
from .sim.engine import Simulation

_PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
            "#bcbd22", "#17becf"]


def record(config: SimConfig, seed: int, until_ms: float) -> tuple[Simulation, list[tuple[Any, ...]]]:
    """Run ``config`` with ``seed`` up to ``until_ms`` and return the structured timeline."""
    config = attrs.evolve(config, duration_ms=until_ms, trace=True, check_invariants=True)
    sim = Simulation(config, seed, timeline=True)
    sim.run()
    assert sim.timeline is not None
    return sim, sim.timeline


def render_svg(lanes: Sequence[str], timeline: Sequence[tuple[Any, ...]], until_ms: float,
               title: str) -> str:
    """Return an SVG drawing of ``timeline`` over ``lanes`` from 0 to ``until_ms``."""
    left, right, top, lane_gap = 70, 30, 50, 56
    width = 1400
    height = top + lane_gap * len(lanes) + 60
    x_of = lambda t: left + (width - left - right) * min(max(t, 0.0), until_ms) / until_ms  # noqa: E731
    y_of = {lane: top + 20 + i * lane_gap for i, lane in enumerate(lanes)}
    out: list[str] = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'font-family="monospace" font-size="11">',
        f'<text x="{left}" y="20" font-size="14">{html.escape(title)}</text>',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="6" '
        'markerHeight="6" orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" /></marker></defs>']
    # Background: partitions, and crashed periods per lane.
    down: dict[str, float] = {}
    cut_since: float | None = None
    for event in timeline:
        if event[0] != "log":
            continue
        t, text = event[1], event[2]
        m = re.match(r"(\S+) (CRASH|RESTART)", text)
        if m and m[1] in y_of:
            if m[2] == "CRASH":
                down[m[1]] = t
            elif m[1] in down:
                start = down.pop(m[1])
                out.append(_lane_band(x_of(start), x_of(t), y_of[m[1]], "#bbbbbb", "crashed"))
        if text.startswith(("PARTITION", "BRIDGE")) and cut_since is None:
            cut_since = t
        elif text.startswith("HEAL") and cut_since is not None:
            out.append(_cut_band(x_of(cut_since), x_of(t), top, height - 40))
            cut_since = None
    for lane, start in down.items():
        out.append(_lane_band(x_of(start), x_of(until_ms), y_of[lane], "#bbbbbb", "crashed"))
    if cut_since is not None:
        out.append(_cut_band(x_of(cut_since), x_of(until_ms), top, height - 40))
    for lane, y in y_of.items():
        out.append(f'<line x1="{left}" y1="{y}" x2="{width - right}" y2="{y}" stroke="#444" />')
        out.append(f'<text x="10" y="{y + 4}" font-size="13">{html.escape(lane)}</text>')
    for tick in range(0, 11):
        t = until_ms * tick / 10
        out.append(f'<text x="{x_of(t) - 10:.1f}" y="{height - 20}">{t:g}ms</text>')
    colours: dict[str, str] = {}
    for event in timeline:
        kind = event[0]
        if kind == "msg":
            _, sent, arrive, src, dst, name, text = event
            if src not in y_of or dst not in y_of:
                continue
            colour = colours.setdefault(name, _PALETTE[len(colours) % len(_PALETTE)])
            x1, y1 = x_of(sent), y_of[src]
            tip = html.escape(f"t={sent:.3f} {src}->{dst} {text}")
            if arrive is None:
                x2, y2 = x1 + 12, y1 + (y_of[dst] - y1) * 0.25
                out.append(f'<g><title>DROPPED {tip}</title><line x1="{x1:.1f}" y1="{y1}" x2="{x2:.1f}" '
                           f'y2="{y2:.1f}" stroke="{colour}" stroke-dasharray="3,2" />'
                           f'<text x="{x2 - 3:.1f}" y="{y2 + 4:.1f}" fill="red">x</text></g>')
            else:
                out.append(f'<g><title>{tip}</title><line x1="{x1:.1f}" y1="{y1}" x2="{x_of(arrive):.1f}" '
                           f'y2="{y_of[dst]}" stroke="{colour}" stroke-width="1.2" '
                           f'marker-end="url(#arrow)" /></g>')
        elif kind == "commit":
            _, t, node, index = event
            if node in y_of:
                x, y = x_of(t), y_of[node]
                out.append(f'<g><title>{node} committed index {index} at t={t:.3f}</title>'
                           f'<line x1="{x:.1f}" y1="{y - 6}" x2="{x:.1f}" y2="{y + 6}" stroke="black" /></g>')
        elif kind == "log":
            m = re.match(r"(\S+) LEADER epoch=(\d+)", event[2])
            if m and m[1] in y_of:
                x, y = x_of(event[1]), y_of[m[1]]
                out.append(f'<g><title>{m[1]} leads epoch {m[2]} from t={event[1]:.3f}</title>'
                           f'<text x="{x - 6:.1f}" y="{y - 8}" font-size="16" fill="#d4a000">&#9733;</text>'
                           f'<text x="{x + 8:.1f}" y="{y - 10}">epoch {m[2]}</text></g>')
    legend_x = left
    for name, colour in sorted(colours.items()):
        out.append(f'<rect x="{legend_x}" y="30" width="10" height="10" fill="{colour}" />'
                   f'<text x="{legend_x + 14}" y="39">{html.escape(name)}</text>')
        legend_x += 20 + 7 * len(name)
    out.append("</svg>")
    return "\n".join(out)


def _lane_band(x1: float, x2: float, y: float, colour: str, label: str) -> str:
    return (f'<g><title>{label}</title><rect x="{x1:.1f}" y="{y - 10}" width="{max(x2 - x1, 1):.1f}" '
            f'height="20" fill="{colour}" opacity="0.6" /></g>')


def _cut_band(x1: float, x2: float, y1: float, y2: float) -> str:
    return (f'<g><title>network partitioned</title><rect x="{x1:.1f}" y="{y1}" width="{max(x2 - x1, 1):.1f}" '
            f'height="{y2 - y1}" fill="#ff0000" opacity="0.07" /></g>')


def render_page(config: SimConfig, seed: int, until_ms: float, with_clients: bool = True) -> str:
    """Return a standalone HTML page with the space-time diagram of the run's first ``until_ms``."""
    sim, timeline = record(config, seed, until_ms)
    lanes = list(config.node_ids)
    if with_clients:
        lanes += sorted({e[3] for e in timeline if e[0] == "msg" and e[3] not in lanes}
                        | {e[4] for e in timeline if e[0] == "msg" and e[4] not in lanes},
                        key=lambda s: (s[0], int(s[1:]) if s[1:].isdigit() else 0))
    title = (f"{config.backend}, {config.nodes} nodes, seed {seed}, first {until_ms:g} ms "
             f"(replay: {config.replay_command(seed)})")
    svg = render_svg(lanes, timeline, until_ms, title)
    return ("<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>"
            f"{html.escape(title)}</title></head><body>\n{svg}\n"
            "<p>Arrows: messages from send to delivery (hover for contents); x: dropped; "
            "star: a node becomes leader; tick: an entry committed; grey: node down; "
            "red background: network partitioned.</p>\n</body></html>\n")
