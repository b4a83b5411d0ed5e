"""The shared YAML loader: every refusal names the file, the line and the field."""

from __future__ import annotations

import attrs
import cattrs
import pytest

from smr.errors import ConfigError
from smr.yamlfiles import FieldErrors, line_of, load_yaml_value, strict_converter, structure_yaml


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


@attrs.frozen
class _Typed:
    count: int = 1
    ratio: float = 0.5
    on: bool = True
    label: str = "x"
    maybe: float | None = None

    def __attrs_post_init__(self) -> None:
        problems = [(name, f"{name} must not be negative") for name in ("count", "ratio")
                    if getattr(self, name) < 0]
        if problems:
            raise FieldErrors(problems)


_STRICT = strict_converter()


@pytest.mark.parametrize(("value", "field", "words"), [
    ("count: true", "count", "expected an int, got true (a bool)"),
    ("count: 2.0", "count", "expected an int, got 2.0 (a float)"),
    ("count: '2'", "count", "expected an int, got '2' (a str)"),
    ("ratio: '0.5'", "ratio", "expected a float, got '0.5' (a str)"),
    ("ratio: false", "ratio", "expected a float, got false (a bool)"),
    ("ratio: -.inf", "ratio", "-.inf is not a finite number"),
    ("on: 1", "on", "expected a bool (true or false), got 1 (an int)"),
    ("on: 'yes'", "on", "expected a bool (true or false), got 'yes' (a str)"),
    ("label: 1.10", "label", "expected a str, got 1.1 (a float)"),
    ("maybe: .nan", "maybe", ".nan is not a finite number"),
])
def test_the_strict_converter_refuses_every_lax_conversion(value: str, field: str, words: str) -> None:
    """YAML's loose scalars never become a different type silently."""
    with pytest.raises(ConfigError) as info:
        structure_yaml(f"{value}\n", "f.yaml", "doc", _Typed, _STRICT)
    assert (info.value.line, info.value.field) == (1, field) and words in str(info.value), str(info.value)


def test_the_strict_converter_keeps_what_is_exact() -> None:
    """An int where a float belongs is exact, so it is kept (as a float); YAML's own booleans are bools."""
    typed, _ = structure_yaml("count: 3\nratio: 1\non: no\nlabel: '7'\nmaybe: null\n", "f.yaml", "doc",
                              _Typed, _STRICT)
    assert typed == _Typed(3, 1.0, False, "7", None) and isinstance(typed.ratio, float)


def test_a_class_reports_each_of_its_own_checks_at_its_field() -> None:
    """FieldErrors from a class's own checks become one problem per field, each with its line."""
    with pytest.raises(ConfigError) as info:
        structure_yaml("label: y\ncount: -1\nratio: -2\n", "f.yaml", "doc", _Typed, _STRICT)
    assert (info.value.line, info.value.field) == (2, "count")
    assert "\n  f.yaml:3: ratio: ratio must not be negative" in str(info.value)
    with pytest.raises(ValueError, match="count must not be negative; ratio must not be negative"):
        _Typed(count=-1, ratio=-1)


def test_cross_field_checks_run_beside_type_errors() -> None:
    """A check still runs on the fields that structured, and reports nothing about the failed ones."""
    def check(doc: _Typed) -> list[tuple[str, str]]:
        return [("$.label", "label must be 'x'")] if doc.label != "x" else []

    with pytest.raises(ConfigError) as info:
        structure_yaml("count: yes\nlabel: y\n", "f.yaml", "doc", _Typed, _STRICT, check)
    assert (info.value.line, info.value.field) == (1, "count")
    assert "\n  f.yaml:2: label: label must be 'x'" in str(info.value)


def test_a_class_check_is_reported_beside_a_type_error() -> None:
    """A field of the wrong type no longer hides the class's own checks on the other fields."""
    with pytest.raises(ConfigError) as info:
        structure_yaml("count: -1\nlabel: 7\nratio: -2\n", "f.yaml", "doc", _Typed, _STRICT)
    assert str(info.value).splitlines() == [
        "f.yaml: 3 problems:",
        "  f.yaml:1: count: count must not be negative",
        "  f.yaml:2: label: expected a str, got 7 (an int); quote it if it is text",
        "  f.yaml:3: ratio: ratio must not be negative"]


def test_a_single_value_goes_through_the_same_bounds() -> None:
    """Command-line values (smr sim --option k=v) are parsed by the same loader."""
    assert load_yaml_value("{a: [1, 2]}", "--option x") == {"a": [1, 2]}
    with pytest.raises(ConfigError, match=r"--option x, line 1, field 'a': duplicate key 'a'"):
        load_yaml_value("{a: 1, a: 2}", "--option x")
    with pytest.raises(ConfigError, match="nested deeper than"):
        load_yaml_value("[" * 100 + "]" * 100, "--option x")
