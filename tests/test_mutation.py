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



def test_a_mutant_that_crashed_or_puzzled_mutmut_is_a_survivor_not_a_kill(tmp_path: Path) -> None:
    source, work = _source(tmp_path), tmp_path / "work"
    _meta(work, "smr/a.py", {"smr.a.x_f__mutmut_1": 1, "smr.a.x_f__mutmut_2": 35, "smr.a.x_f__mutmut_3": -11,
                             "smr.a.x_f__mutmut_4": 77, "smr.a.x_f__mutmut_5": 2})
    doc = report(source, work, Target("t", ("smr/a.py",), (), ""), diffs=False)
    assert [(s["name"][-1], s["outcome"]) for s in doc["survivors"]] == \
        [("2", "suspicious"), ("3", "segfault"), ("4", "suspicious")]
    assert doc["score"] == 0.25 and doc["not_run"] == 1  # 1 caught of 4 judged; the interrupted one not run


def test_the_work_copy_is_checked_first_and_mutmuts_stale_copies_are_removed(tmp_path: Path) -> None:
    source, work = _source(tmp_path), tmp_path / "work"
    target = TARGETS["sessions"]
    stale = [work / "mutants" / "smr" / "conformance" / "scenarios" / "old.yaml", work / "mutants" / "smr" / "x.py"]
    kept = [work / "mutants" / "smr" / "sessions.py", work / "mutants" / "smr" / "sessions.py.meta",
            work / "mutants" / "mutmut-stats.json"]
    for path in stale + kept:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x", encoding="utf-8")
    prepare(source, work, target)
    assert not any(path.exists() for path in stale) and all(path.exists() for path in kept)
    (source / "examples" / "__init__.py").unlink()
    (source / "examples").rmdir()
    with pytest.raises(ConfigError, match=r"examples missing"):
        prepare(source, work, target)
    assert (work / "examples").is_dir()  # refused before anything was removed


def test_each_survivors_diff_is_read_from_the_mutated_file_in_process(tmp_path: Path) -> None:
    """The report's diff of a survivor compares its function with mutmut's copy of the original, method
    or module function alike, signature included (a default value may be what changed), and says so
    when the mutant is missing from the mutated file."""
    source, work = _source(tmp_path), tmp_path / "work"
    _meta(work, "smr/a.py", {"smr.a.x_f__mutmut_1": 0, "smr.a.xǁCǁm__mutmut_2": 0, "smr.a.x_f__mutmut_9": 0,
                             "smr.a.x_f__mutmut_3": 0})
    (work / "mutants" / "smr" / "a.py").write_text(
        "def x_f__mutmut_orig(a, b=1):\n    return a + 1\n"
        "def x_f__mutmut_1(a, b=1):\n    return a - 1\n"
        "def x_f__mutmut_3(a, b=2):\n    return a + 1\n"
        "class C:\n"
        "    def xǁCǁm__mutmut_orig(self):\n        x = 1\n        return x < 2\n"
        "    def xǁCǁm__mutmut_2(self):\n        x = 1\n        return x <= 2\n", encoding="utf-8")
    doc = report(source, work, Target("t", ("smr/a.py",), (), ""))
    diffs = {s["name"]: s["diff"] for s in doc["survivors"]}
    assert diffs["smr.a.x_f__mutmut_1"] == \
        "@@ -1,2 +1,2 @@\n def f(a, b=1):\n-    return a + 1\n+    return a - 1"
    assert diffs["smr.a.x_f__mutmut_3"] == \
        "@@ -1,2 +1,2 @@\n-def f(a, b=1):\n+def f(a, b=2):\n     return a + 1"
    assert diffs["smr.a.xǁCǁm__mutmut_2"] == \
        "@@ -2,2 +2,2 @@\n         x = 1\n-        return x < 2\n+        return x <= 2"
    assert diffs["smr.a.x_f__mutmut_9"].startswith("(diff unavailable")
