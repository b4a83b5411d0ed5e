"""The results store: every campaign run in its own directory, with what produced it.

A run of ``smr compare``, ``smr fuzz``, ``smr experiment election`` or
``smr conformance`` writes ``<root>/<UTC time>-<command>/`` (``root``
defaults to ``smr-results``, or ``$SMR_RESULTS``) and never overwrites an
earlier one.  Each holds ``run.json`` (the command line, the settings, the
version and git commit, the status and the outputs), ``inputs/`` (copies of
the scenario files the run read, so it can be re-run exactly), the outputs
(tables, JSON, figures) and ``histories/`` (client histories of failing or
sampled runs).  ``<root>/latest`` links to the newest.  ``smr results list``
and ``smr results show ID`` read them back.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shlex
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from .errors import LocalProtocolError

RUN_FILE = "run.json"


def default_root() -> str:
    """The results root: ``$SMR_RESULTS`` when set, else ``smr-results``."""
    return os.environ.get("SMR_RESULTS") or "smr-results"


class ResultRun:
    """One run's directory: create it, record inputs and outputs, mark how it ended."""

    def __init__(self, root: Path | str, command: str, argv: Sequence[str], settings: dict[str, Any]) -> None:
        from .campaign import provenance

        root = Path(root)
        root.mkdir(parents=True, exist_ok=True)
        now = datetime.datetime.now(datetime.timezone.utc)
        stamp = now.strftime("%Y%m%dT%H%M%S.%fZ")
        for attempt in range(1000):
            name = f"{stamp}-{command}" + (f"-{attempt}" if attempt else "")
            try:
                (root / name).mkdir()
            except FileExistsError:
                continue
            break
        else:  # pragma: no cover -- a thousand runs in one microsecond
            raise LocalProtocolError(f"cannot make a new run directory in {root}")
        self.root, self.id, self.path = root, name, root / name
        self.record: dict[str, Any] = {
            "id": name, "command": command, "command_line": shlex.join(["smr", *argv]),
            "argv": list(argv), "settings": settings, **provenance(),
            "started_utc": now.isoformat(timespec="seconds"), "status": "running", "inputs": {},
            "outputs": []}
        self._save()
        _link_latest(root, name)

    def _save(self) -> None:
        text = json.dumps(self.record, indent=2, sort_keys=True, default=str) + "\n"
        (self.path / RUN_FILE).write_text(text, encoding="utf-8")

    def keep_input(self, source: Path, name: str | None = None) -> Path:
        """Copy the input file ``source`` into ``inputs/`` and return the copy's path."""
        copy = self.path / "inputs" / (name or source.name)
        copy.parent.mkdir(exist_ok=True)
        text = source.read_text(encoding="utf-8")
        copy.write_text(text, encoding="utf-8")
        self.record["inputs"][str(source)] = str(copy.relative_to(self.path))
        self._save()
        return copy

    def keep_history(self, name: str, history: Iterable[Any]) -> Path:
        """Write a run's client history to ``histories/<name>.jsonl`` and return its path."""
        from .history import dump_history

        path = self.path / "histories" / f"{name}.jsonl"
        path.parent.mkdir(exist_ok=True)
        with path.open("w", encoding="utf-8") as out:
            dump_history(history, out)
        return path

    def note(self, **fields: Any) -> None:
        """Record more about the run in ``run.json`` (e.g. the seeds, the command that re-runs it)."""
        self.record.update(fields)
        self._save()

    def finish(self, status: str, exit_code: int, outputs: Iterable[Path | str] = ()) -> None:
        """Mark the run ``complete``, ``stopped`` or ``failed`` and list its outputs."""
        self.record["outputs"] = sorted({*self.record["outputs"],
                                         *(str(Path(p).relative_to(self.path)) if Path(p).is_relative_to(
                                             self.path) else str(p) for p in outputs)})
        self.record.update(status=status, exit_code=exit_code,
                           finished_utc=datetime.datetime.now(datetime.timezone.utc).isoformat(
                               timespec="seconds"))
        self._save()


def add_results_argument(parser: argparse.ArgumentParser, flag: str = "--results") -> None:
    """Add the option naming the results root to a command's parser."""
    parser.add_argument(flag, dest="results", default=default_root(), metavar="DIR",
                        help="the results root; this run writes its own new directory in it "
                             "(default smr-results, or $SMR_RESULTS)")


