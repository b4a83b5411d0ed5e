"""``smr mutation``: mutation testing of the protocol cores, the sessions and the TCP server loop.

A suite that no deliberate bug turns red proves nothing.  The hand-written
mutants (``mutant_*`` options) break one protocol rule each; this command asks
a mutation-testing tool, mutmut 3, to break *every* line it can -- a ``<``
made ``<=``, a ``+ 1`` dropped, a ``True`` made ``False`` -- and runs the fast
tests that reach the mutated function against each mutant.  A mutant the tests
do not fail is a *survivor*: either a test is missing, or the change cannot be
observed (an equivalent mutant), and the score is only honest once every
survivor is one or the other.

Each target is a set of source files and the fast tests judged against them
(in-process tests only: a test that starts ``smr serve`` processes would run
the unmutated code).  The run happens in a work directory of its own (a copy of
the packages and tests, so the checkout is never touched) and resumes where it
stopped.  The report counts mutants by outcome per file, gives the score
(killed out of killed + survived + untested) and lists each survivor with its
diff and, where ``docs/mutation/<target>.yaml`` has one, the sentence that
explains why it is equivalent.  Survivors with neither a test nor an
explanation make the command exit 1.
"""

from __future__ import annotations

import argparse
import ast
import difflib
import json
import os
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import attrs
import yaml

from .arguments import int_at_least
from .errors import ConfigError
from .results import default_root

#: The packages and files copied into a work directory: everything the tests import.
COPIED = ("smr", "raft", "multipaxos", "synod", "workloads", "examples", "tests", "pyproject.toml")
#: mutmut's exit codes, by the outcome they mean (mutmut.stats.status_by_exit_code); any other code is
#: "suspicious", like mutmut's own default.
OUTCOMES = {1: "killed", 3: "killed", 37: "killed by mypy", 0: "survived", 5: "no tests", 33: "no tests",
            36: "timeout", 24: "timeout", -24: "timeout", 152: "timeout", 255: "timeout", None: "not run",
            2: "not run", 34: "skipped", 35: "suspicious", -11: "segfault", -9: "segfault"}
#: The outcomes that count as caught.
CAUGHT = frozenset({"killed", "killed by mypy", "timeout"})
#: The outcomes that count as survivors: each needs a test that kills it or an explanation.  A mutant
#: that crashed the tests (segfault) or gave mutmut an unclear result is not counted as caught.
SURVIVED = frozenset({"survived", "no tests", "skipped", "suspicious", "segfault"})


@attrs.frozen
class Target:
    """A set of source files mutated together and the fast tests that judge them."""

    name: str
    files: tuple[str, ...]
    tests: tuple[str, ...]
    description: str


#: The cores' own in-process tests.  The conformance catalogue and the simulated swarms are left out: a
#: mutant that survives runs every test that reaches its function, and for a core function those take
#: about 200 s (raft, measured from mutmut's stats) against 13 s for these -- so a survivor here is
#: killed by a new unit test that says what it pins, or explained.
_CORE_TESTS = ("tests/test_sessions_in_cores.py", "tests/test_rejoin_cores.py", "tests/test_hostile_cores.py",
               "tests/test_transcripts.py", "tests/test_driver.py")
