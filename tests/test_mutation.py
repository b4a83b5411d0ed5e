"""``smr mutation``: its targets exist, its work directory is a copy, its report counts what mutmut found.

mutmut itself runs for hours on a core, so it is a command, not a test; these
tests check the parts that are ours: the targets name real files and tests,
the work directory gets its own ``[tool.mutmut]`` table and never touches the
source, and the report reads mutmut's results (``*.py.meta``) into outcomes,
a score and the survivors still to be killed or explained.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from smr.errors import ConfigError
from smr.mutation import COPIED, TARGETS, Target, describe, explanations, outcomes, prepare, report

ROOT = Path(__file__).resolve().parents[1]


def test_every_target_names_real_source_files_and_fast_in_process_tests() -> None:
    assert set(TARGETS) == {"sessions", "raft", "multipaxos", "server"}
    for target in TARGETS.values():
        for path in (*target.files, *target.tests):
            assert (ROOT / path).exists(), f"{target.name}: {path}"
        for test in target.tests:  # a test that starts smr processes would run the unmutated code
            assert "LocalTcpCluster" not in (ROOT / test).read_text(encoding="utf-8"), test


def _source(tmp_path: Path) -> Path:
    source = tmp_path / "source"
    for name in COPIED:
        if name.endswith(".toml"):
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            (source / name).write_text('[project]\nname = "x"\n', encoding="utf-8")
        else:
            (source / name).mkdir(parents=True)
            (source / name / "__init__.py").write_text("", encoding="utf-8")
    return source


def test_the_work_directory_is_a_fresh_copy_with_its_own_mutmut_table(tmp_path: Path) -> None:
    source, work = _source(tmp_path), tmp_path / "work"
    (work / "smr").mkdir(parents=True)
    (work / "smr" / "stale.py").write_text("old", encoding="utf-8")
    (work / "mutants").mkdir()
    (work / "mutants" / "kept.meta").write_text("{}", encoding="utf-8")
    prepare(source, work, TARGETS["sessions"])
    assert not (work / "smr" / "stale.py").exists()  # the sources are copied afresh...
    assert (work / "mutants" / "kept.meta").exists()  # ...and mutmut's results are kept, to resume
    table = (work / "pyproject.toml").read_text(encoding="utf-8").split("[tool.mutmut]", 1)[1]
    assert 'only_mutate = ["smr/sessions.py"]' in table and '"-n", "0"' in table
    assert "tests/test_sessions_in_cores.py" in table
    assert "[tool.mutmut]" not in (source / "pyproject.toml").read_text(encoding="utf-8")
    (source / "pyproject.toml").write_text("[tool.mutmut]\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"pyproject.toml.*tool.mutmut"):
        prepare(source, tmp_path / "other", TARGETS["sessions"])


def _meta(work: Path, path: str, codes: dict[str, int | None]) -> None:
    meta = work / "mutants" / f"{path}.meta"
    meta.parent.mkdir(parents=True, exist_ok=True)
    meta.write_text(json.dumps({"exit_code_by_key": codes}), encoding="utf-8")


def test_the_report_scores_the_targets_files_and_lists_each_unexplained_survivor(tmp_path: Path) -> None:
    source, work = _source(tmp_path), tmp_path / "work"
    target = Target("t", ("smr/a.py",), (), "a target")
    _meta(work, "smr/a.py", {"smr.a.x_f__mutmut_1": 1, "smr.a.x_f__mutmut_2": 0, "smr.a.x_f__mutmut_3": 0,
                             "smr.a.x_g__mutmut_1": 37, "smr.a.x_g__mutmut_2": 33, "smr.a.x_g__mutmut_3": None,
                             "smr.a.x_g__mutmut_4": 36})
    _meta(work, "smr/other.py", {"smr.other.x_h__mutmut_1": 0})  # not the target's: left out
    assert outcomes(work)["smr/a.py"]["smr.a.x_g__mutmut_1"] == "killed by mypy"
    (source / "docs" / "mutation").mkdir(parents=True)
    (source / "docs" / "mutation" / "t.yaml").write_text(
        "smr.a.x_f__mutmut_2: only the text of an error message changes\n", encoding="utf-8")
    doc = report(source, work, target, diffs=False)
    assert list(doc["files"]) == ["smr/a.py"]
    # caught: killed 1 + mypy 1 + timeout 1 = 3, of 3 + survived 2 + untested 1 = 6 judged
    assert doc["score"] == 0.5 and doc["files"]["smr/a.py"]["score"] == 0.5 and doc["not_run"] == 1
    assert doc["score_by_tests"] == 0.4  # killed 1 + timeout 1 of 5 judged without mypy
    assert [s["name"] for s in doc["survivors"]] == ["smr.a.x_f__mutmut_2", "smr.a.x_f__mutmut_3",
                                                     "smr.a.x_g__mutmut_2"]
    assert doc["unexplained"] == ["smr.a.x_f__mutmut_3", "smr.a.x_g__mutmut_2"]
    text = describe(doc)
    assert "score 50.0%" in text and "3 survivors, 1 explained" in text and "1 mutants not run" in text


def test_an_explanations_file_that_is_not_a_mapping_of_names_to_sentences_is_refused(tmp_path: Path) -> None:
    source = _source(tmp_path)
    (source / "docs" / "mutation").mkdir(parents=True)
    (source / "docs" / "mutation" / "t.yaml").write_text("- a list\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"t.yaml.*maps each mutant"):
        explanations(source, Target("t", (), (), ""))


def test_a_retest_of_named_mutants_keeps_every_other_verdict(tmp_path: Path) -> None:
    from smr.mutation import _exit_codes, _keep_earlier_verdicts

    work = tmp_path / "work"
    _meta(work, "smr/a.py", {"smr.a.x_f__mutmut_1": 1, "smr.a.x_f__mutmut_2": 0, "smr.a.x_g__mutmut_1": 37})
    before = _exit_codes(work)
    # mutmut, asked to run x_f__mutmut_2 only, rewrites the file with the others not run
    _meta(work, "smr/a.py", {"smr.a.x_f__mutmut_1": None, "smr.a.x_f__mutmut_2": 1, "smr.a.x_g__mutmut_1": None})
    _keep_earlier_verdicts(work, before)
    assert outcomes(work)["smr/a.py"] == {"smr.a.x_f__mutmut_1": "killed", "smr.a.x_f__mutmut_2": "killed",
                                          "smr.a.x_g__mutmut_1": "killed by mypy"}
