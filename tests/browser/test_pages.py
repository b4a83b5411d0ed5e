"""report.html and ``smr trace``'s page in headless Chromium: they open with no network and everything draws.

A small ``smr compare`` run (kv-leader-crash, raft and the coordinator, one
seed) writes the report; ``smr trace`` writes the diagram page.  Each test
opens a page with every outside request refused and checks what a reader
would: the figures decoded, the Bokeh canvases drew, nothing went to the
console, and the diagram answers to its controls (type and node filters, the
jump buttons) and to a real mouse (hovering over a message shows it, a click
prints it under the diagram).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from smr.cli import main
from smr.scenarios import builtin_scenarios

BUDGET = 3_000_000


@pytest.fixture(scope="module")
def pages(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """report.html of a small compare run, and a trace page."""
    root = tmp_path_factory.mktemp("pages")
    kv = next(p for p in builtin_scenarios() if p.name == "kv-leader-crash.yaml")
    assert main(["compare", str(kv), "--backends", "raft,coordinator", "--seeds", "1", "--quiet",
                 "--out", str(root / "results")]) == 0
    trace = root / "trace.html"
    assert main(["trace", "1", str(kv), "--to", "400", "--out", str(trace)]) == 0
    return {"report": root / "results" / "latest" / "report.html", "trace": trace}


# What the page holds, read through Bokeh's own objects.
_UNPACKED = """() => Bokeh.documents.length > 0 && Bokeh.documents[0].all_models.size > 0 &&
  [...Bokeh.documents[0].all_models].filter((m) => m.tags && m.tags.length && m.data && m.data.t)
    .every((m) => m.data.t.length === 0 || m.data.t[0] !== '')"""

_PLOTS = """() => {
  const views = [];
  const walk = (v) => { views.push(v); for (const c of (v.child_views || [])) walk(c); };
  for (const v of Bokeh.index.roots) walk(v);
  return views;
}"""

# The page coordinates of message i of the first diagram, scrolled into view; and its text.
_MESSAGE_POINT = """(i) => {
  const views = (%s)();
  const plot = views.find((v) => v.model.type == 'Figure' && v.model.renderers.some((r) => r.data_source.data.x0));
  plot.el.scrollIntoView();
  const r = plot.model.renderers.find((r) => r.data_source.data.x0 && r.glyph.type == 'Segment');
  const d = r.data_source.data;
  const x = (d.x0[i] + d.x1[i]) / 2, y = (d.s[i] + d.y1[i]) / 2;
  const box = plot.canvas_view.el.getBoundingClientRect();
  return [box.left + plot.frame.x_scale.compute(x), box.top + plot.frame.y_scale.compute(y), d.t[i]];
}""" % _PLOTS

# Text shown in Bokeh's tooltips (each renders into its own shadow root).
_TOOLTIPS = """() => {
  const out = [];
  const walk = (root) => {
    for (const el of root.querySelectorAll('*')) {
      if (String(el.className).includes('bk-Tooltip')) out.push((el.shadowRoot || el).textContent);
      if (el.shadowRoot) walk(el.shadowRoot);
    }
  };
  walk(document);
  return out.filter((t) => t.trim());
}"""

_CLICKED = """() => [...Bokeh.documents[0].all_models].map((m) => m.text)
  .find((t) => typeof t === 'string' && t.includes('sent at')) || null"""

# For the first diagram: each message source's rows, hidden rows, and rows of type k or touching lane c.
_FILTERED = """([k, c]) => {
  const out = [];
  for (const m of Bokeh.documents[0].all_models) {
    if (!(m.data && m.data.x0 && m.tags && m.tags.length)) continue;
    const d = m.data;
    out.push({rows: d.x0.length, of_type: [...d.k].filter((x) => x === k).length,
              touching: [...d.s].filter((s, i) => s === c || d.d[i] === c).length});
  }
  return out;
}"""

_HIDDEN = """() => [...Bokeh.documents[0].all_models]
  .filter((m) => m.type === 'BooleanFilter' && m.booleans != null).map((m) => m.booleans.filter((b) => !b).length)"""


def _open(open_page: Any, path: Path) -> Any:
    opened = open_page(path, settle_ms=300)
    opened.page.wait_for_function(_UNPACKED, timeout=20_000)
    return opened


def _common_checks(opened: Any, path: Path, diagrams: int) -> None:
    assert path.stat().st_size < BUDGET
    assert opened.console_errors == []
    assert opened.outside_requests == []
    # Two canvases per diagram (messages, client operations), both with pixels on them.
    assert opened.drawn_canvases() >= 2 * diagrams
    assert opened.count(".bk-Canvas") >= 2 * diagrams


def test_report_opens_offline_with_its_table_figures_and_diagrams(open_page: Any, pages: dict[str, Path]) -> None:
    report = pages["report"]
    opened = _open(open_page, report)
    _common_checks(opened, report, diagrams=2)
    page = opened.page
    images = page.evaluate("() => [...document.images].map((i) => [i.complete, i.naturalWidth, i.naturalHeight])")
    pngs = sorted(p.name for p in report.parent.glob("*.png"))
    assert pngs and len(images) == len(pngs)
    assert all(done and width > 100 and height > 100 for done, width, height in images), images
    assert page.locator("table").count() >= 2
    headings = page.locator("h3").all_inner_texts()
    assert "raft: Lamport diagram and client operations of seed 1 (the first of 1..1)" in headings
    assert "coordinator: Lamport diagram and client operations of seed 1 (the first of 1..1)" in headings
    assert page.locator("text=replay:").count() >= 2


def test_trace_page_opens_offline_and_draws(open_page: Any, pages: dict[str, Path]) -> None:
    opened = _open(open_page, pages["trace"])
    _common_checks(opened, pages["trace"], diagrams=1)


@pytest.mark.parametrize("which", ["report", "trace"])
def test_hovering_over_and_clicking_a_message_shows_it(open_page: Any, pages: dict[str, Path], which: str) -> None:
    opened = _open(open_page, pages[which])
    page = opened.page
    x, y, text = page.evaluate(_MESSAGE_POINT, 0)
    assert text  # the packed texts were unpacked
    page.mouse.move(x, y)
    page.wait_for_timeout(400)
    tips = page.evaluate(_TOOLTIPS)
    assert any(text[:40] in tip and "sent 0.000 ms" in tip for tip in tips), tips
    assert page.evaluate(_CLICKED) is None
    page.mouse.click(x, y)
    page.wait_for_timeout(400)
    clicked = page.evaluate(_CLICKED)
    assert clicked is not None and text[:40] in clicked
    assert opened.console_errors == []


def test_type_and_node_filters_hide_exactly_their_messages(open_page: Any, pages: dict[str, Path]) -> None:
    opened = _open(open_page, pages["trace"])
    page = opened.page
    labels = page.locator("label:has(input[type=checkbox])").all_inner_texts()
    type_label = next(t for t in labels if t.startswith("AppendEntries "))
    type_index = [t for t in labels if "(" in t].index(type_label)
    lanes = [t.strip() for t in labels if "(" not in t]
    lane = lanes.index("c1")
    (delivered, *_) = page.evaluate(_FILTERED, [type_index, lane])
    assert int(type_label.split("(")[1].rstrip(")")) == delivered["of_type"] > 0
    page.locator("label", has_text=type_label).locator("input").uncheck()
    page.wait_for_timeout(300)
    assert max(page.evaluate(_HIDDEN)) == delivered["of_type"]
    page.locator("label:has(input[type=checkbox])").filter(has_text="c1").first.locator("input").uncheck()
    page.wait_for_timeout(300)
    # AppendEntries never touch a client, so the two filters hide disjoint sets.
    assert max(page.evaluate(_HIDDEN)) == delivered["of_type"] + delivered["touching"]
    assert opened.drawn_canvases() >= 2 and opened.console_errors == []


def test_jump_buttons_and_the_slider_move_the_time_window(open_page: Any, pages: dict[str, Path]) -> None:
    opened = _open(open_page, pages["report"])
    page = opened.page
    button = page.locator("button", has_text="crash_leader at 1000 ms").first
    button.click()
    page.wait_for_timeout(300)
    start, end, slider = page.evaluate("""() => {
      const m = [...Bokeh.documents[0].all_models];
      const r = m.find((x) => x.type === 'Range1d' && x.bounds != null && x.bounds !== 'auto');
      const s = m.find((x) => x.type === 'RangeSlider');
      return [r.start, r.end, s.value]; }""")
    assert 990 < start < 1000 < end < 1200
    assert slider == pytest.approx([start, end], abs=1e-3)  # the slider follows the plot
    assert opened.console_errors == []
