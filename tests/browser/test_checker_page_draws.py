"""``smr check --html`` in headless Chromium: the timeline draws, with no network and no console error."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from smr.checker import generate_history
from smr.cli import main
from smr.history import Operation, Outcome, dump_history


def _history(tmp_path: Path, corrupt: bool) -> Path:
    history = generate_history(random.Random(7), operations=300, clients=10, model="kv", keys=5, values=4,
                               append=True, unknown_rate=0.1)
    if corrupt:
        reads = [op for op in history if op.outcome is Outcome.OK and op.command.op == "get"]
        victim = reads[len(reads) // 2]
        history[history.index(victim)] = Operation(victim.id, victim.process, victim.command, victim.invoke,
                                                   victim.complete, victim.outcome, "never-written")
    path = tmp_path / "history.jsonl"
    with path.open("w") as f:
        dump_history(history, f)
    return path


@pytest.mark.parametrize("corrupt", [False, True], ids=["linearizable", "not-linearizable"])
def test_the_checker_page_draws_its_timeline_and_switches_partitions(open_page, tmp_path: Path,
                                                                    corrupt: bool) -> None:
    out = tmp_path / "check.html"
    assert main(["check", str(_history(tmp_path, corrupt)), "--model", "kv", "--html", str(out)]) == int(corrupt)
    page = open_page(out)
    assert page.outside_requests == [] and page.console_errors == []
    assert page.drawn_canvases() >= 1
    body = page.page.inner_text("body")
    assert ("NOT LINEARIZABLE" if corrupt else "LINEARIZABLE") in body
    if corrupt:
        assert "it could have seen" in body
    # Choose another partition: the page redraws it (the pixels change) without a console error.
    before = page.canvas_pixels()
    select = page.page.locator("select")
    assert select.count() == 1
    options = select.locator("option").all()
    assert len(options) == 5
    select.select_option(options[-1].get_attribute("value"))
    page.page.wait_for_timeout(300)
    assert page.console_errors == [] and page.drawn_canvases() >= 1
    assert page.canvas_pixels() != before
