"""The shared YAML loader: every refusal names the file, the line and the field."""

from __future__ import annotations

import attrs
import cattrs
import pytest

from smr.errors import ConfigError
from smr.yamlfiles import line_of, structure_yaml


@attrs.frozen
class _Port:
    number: int


@attrs.frozen
class _Doc:
    name: str
    ports: tuple[_Port, ...] = ()
    source: str | None = None


_CONVERTER = cattrs.Converter(forbid_extra_keys=True)
_TEXT = "name: demo\nports:\n  - number: 1\n  - number: two\n"


def test_line_of_falls_back_to_the_nearest_enclosing_field() -> None:
    """A path the file does not spell out gets the line of the closest parent it does."""
    _, lines = structure_yaml("name: demo\nports:\n  - number: 1\n", "f.yaml", "doc", _Doc, _CONVERTER)
    assert line_of(lines, "$.ports[0].number") == 3
    assert line_of(lines, "$.ports[0].missing") == 3
    assert line_of(lines, "$.ports[5]") == 2
    assert line_of(lines, "$.nowhere") == 1


def test_a_bad_nested_value_names_file_line_and_field() -> None:
    """'two' is not an int: the error points at line 4, ports[1].number."""
    with pytest.raises(ConfigError) as info:
        structure_yaml(_TEXT, "f.yaml", "doc", _Doc, _CONVERTER)
    assert (info.value.file, info.value.line, info.value.field) == ("f.yaml", 4, "ports[1].number")


def test_an_unknown_key_and_a_loader_field_are_refused_where_they_are() -> None:
    """A typo'd key and a 'source' the loader owns are both errors with their own lines."""
    with pytest.raises(ConfigError) as typo:
        structure_yaml("name: demo\nprots: []\n", "f.yaml", "doc", _Doc, _CONVERTER)
    assert (typo.value.line, typo.value.field) == (2, "prots")
    with pytest.raises(ConfigError) as owned:
        structure_yaml("name: demo\nsource: x\n", "f.yaml", "doc", _Doc, _CONVERTER)
    assert (owned.value.line, owned.value.field) == (2, "source")


def test_a_document_that_is_not_a_mapping_is_refused_at_line_one() -> None:
    """A YAML list where a mapping belongs is a clear error, not a crash."""
    with pytest.raises(ConfigError, match="must be a YAML mapping") as info:
        structure_yaml("- a\n- b\n", "f.yaml", "doc", _Doc, _CONVERTER)
    assert info.value.line == 1