TARGETS = {t.name: t for t in (
    Target("sessions", ("smr/sessions.py",),
           ("tests/test_sessions_table.py", "tests/test_sessions_in_cores.py", "tests/test_apps.py",
            "tests/sim/test_state_machines.py",
            "tests/raft/test_raft_paper.py", "tests/multipaxos/test_multipaxos_protocol.py"),
           "client sessions: exactly-once, expiry, the session table in snapshots"),
    Target("raft", ("raft/_core.py", "raft/log.py", "raft/progress.py"),
           ("tests/raft/test_raft_paper.py", "tests/raft/test_raft_options.py", "tests/raft/test_raft_leases.py",
            "tests/raft/test_raft_membership.py", "tests/raft/test_raft_write_in_parallel.py",
            "tests/raft/test_raft_mutants.py", "tests/raft/test_raft_snapshots.py", "tests/raft/test_raft_log.py",
            "tests/raft/test_raft_transfer_and_changes.py", "tests/raft/test_raft_peer_validation.py",
            "tests/raft/test_raft_replication.py", *_CORE_TESTS),
           "the Raft core, its log and its replication progress"),
    Target("multipaxos", ("multipaxos/_core.py",),
           ("tests/multipaxos/test_multipaxos_protocol.py", "tests/multipaxos/test_multipaxos_leases.py",
            "tests/multipaxos/test_multipaxos_reconfiguration.py",
            "tests/multipaxos/test_multipaxos_membership_followers.py",
            "tests/multipaxos/test_multipaxos_write_in_parallel.py", "tests/multipaxos/test_multipaxos_mutants.py",
            "tests/multipaxos/test_multipaxos_catchup.py", "tests/multipaxos/test_multipaxos_phases.py",
            "tests/multipaxos/test_multipaxos_members_reads_inputs.py",
            "tests/multipaxos/test_multipaxos_followers_nacks_and_snapshots.py",
            "tests/multipaxos/test_multipaxos_own_copy_and_late_promises.py",
            "tests/multipaxos/test_multipaxos_new_leader_and_window.py",
            "tests/multipaxos/test_multipaxos_late_promises_and_choosing.py",
            "tests/multipaxos/test_multipaxos_learning_and_restart.py", "tests/multipaxos/test_multipaxos_promises.py",
            *_CORE_TESTS),
           "the multi-Paxos core"),
    Target("server", ("smr/net/_loop.py",),
           ("tests/net/test_server_ordering.py", "tests/net/test_embedded_node.py", "tests/net/test_tcp_frames.py",
            "tests/net/test_disk_faults.py", "tests/net/test_core_loop.py"),
           "the TCP server's core loop: batches, group commit, persist before send, release"),
)}


def _config(target: Target) -> str:
    """The ``[tool.mutmut]`` table for ``target`` (appended to the work directory's pyproject.toml)."""
    settings = {
        "source_paths": ["smr", "raft", "multipaxos"],
        "only_mutate": list(target.files),
        "also_copy": ["synod", "workloads", "examples"],
        # mutmut forks one process per mutant: no xdist workers inside it
        "pytest_add_cli_args": ["-n", "0", "-p", "no:cacheprovider"],
        "pytest_add_cli_args_test_selection": list(target.tests),
        # a mutant that loops forever is a timeout (caught); mutmut's default waits 15x the covering tests'
        # time (twice over) -- minutes of CPU per such mutant of a core function -- where 3x tells it apart
        "timeout_multiplier": 3.0,
        # a mutant mypy rejects is caught by the suite's own type check; trampolines leave some ignores unused
        "type_check_command": [sys.executable, "-m", "mypy", "smr", "raft", "multipaxos", "--output", "json",
                               "--no-warn-unused-ignores"],
    }
    lines = ["", "[tool.mutmut]"]
    lines += [f"{key} = {json.dumps(value)}" for key, value in settings.items()]
    return "\n".join(lines) + "\n"


def prepare(source: Path, work: Path, target: Target) -> None:
    """Copy the packages and tests of ``source`` into ``work`` (fresh copies; mutmut's results stay).

    mutmut copies a file into ``work/mutants`` only if it is not there yet
    (regenerating a mutated module only when its source is newer), so files
    there that are not mutmut's own results are removed: it copies them afresh.
    """
    missing = [name for name in COPIED if not (source / name).exists()]
    if missing:
        raise ConfigError(f"not a source tree of this project: {', '.join(missing)} missing", file=str(source),
                          field="--source")
    work.mkdir(parents=True, exist_ok=True)
    mutants = work / "mutants"
    if mutants.is_dir():
        for path in sorted(mutants.rglob("*")):
            if path.is_file() and not path.name.endswith(".meta") and path.name != "mutmut-stats.json" \
                    and not any(path == mutants / mutated for mutated in target.files):
                path.unlink()
    for name in COPIED:
        src, dst = source / name, work / name
        if dst.is_dir():
            shutil.rmtree(dst)
        if src.is_dir():
            shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(src, dst)
    pyproject = (work / "pyproject.toml").read_text(encoding="utf-8")
    if "[tool.mutmut]" in pyproject:
        raise ConfigError("pyproject.toml already has a [tool.mutmut] table; this command writes its own",
                          file=str(source / "pyproject.toml"), field="tool.mutmut")
    (work / "pyproject.toml").write_text(pyproject + _config(target), encoding="utf-8")


