"""Backends are plugins: a package outside this repository, declared by an entry point, reaches every command.

The plugin is written to a temporary directory as pip would install it: a
package ``smr_echo_plugin/`` and ``smr_echo_plugin-0.1.dist-info/`` whose
``entry_points.txt`` declares it in the ``smr.backends`` group.  The same file
also holds the import-weight claims: a protocol package loads no runtime, and
``import smr`` loads no protocol.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

import smr
from smr import registry
from smr.registry import BUILTIN_BACKENDS, BackendLoadError, BackendLoadWarning

ROOT = Path(__file__).resolve().parents[1]
PLUGIN = "echo-plugin"

PLUGIN_SOURCE = '''
"""A third-party smr backend: one node (the lowest id) orders every command; the others forward to it."""

from smr.backends.coordinator import CoordinatorCore
from smr.replica import Backend, ReplicaConfig


class LowestIdCore(CoordinatorCore):
    """The coordinator's log, with the lowest node id as the coordinator instead of the largest."""

    backend = "echo-plugin"

    def __init__(self, config: ReplicaConfig) -> None:
        super().__init__(config)
        self.coordinator = config.members[0]


BACKEND = Backend(name="echo-plugin", factory=LowestIdCore,
                  description="plugin: every command ordered by the lowest-id node (not fault tolerant)")
