"""YAML files into attrs classes, with every error naming the file, line and field.

:func:`structure_yaml` is the whole path for a config file: parse the YAML
(remembering the line of every mapping value and list item), insist on a
mapping, refuse fields the loader sets itself, and structure the data through
a cattrs converter, turning any failure into a :class:`~smr.errors.ConfigError`
that says where.  The pieces stay public for files that check more first.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, TypeVar

import cattrs
import yaml

from .errors import ConfigError

T = TypeVar("T")

#: Fields a loader fills in itself; a file that sets one is refused.
LOADER_FIELDS = {"source": "'source' is set by the loader, not the file"}


class _LineLoader(yaml.SafeLoader):
    """A YAML loader that remembers the line of every mapping value and list item."""


def _load_with_lines(text: str) -> tuple[Any, dict[str, int]]:
    lines: dict[str, int] = {}
    root = yaml.compose(text, Loader=_LineLoader)
    if root is None:
        return {}, lines

    def walk(node: yaml.Node, path: str) -> None:
        lines.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                child = f"{path}.{key_node.value}"
                lines[child] = key_node.start_mark.line + 1
                walk(value_node, child)
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                walk(item, f"{path}[{i}]")

    walk(root, "$")
    return yaml.safe_load(text), lines


def _format_exception(exc: BaseException, type_: Any) -> str:
    if "not in literal" in str(exc):
        choices = ", ".join(repr(c) for c in getattr(type_, "__args__", ()))
        return f"unknown value {str(exc).split(' not in literal')[0]!r}; expected one of {choices}"
    if isinstance(exc, (ValueError, TypeError)) and str(exc) and type(exc) is not TypeError:
        return str(exc)
    return cattrs.v.format_exception(exc, type_)


_PATH_RE = re.compile(r"@ (\$[^\s]*)")


def line_of(lines: dict[str, int], path: str) -> int | None:
    """The line of ``path`` (``$.a.b[0]``), or of its nearest enclosing field that has one."""
    probe = path
    while probe not in lines and ("." in probe or "[" in probe):
        shorter = re.sub(r"(\.[^.\[]+|\[\d+\]|\['[^']*'\])$", "", probe)
        if shorter == probe:
            break  # nothing more can be stripped; report without a line
        probe = shorter
    return lines.get(probe)


def explain_structure_error(exc: Exception, lines: dict[str, int], source: str) -> ConfigError:
    """Turn a cattrs structuring error into a ConfigError naming file, line and field."""
    if isinstance(exc, cattrs.BaseValidationError):
        messages = cattrs.transform_error(exc, format_exception=_format_exception)
    else:
        messages = [str(exc)]
    first = messages[0]
    match = _PATH_RE.search(first)
    path = match.group(1) if match else "$"
    line = line_of(lines, path)
    field = path[2:] if path.startswith("$.") else None
    reason = _PATH_RE.sub("", first).strip()
    if "extra fields" in reason.lower():
        extra = [x.strip() for x in re.findall(r"\(([^)]+)\)", reason)[0].split(",")]
        if extra:
            field = f"{field}.{extra[0]}" if field else extra[0]
            line = lines.get(f"{path}.{extra[0]}", line)
    return ConfigError(reason, file=source, line=line, field=field)


def read_yaml_mapping(text: str, source: str, kind: str) -> tuple[dict[str, Any], dict[str, int]]:
    """Parse YAML that must be a mapping; return it with the line of every path (``$.a.b[0]``).

    Raises ConfigError naming ``source`` and the line for bad YAML or a non-mapping.
    """
    try:
        data, lines = _load_with_lines(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise ConfigError(f"not valid YAML: {getattr(exc, 'problem', exc)}", file=source,
                          line=None if mark is None else mark.line + 1) from None
    if not isinstance(data, dict):
        raise ConfigError(f"a {kind} must be a YAML mapping", file=source, line=1)
    return data, lines


def read_config_text(path: str | Path, kind: str) -> str:
    """Return the UTF-8 text of the ``kind`` file at ``path``, or raise ConfigError naming it."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read {kind}: {exc.strerror}", file=str(path)) from None


def refuse_loader_fields(data: dict[str, Any], lines: dict[str, int], source: str,
                         path: str = "$") -> None:
    """Raise ConfigError if the mapping at ``path`` sets a field the loader fills in (``source``)."""
    for key, why in LOADER_FIELDS.items():
        if key in data:
            field = f"{path}.{key}"
            raise ConfigError(why, file=source, line=lines.get(field), field=field[2:])


def structure_yaml(text: str, source: str, kind: str, cls: type[T],
                   converter: cattrs.Converter) -> tuple[T, dict[str, int]]:
    """Parse YAML text into ``cls`` through ``converter``; return it with the line of every path.

    Raises ConfigError naming ``source``, the line and the field for bad YAML,
    a non-mapping, a loader-only field or anything the converter refuses.
    """
    data, lines = read_yaml_mapping(text, source, kind)
    refuse_loader_fields(data, lines, source)
    try:
        return converter.structure(data, cls), lines
    except (cattrs.BaseValidationError, ValueError, TypeError) as exc:
        raise explain_structure_error(exc, lines, source) from None