def outcomes(work: Path) -> dict[str, dict[str, str]]:
    """Every mutant's outcome, by source file then mutant name, read from mutmut's ``.meta`` files."""
    found: dict[str, dict[str, str]] = {}
    for meta in sorted((work / "mutants").rglob("*.py.meta")):
        data = json.loads(meta.read_text(encoding="utf-8"))
        path = meta.relative_to(work / "mutants").as_posix().removesuffix(".meta")
        codes = data.get("exit_code_by_key", {})
        found[path] = {name: OUTCOMES.get(code, "suspicious") for name, code in codes.items()}
    return found


def explanations(source: Path, target: Target) -> dict[str, str]:
    """The survivors ``docs/mutation/<target>.yaml`` explains as equivalent: mutant name -> why."""
    path = source / "docs" / "mutation" / f"{target.name}.yaml"
    if not path.exists():
        return {}
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(data, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in data.items()):
        raise ConfigError("maps each mutant's name to the sentence that explains it", file=str(path), field="")
    return data


def _functions(mutated: Path) -> dict[str, list[str]]:
    """Every function and method body of a file mutmut rewrote, by its name there (``xǁClassǁf__mutmut_3``)."""
    if not mutated.is_file():
        return {}  # (every diff then says it is unavailable)
    text = mutated.read_text(encoding="utf-8")
    lines = text.splitlines()
    found: dict[str, list[str]] = {}
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno is not None:
            found[node.name] = lines[node.lineno - 1:node.end_lineno]
    return found


def _diff(functions: dict[str, list[str]], name: str) -> str:
    """One mutant's change as a unified diff of its function against the original (mutmut's own copies).

    Read from the mutated file in process: ``mutmut show`` starts a
    process per mutant, minutes for a report of a few hundred survivors.
    """
    short = name.rsplit(".", 1)[-1]
    original_name = short.rsplit("__mutmut_", 1)[0] + "__mutmut_orig"
    original, mutant = functions.get(original_name), functions.get(short)
    if original is None or mutant is None:
        return "(diff unavailable: the mutant is not in the mutated file; run mutmut again)"
    # the signature stays in (a default value may be the mutation), under the function's own name
    base = original_name.removesuffix("__mutmut_orig")
    own = base.rsplit("ǁ", 1)[1] if "ǁ" in base else base.removeprefix("x_")
    original = [original[0].replace(original_name, own), *original[1:]]
    mutant = [mutant[0].replace(short, own), *mutant[1:]]
    diff = list(difflib.unified_diff(original, mutant, lineterm="", n=1))
    return "\n".join(diff[2:])  # without the ---/+++ header (its file names would be empty)


def _score(counts: Counter[str], by_tests_only: bool = False) -> float | None:
    """Caught (killed by a test or by mypy, or timed out) out of every mutant judged; ``by_tests_only``:
    of the mutants mypy let through, those the tests caught."""
    caught = sum(counts[o] for o in CAUGHT if not (by_tests_only and o == "killed by mypy"))
    judged = caught + sum(counts[o] for o in SURVIVED)
    return round(caught / judged, 4) if judged else None


def report(source: Path, work: Path, target: Target, diffs: bool = True) -> dict[str, Any]:
    """The run's figures: outcomes per file, the score, each survivor with its diff and explanation."""
    explained = explanations(source, target)
    files = {}
    survivors = []
    total = Counter[str]()
    for path, by_name in outcomes(work).items():
        if path not in target.files:
            continue
        counts = Counter(by_name.values())
        total.update(counts)
        files[path] = {"mutants": len(by_name), **dict(sorted(counts.items())), "score": _score(counts)}
        functions = _functions(work / "mutants" / path) if diffs else {}
        for name, outcome in sorted(by_name.items()):
            if outcome in SURVIVED:
                survivors.append({"name": name, "file": path, "outcome": outcome,
                                  "explained": explained.get(name),
                                  "diff": _diff(functions, name) if diffs else None})
    return {"target": target.name, "files": files, "total": dict(sorted(total.items())),
            "score": _score(total), "score_by_tests": _score(total, by_tests_only=True),
            "not_run": total["not run"], "survivors": survivors,
            "unexplained": [s["name"] for s in survivors if not s["explained"]]}


