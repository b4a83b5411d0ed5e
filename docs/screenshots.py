"""Write the README's screenshots of report.html, the Lamport diagram and the checker's page (docs/*.png).

    python docs/screenshots.py            # runs a small smr compare, smr trace and smr check in a temporary directory
    python docs/screenshots.py --report smr-results/latest/report.html --trace trace-raft-1.html --check check.html

Needs Chromium (Debian's ``chromium``, or ``$SMR_CHROMIUM``) and Playwright's
Python client (``pip install '.[test]'``), like the browser tests.  Every request
that is not a local file is refused, so the pictures show what opens offline.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

DOCS = Path(__file__).resolve().parent
KV = DOCS.parent / "smr" / "scenarios" / "kv-leader-crash.yaml"

# Page coordinates of the first message of the given type in the first diagram (scrolled into view).
_POINT_OF = """(kind) => {
  const views = [];
  const walk = (v) => { views.push(v); for (const c of (v.child_views || [])) walk(c); };
  for (const v of Bokeh.index.roots) walk(v);
  const plot = views.find((v) => v.model.type == 'Figure' && v.model.renderers.some((r) => r.data_source.data.x0));
  const r = plot.model.renderers.find((r) => r.data_source.data.x0 && r.glyph.type == 'Segment');
  const d = r.data_source.data;
  const names = [...Bokeh.documents[0].all_models].find((m) => m.type == 'CheckboxGroup').labels
    .map((l) => l.split(' (')[0]);
  const i = [...d.k].findIndex((k) => names[k] === kind);
  const x = (d.x0[i] + d.x1[i]) / 2, y = (d.s[i] + d.y1[i]) / 2;
  const box = plot.canvas_view.el.getBoundingClientRect();
  return [box.left + plot.frame.x_scale.compute(x), box.top + plot.frame.y_scale.compute(y)];
}"""


def _open(browser: Any, path: Path, height: int) -> Any:
    page = browser.new_page(viewport={"width": 1400, "height": height})
    page.route("**/*", lambda r: r.continue_() if r.request.url.startswith(("file:", "data:", "blob:"))
               else r.abort())
    page.goto(path.resolve().as_uri(), wait_until="load")
    page.wait_for_timeout(1500)
    return page


def shoot(report: Path, trace: Path, check: Path, out: Path) -> list[Path]:
    """Screenshot ``report`` (its top: tables, first figure, first diagram), ``trace`` (the first election,
    a vote hovered over and clicked) and ``check`` (the whole checker page)."""
    from playwright.sync_api import sync_playwright

    from smr.report_html import palette_png

    executable = os.environ.get("SMR_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if executable is None:
        sys.exit("no Chromium: apt-get install chromium, or set SMR_CHROMIUM")
    written = [out / "report.png", out / "lamport.png", out / "checker.png"]
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=executable, headless=True,
                                     args=["--no-sandbox", "--disable-gpu"])
        page = _open(browser, report, 1000)
        # From the top to the end of the first diagram: tables, the first figure, a whole diagram.
        bottom = page.evaluate("() => Bokeh.index.roots[0].el.getBoundingClientRect().bottom + window.scrollY")
        page.screenshot(path=str(written[0]), full_page=True, clip={"x": 0, "y": 0, "width": 1400,
                                                                     "height": bottom + 10})
        page = _open(browser, trace, 1080)
        page.get_by_role("button", name=re.compile(r"^first election \(")).click()
        page.wait_for_timeout(300)
        # Closer still: the last 16 ms of that window, where the votes and the first appends fly.
        page.evaluate("""() => { const r = [...Bokeh.documents[0].all_models].find(
            (m) => m.type === 'Range1d' && m.bounds != null && m.bounds !== 'auto'); r.start = r.end - 16; }""")
        page.wait_for_timeout(500)
        page.evaluate("window.scrollTo(0, 0)")
        x, y = page.evaluate(_POINT_OF, "RequestVote")
        page.mouse.click(x, y)
        page.mouse.move(x, y)
        page.wait_for_timeout(600)
        page.screenshot(path=str(written[1]))
        page = _open(browser, check, 900)
        page.screenshot(path=str(written[2]), full_page=True)
        browser.close()
    for path in written:  # a palette keeps the repository light; the pictures look the same
        path.write_bytes(palette_png(path.read_bytes()))
    return written


def _checker_page(tmp: Path) -> Path:
    """Write the checker's page for a generated kv history whose one read returns a value never written."""
    import random

    from smr.checker import generate_history
    from smr.cli import main as smr
    from smr.history import Operation, Outcome, dump_history

    history = generate_history(random.Random(2), operations=200, clients=10, model="kv", keys=6, values=4,
                               append=True, unknown_rate=0.1)
    reads = [op for op in history if op.outcome is Outcome.OK and op.command.op == "get"]
    bad = random.Random(2).choice(reads)
    history[history.index(bad)] = Operation(bad.id, bad.process, bad.command, bad.invoke, bad.complete,
                                            bad.outcome, "never-written")
    source, page = tmp / "history.jsonl", tmp / "check.html"
    with source.open("w") as f:
        dump_history(history, f)
    assert smr(["check", str(source), "--model", "kv", "--html", str(page)]) == 1
    return page


def main() -> int:
    """Make the pages unless given, then write the screenshots into docs/."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--report", type=Path, help="a report.html (default: run smr compare on kv-leader-crash)")
    parser.add_argument("--trace", type=Path, help="an smr trace page (default: smr trace 1 kv-leader-crash)")
    parser.add_argument("--check", type=Path,
                        help="an smr check --html page (default: a 10-client get/put/append history with one read "
                             "corrupted)")
    parser.add_argument("--out", type=Path, default=DOCS, help="where to write the PNGs (default docs/)")
    args = parser.parse_args()
    from smr.cli import main as smr

    with tempfile.TemporaryDirectory() as tmp:
        report, trace = args.report, args.trace
        if report is None:
            code = smr(["compare", str(KV), "--seeds", "1", "--quiet", "--out", tmp])
            assert code == 0, code
            report = Path(tmp) / "latest" / "report.html"
        if trace is None:
            trace = Path(tmp) / "trace.html"
            assert smr(["trace", "1", str(KV), "--out", str(trace)]) == 0
        check = args.check or _checker_page(Path(tmp))
        for path in shoot(report, trace, check, args.out):
            print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