'''


def install_dist(site: Path, dist: str, package: str, source: str, entry_points: str) -> None:
    """Write ``package`` and a ``dist``-0.1.dist-info declaring ``entry_points``, as pip would."""
    (site / package).mkdir(parents=True)
    (site / package / "__init__.py").write_text(textwrap.dedent(source))
    info = site / f"{package}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(textwrap.dedent(entry_points))


@pytest.fixture(scope="module")
def plugin_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory holding the installed echo plugin (put it on the path to install it)."""
    site = tmp_path_factory.mktemp("site")
    install_dist(site, "smr-echo-plugin", "smr_echo_plugin", PLUGIN_SOURCE,
                 f"[smr.backends]\n{PLUGIN} = smr_echo_plugin:BACKEND\n")
    return site


@pytest.fixture(scope="module")
def broken_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory holding a plugin whose module fails on import."""
    site = tmp_path_factory.mktemp("broken")
    install_dist(site, "smr-broken-plugin", "smr_broken_plugin", 'raise ImportError("no such thing")\n',
                 "[smr.backends]\nbroken-plugin = smr_broken_plugin:BACKEND\n")
    return site


@pytest.fixture()
def installed(plugin_site: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Install the echo plugin in this process for one test."""
    monkeypatch.syspath_prepend(str(plugin_site))
    registry.forget_loaded()
    yield
    registry.forget_loaded()
    sys.modules.pop("smr_echo_plugin", None)


def run_smr(*args: str, sites: tuple[Path, ...] = ()) -> subprocess.CompletedProcess[str]:
    """Run the ``smr`` command line in a fresh interpreter with ``sites`` on its path."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([*map(str, sites), *filter(None, [env.get("PYTHONPATH")])])
    return subprocess.run([sys.executable, "-m", "smr", *args], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=600)


# ------------------------------------------------------------- the plugin
def test_smr_backends_lists_the_plugin_beside_the_built_ins(plugin_site: Path) -> None:
    done = run_smr("backends", "--json", sites=(plugin_site,))
    assert done.returncode == 0, done.stderr
    rows = {row["name"]: row for row in json.loads(done.stdout)}
    assert set(BUILTIN_BACKENDS) < set(rows)
    assert rows[PLUGIN]["origin"] == "plugin"
    assert rows[PLUGIN]["distribution"] == "smr-echo-plugin 0.1"
    assert rows[PLUGIN]["replicated_log"] is True
    assert rows[PLUGIN]["description"].startswith("plugin: every command ordered")
    assert rows["raft"]["origin"] == "built-in"
    text = run_smr("backends", sites=(plugin_site,)).stdout
    assert any(line.split()[:2] == [PLUGIN, "plugin"] for line in text.splitlines())


def test_the_plugin_runs_in_smr_compare_and_is_judged_linearizable(plugin_site: Path, tmp_path: Path) -> None:
    scenario = tmp_path / "short.yaml"
    scenario.write_text("name: short\nnodes: 3\nduration_ms: 400\nclients: {count: 3, workload: kv}\n")
    done = run_smr("compare", str(scenario), "--backends", f"{PLUGIN},coordinator", "--seeds", "1",
                   "--jobs", "1", "--no-plots", "--json", sites=(plugin_site,))
    assert done.returncode == 0, done.stderr
    cells = {cell["backend"]: cell for cell in json.loads(done.stdout)["cells"]}
    (run,) = cells[PLUGIN]["runs"]
    assert run["verdict"] == "linearizable"
    assert run["workload_problems"] == []
    assert run["ok"] > 0


def test_the_plugin_passes_a_conformance_cell_from_the_command_line(plugin_site: Path) -> None:
    done = run_smr("conformance", "no-faults", "--backends", PLUGIN, "--seeds", "1", "--json",
                   sites=(plugin_site,))
    assert done.returncode == 0, done.stdout + done.stderr
    assert '"as_expected": true' in done.stdout


def test_the_plugin_passes_a_conformance_cell_in_process(installed: None) -> None:
    from smr.conformance import builtin_catalogue, run_cell

    entry = next(e for e in builtin_catalogue() if e.name == "no-faults")
    report, _ = run_cell(entry, PLUGIN, seed=2)
    assert report.as_expected, report.describe()
    assert not report.judgement.failed
    assert PLUGIN in registry.backend_names(replicated_log_only=True)
    source = next(s for s in registry.backend_sources() if s.name == PLUGIN)
    assert (source.origin, source.target) == ("plugin", "smr_echo_plugin:BACKEND")


def test_a_plugin_that_fails_to_load_is_named_and_breaks_nothing_else(
        plugin_site: Path, broken_site: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(plugin_site))
    monkeypatch.syspath_prepend(str(broken_site))
    registry.forget_loaded()
    try:
        with pytest.raises(BackendLoadError) as caught:
            smr.get_backend("broken-plugin")
        message = str(caught.value)
        for part in ("'broken-plugin'", "smr_broken_plugin:BACKEND", "smr-broken-plugin 0.1", "no such thing"):
            assert part in message
        with pytest.warns(BackendLoadWarning, match="broken-plugin"):
            names = smr.backend_names(replicated_log_only=True)
        assert {"raft", "multipaxos", "coordinator", PLUGIN} <= set(names)
        assert "broken-plugin" not in names
    finally:
        registry.forget_loaded()
        sys.modules.pop("smr_echo_plugin", None)
    done = run_smr("backends", sites=(plugin_site, broken_site))
    assert done.returncode == 1
    lines = {line.split()[0]: line for line in done.stdout.splitlines()}
    assert "FAILED TO LOAD" in lines["broken-plugin"] and "no such thing" in lines["broken-plugin"]
    assert "FAILED" not in lines[PLUGIN] and "FAILED" not in lines["raft"]
    assert run_smr("sim", "--backend", PLUGIN, "--duration", "200", "--no-trace",
                   sites=(plugin_site, broken_site)).returncode == 0


def test_a_plugin_must_name_a_backend_of_its_own_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    install_dist(tmp_path, "smr-misnamed", "smr_misnamed",
                 "from smr.backends.coordinator import BACKEND as BACKEND\nNOT_A_BACKEND = 3\n",
                 "[smr.backends]\nmisnamed = smr_misnamed:BACKEND\nnot-one = smr_misnamed:NOT_A_BACKEND\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    registry.forget_loaded()
    try:
        with pytest.raises(BackendLoadError, match="named 'coordinator'; the names must match"):
            smr.get_backend("misnamed")
        with pytest.raises(BackendLoadError, match="is int, not an smr.replica.Backend"):
            smr.get_backend("not-one")
    finally:
        registry.forget_loaded()
        sys.modules.pop("smr_misnamed", None)


def test_a_plugin_cannot_take_a_built_in_name_and_is_shown_as_shadowed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    install_dist(tmp_path, "smr-impostor", "smr_impostor", "BACKEND = None\n",
                 "[smr.backends]\nraft = smr_impostor:BACKEND\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    registry.forget_loaded()
    try:
        assert smr.get_backend("raft").description.startswith("Raft (extended paper)")
        rafts = [s for s in registry.backend_sources() if s.name == "raft"]
        assert [(s.origin, s.where()) for s in rafts] == [("built-in", "built-in"),
                                                          ("shadowed", "shadowed (smr-impostor 0.1)")]
    finally:
        registry.forget_loaded()


# ------------------------------------------------------- the built-in table
def test_pyproject_declares_exactly_the_built_in_table() -> None:
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["entry-points"]["smr.backends"]
    assert declared == BUILTIN_BACKENDS


def test_every_built_in_loads_and_none_registers_itself_on_import() -> None:
    code = textwrap.dedent("""
        import importlib, sys
        from smr import registry
        for target in registry.BUILTIN_BACKENDS.values():
            importlib.import_module(target.split(":")[0])
        assert not registry._REGISTERED, registry._REGISTERED
        backends = registry.load_builtin_backends()
        assert [b.name for b in backends] == sorted(registry.BUILTIN_BACKENDS)
        print("ok")
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.stdout.strip() == "ok", done.stderr


def test_listing_backend_names_imports_no_protocol() -> None:
    code = ("import sys, smr; names = smr.backend_names(); "
            "print(sorted(m for m in ('raft', 'multipaxos', 'synod', 'smr.bench') if m in sys.modules), "
            "'raft' in names)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.stdout.split() == ["[]", "True"], done.stderr


def test_programmatic_registration_is_listed_and_wins() -> None:
    import probe_backend  # noqa: F401  (registers "probe")

    assert "probe" in smr.backend_names()
    assert smr.get_backend("probe").factory is probe_backend.ProbeCore
    assert any(s.name == "probe" and s.origin == "registered" for s in registry.backend_sources())


def test_an_unknown_backend_names_the_known_ones() -> None:
    with pytest.raises(smr.LocalProtocolError, match="unknown backend 'nope'; known: .*raft"):
        smr.get_backend("nope")


# ------------------------------------------------------------ import weight
HEAVY = ("trio", "yaml", "matplotlib", "cattrs")


def imported_by(statement: str) -> set[str]:
    """The top-level packages ``python -X importtime -c statement`` reports importing."""
    done = subprocess.run([sys.executable, "-X", "importtime", "-c", statement], capture_output=True,
                          text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr
    names = set()
    for line in done.stderr.splitlines():
        if line.startswith("import time:") and line.count("|") == 2:
            name = line.rsplit("|", 1)[1].strip()
            if name != "package":  # the header line
                names.add(name.split(".")[0])
    return names


@pytest.mark.parametrize("package", ["raft", "multipaxos", "synod.acceptor"])
def test_a_protocol_package_imports_no_runtime(package: str) -> None:
    """A sans-IO core needs neither trio, YAML, cattrs nor matplotlib to be imported."""
    loaded = imported_by(f"import {package}")
    assert package.split(".")[0] in loaded
    assert not loaded & set(HEAVY), sorted(loaded & set(HEAVY))


def test_import_smr_imports_no_protocol_and_no_runtime() -> None:
    loaded = imported_by("import smr")
    assert "smr" in loaded
    assert not loaded & {"raft", "multipaxos", "synod", *HEAVY}, sorted(loaded & {"raft", "multipaxos", *HEAVY})


def test_synod_acceptor_does_not_load_the_essay() -> None:
    code = ("import sys, synod.acceptor, synod.ballot; "
            "print(sorted(m for m in sys.modules if m.startswith(('synod.', 'smr.sim'))))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.stdout.strip() == "['synod.acceptor', 'synod.ballot', 'synod.messages']", done.stderr


def test_lazy_re_exports_still_resolve() -> None:
    import synod
    from smr import LocalCluster, SimConfig, open_local_cluster, simulate  # noqa: F401

    assert smr.SimConfig is SimConfig and smr.__version__
    assert callable(synod.judge) and synod.PaxosSynod.backend == "synod-paxos"
    with pytest.raises(AttributeError):
        smr.no_such_name  # noqa: B018
