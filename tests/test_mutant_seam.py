"""Mutants sit behind one seam: each is a subclass of the correct core overriding exactly one rule.

The same checks for every backend whose broken variants live in a ``mutants``
module (``raft.mutants``, ``multipaxos.mutants``), so the protocol files hold
only the correct rules.
"""

from __future__ import annotations

import importlib
import random
from types import ModuleType
from typing import Any

import attrs
import pytest

from smr.errors import LocalProtocolError
from smr.replica import ReplicaConfig
from smr.state_machines import KVStore

#: (package, correct core class, options class, one mutant option and its class name).
SEAMS = [
    ("raft", "RaftCore", "RaftOptions", "mutant_forget_vote", "ForgetVote"),
    ("multipaxos", "MultiPaxosCore", "MultiPaxosOptions", "mutant_forget_promise", "ForgetPromise"),
]
CASES = [(seam, option) for seam in SEAMS
         for option in sorted(importlib.import_module(f"{seam[0]}.mutants").MUTANTS)]


def _config(**options: object) -> ReplicaConfig:
    return ReplicaConfig("n1", ("n2", "n3"), random.Random(0), KVStore, options)


def _parts(seam: tuple[str, ...]) -> tuple[ModuleType, Any, Any]:
    package = importlib.import_module(seam[0])
    return importlib.import_module(f"{seam[0]}.mutants"), getattr(package, seam[1]), getattr(package, seam[2])


@pytest.mark.parametrize(("seam", "option"), CASES, ids=[f"{s[0]}-{o}" for s, o in CASES])
def test_each_mutant_is_a_subclass_that_overrides_exactly_one_rule(seam: tuple[str, ...], option: str) -> None:
    """The protocol file holds only the correct rules; a mutant replaces one of them and nothing else."""
    mutants, core_class, _ = _parts(seam)
    core = mutants.build(_config(**{option: True}))
    cls = type(core)
    assert cls is mutants.MUTANTS[option] and cls.__bases__ == (core_class,)
    overridden = [name for name, value in vars(cls).items() if callable(value)]
    assert len(overridden) == 1 and hasattr(core_class, overridden[0]), overridden
    assert core.opts.mutants == (option,)


@pytest.mark.parametrize("seam", SEAMS, ids=[s[0] for s in SEAMS])
def test_every_mutant_option_has_its_class_and_the_default_build_is_correct(seam: tuple[str, ...]) -> None:
    mutants, core_class, options_class = _parts(seam)
    assert set(mutants.MUTANTS) == {f.name for f in attrs.fields(options_class) if f.name.startswith("mutant_")}
    assert type(mutants.build(_config())) is core_class


@pytest.mark.parametrize("seam", SEAMS, ids=[s[0] for s in SEAMS])
def test_the_correct_core_refuses_mutant_options(seam: tuple[str, ...]) -> None:
    """A config that asks for a mutant never silently runs the correct protocol (nor the reverse)."""
    mutants, core_class, _ = _parts(seam)
    option, class_name = seam[3], seam[4]
    with pytest.raises(LocalProtocolError, match=rf"{seam[0]}\.mutants\.build"):
        core_class(_config(**{option: True}))
    with pytest.raises(LocalProtocolError, match=class_name):
        mutants.MUTANTS[option](_config())