def open_run(args: argparse.Namespace, command: str, settings: dict[str, Any],
             root: str | Path | None = None) -> ResultRun:
    """A new run directory for ``command`` under ``root`` (else ``args.results``), recording its command line."""
    argv = getattr(args, "argv", None)
    return ResultRun(root if root is not None else args.results, command,
                     argv if argv is not None else [command], settings)


def _link_latest(root: Path, name: str) -> None:
    link = root / "latest"
    temporary = root / f".latest-{os.getpid()}"
    try:
        if temporary.is_symlink():
            temporary.unlink()
        temporary.symlink_to(name, target_is_directory=True)
        os.replace(temporary, link)
    except OSError:  # a file system without symbolic links: the run is still there
        pass


def list_runs(root: Path | str) -> list[dict[str, Any]]:
    """Every run under ``root``, oldest first, as recorded in its ``run.json``."""
    runs = []
    base = Path(root)
    if not base.is_dir():
        return []
    for entry in sorted(base.iterdir()):
        record_file = entry / RUN_FILE
        if entry.is_symlink() or not record_file.is_file():
            continue
        try:
            runs.append(json.loads(record_file.read_text(encoding="utf-8")))
        except (OSError, ValueError):
            runs.append({"id": entry.name, "status": "unreadable run.json"})
    return runs


def find_run(root: Path | str, run_id: str) -> Path:
    """The directory of run ``run_id`` (a full id, a unique prefix, or ``latest``)."""
    base = Path(root)
    if (base / run_id / RUN_FILE).is_file():
        return (base / run_id).resolve()
    matches = [r["id"] for r in list_runs(base) if str(r.get("id", "")).startswith(run_id)]
    if len(matches) != 1:
        raise LocalProtocolError(f"no run {run_id!r} under {base}" if not matches else
                                 f"{run_id!r} matches {len(matches)} runs under {base}; give more of the id")
    return base / matches[0]


def cmd_results(args: argparse.Namespace) -> int:
    """List the stored runs, or show one run's record and files."""
    from .output import print_json

    if args.action == "list":
        runs = list_runs(args.root)
        if args.json:
            print_json(runs)
            return 0
        for r in runs:
            print(f"{r.get('id', '?'):40s} {r.get('status', '?'):9s} {r.get('commit') or '-':12.12s} "
                  f"{r.get('command_line', '')}")
        if not runs:
            print(f"no runs under {args.root}")
        return 0
    path = find_run(args.root, args.id)
    record = json.loads((path / RUN_FILE).read_text(encoding="utf-8"))
    files = sorted(str(p.relative_to(path)) for p in path.rglob("*") if p.is_file())
    if args.json:
        print_json({**record, "path": str(path), "files": files})
        return 0
    for key in ("id", "status", "exit_code", "command_line", "rerun", "version", "commit", "started_utc",
                "finished_utc"):
        if record.get(key) is not None:
            print(f"{key:13s} {record[key]}")
    print(f"{'settings':13s} {json.dumps(record.get('settings', {}), sort_keys=True, default=str)}")
    print(f"files in {path}:")
    for name in files:
        print(f"  {name}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``smr results list`` and ``smr results show ID`` to the ``smr`` command line."""
    p = subparsers.add_parser("results", help="list stored runs or show one (smr-results/)",
                              description="Every compare, fuzz, experiment and conformance run writes its own "
                                          "directory under the results root; list them or show one.")
    sub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = sub.add_parser("list", help="every stored run, oldest first",
                             description="List the runs stored under the results root, oldest first: one "
                                         "line per run with its id, status, commit and command line.")
    show = sub.add_parser("show", help="one run's record and files",
                          description="Print one stored run's record (command line, the command that "
                                      "reruns it, status, version, commit, times, settings) and the files "
                                      "in its directory.")
    show.add_argument("id", help="a run id, a unique prefix of one, or latest")
    for q in (listing, show):
        q.add_argument("--root", default=default_root(), help="the results root (default smr-results, or "
                                                               "$SMR_RESULTS)")
        q.add_argument("--json", action="store_true", help="print one JSON document")
    p.set_defaults(func=cmd_results)