def _percent(score: float | None) -> str:
    return "n/a" if score is None else f"{score:.1%}"


def describe(doc: dict[str, Any]) -> str:
    """A short text summary of a report."""
    lines = [f"mutation testing of {doc['target']}:"]
    for path, counts in doc["files"].items():
        rest = ", ".join(f"{v} {k}" for k, v in counts.items() if k not in ("mutants", "score"))
        lines.append(f"  {path}: {counts['mutants']} mutants ({rest}); score {_percent(counts['score'])}")
    lines.append(f"  score {_percent(doc['score'])} (killed, by a test or by mypy, out of every mutant judged); "
                 f"{_percent(doc['score_by_tests'])} of the mutants mypy let through killed by the tests")
    if doc["not_run"]:
        lines.append(f"  {doc['not_run']} mutants not run yet: run the command again to resume")
    explained = len(doc["survivors"]) - len(doc["unexplained"])
    lines.append(f"  {len(doc['survivors'])} survivors, {explained} explained as equivalent, "
                 f"{len(doc['unexplained'])} neither killed nor explained")
    for name in doc["unexplained"][:20]:
        lines.append(f"    {name}")
    if len(doc["unexplained"]) > 20:
        lines.append(f"    ... and {len(doc['unexplained']) - 20} more (see the JSON report)")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """``smr mutation``: run mutmut over a target in its work directory, then report."""
    source = Path(args.source).resolve()
    target = TARGETS[args.target]
    work = Path(args.work or Path(default_root()) / "mutation" / target.name)
    work = work.resolve()
    if not args.report_only:
        prepare(source, work, target)
        command = [sys.executable, "-m", "mutmut", "run", "--max-children", str(args.jobs)]
        if args.retest_survivors:  # after new tests: mutmut keeps its verdicts on unchanged functions
            command += [name for by_name in outcomes(work).values() for name, outcome in by_name.items()
                        if outcome in SURVIVED]
        # pytest's temporary directories go under the work directory: another pytest run on the machine
        # cleaning up the shared one at the same moment would otherwise fail the clean run
        temproot = work / "tmp"
        temproot.mkdir(exist_ok=True)
        env = {**os.environ, "PYTEST_DEBUG_TEMPROOT": str(temproot)}
        done = subprocess.run(command, cwd=work, check=False, env=env,
                              stdout=None if args.progress else subprocess.DEVNULL)
        if done.returncode != 0:
            print(f"mutmut stopped with exit code {done.returncode} (work directory {work})", file=sys.stderr)
            return 2
    doc = report(source, work, target, diffs=not args.no_diffs)
    out = Path(args.out or work / f"mutation-{target.name}.json")
    out.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    print(describe(doc))
    print(f"wrote {out}")
    if not doc["files"]:
        print(f"no mutants of {', '.join(target.files)} in {work}: nothing was judged", file=sys.stderr)
        return 2
    return 1 if doc["unexplained"] or doc["not_run"] else 0


def register(sub: Any) -> None:
    """Add ``smr mutation`` to the command line."""
    p = sub.add_parser("mutation", help="mutation testing (mutmut) of the cores, sessions and server loop",
                       description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("target", choices=sorted(TARGETS),
                   help="; ".join(f"{t.name}: {t.description}" for t in TARGETS.values()))
    p.add_argument("--jobs", type=int_at_least(1), default=max(1, (os.cpu_count() or 1)), help="mutants tested at once")
    p.add_argument("--work", help="the work directory (default $SMR_RESULTS/mutation/TARGET); reused to resume")
    p.add_argument("--source", default=".", help="the source tree to copy (default: the current directory)")
    p.add_argument("--out", help="the JSON report (default WORK/mutation-TARGET.json)")
    p.add_argument("--report-only", action="store_true", help="report the work directory's results, run nothing")
    p.add_argument("--retest-survivors", action="store_true",
                   help="run the survivors of the last run again (after adding tests that may kill them)")
    p.add_argument("--no-diffs", action="store_true", help="leave each survivor's diff out of the report")
    p.add_argument("--progress", action="store_true", help="show mutmut's own progress")
    p.set_defaults(func=run)

