"""Shared pytest settings: the ``--rewrite-transcripts`` switch, results under a temporary root, workers."""

from __future__ import annotations

import os

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    """Register ``--rewrite-transcripts`` (tests/test_transcripts.py)."""
    parser.addoption("--rewrite-transcripts", action="store_true", default=False,
                     help="rewrite the expected output of tests/transcripts/**/*.txt from the "
                          "current behaviour (also: SMR_REWRITE_TRANSCRIPTS=1)")


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """``-n auto`` (pyproject's addopts): one worker per core, at most 4 (the live clusters time elections)."""
    return max(1, min(os.cpu_count() or 1, 4))


@pytest.fixture
def rewrite_transcripts(request: pytest.FixtureRequest) -> bool:
    """True when golden transcripts should be rewritten instead of checked."""
    return bool(request.config.getoption("--rewrite-transcripts")) or \
        os.environ.get("SMR_REWRITE_TRANSCRIPTS", "") not in ("", "0")


@pytest.fixture(autouse=True)
def _results_in_a_temporary_directory(tmp_path_factory: pytest.TempPathFactory,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Commands write their results directories under a temporary root, never in the source tree."""
    monkeypatch.setenv("SMR_RESULTS", str(tmp_path_factory.mktemp("smr-results")))
