"""YAML files into attrs classes, with every error naming the file, line and field.

Every config and scenario file goes through this one loader, which is strict
about what it reads:

* the file is at most :data:`MAX_FILE_BYTES` and UTF-8 (a bad byte is named
  by its offset and line);
* YAML is composed under bounds: nesting at most :data:`MAX_DEPTH` deep,
  aliases adding at most :data:`MAX_ALIAS_VALUES` values (a "billion laughs"
  file is refused while it is being read, in microseconds), an alias never
  refers to a value that contains it, at most :data:`MAX_VALUES` values in
  all; a duplicate key is an error naming both lines; an integer must fit in
  64 bits and a float must be finite;
* :func:`strict_converter` structures with cattrs without lax conversions:
  no bool as int, no float as int, no string as bool or number, no number as
  string.

:func:`structure_yaml` is the whole path for a config file: parse, refuse
fields the loader sets itself, structure, run the file type's own checks, and
report *every* problem found in one :class:`~smr.errors.ConfigError`: one
problem is one line (``f.yaml, line 3, field 'nodes': ...``), several are
listed one a line in file order (``f.yaml:3: nodes: ...``); the first one's
line and field are the error's attributes.  The pieces stay public for files
that check more first.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import attrs
import cattrs
import yaml
from cattrs.errors import ForbiddenExtraKeysError

from .errors import ConfigError

T = TypeVar("T")

#: Fields a loader fills in itself; a file that sets one is refused.
LOADER_FIELDS = {"source": "'source' is set by the loader, not the file"}

#: The largest config or scenario file read, in bytes.
MAX_FILE_BYTES = 1 << 20
#: The deepest nesting of mappings and lists (counting through aliases).
MAX_DEPTH = 64
#: The most values (scalars, lists, mappings, keys) one document may hold, aliases expanded.
MAX_VALUES = 100_000
#: The most values all the aliases of one document may add together.
MAX_ALIAS_VALUES = 10_000
#: Integers must fit in a signed 64-bit word.
INT_LIMIT = 1 << 63
#: The most problems one error message lists (the rest are counted).
MAX_REPORTED = 20


@attrs.frozen
class Problem:
    """One thing wrong with a file: where (``$.a.b[0]``, and the line if known better) and what."""

    path: str
    message: str
    line: int | None = None


class FieldErrors(ValueError):
    """Raised by a class's own checks: every (field, message) it found, fields relative to the class.

    A plain ValueError for Python callers; the file loader reports each one at its own field and line.
    """

    def __init__(self, problems: Sequence[tuple[str, str]]) -> None:
        self.problems = tuple(problems)
        super().__init__("; ".join(message for _, message in self.problems))


class _Refused(Exception):
    """The document cannot be read safely at all (too deep, too many aliases, a recursive alias)."""

    def __init__(self, message: str, line: int, path: str) -> None:
        super().__init__(message)
        self.line, self.path = line, path


# ------------------------------------------------------------------- the loader
#: Scalar keys of these types are read as the text they are written with.
_TEXT_KEY_TAGS = {f"tag:yaml.org,2002:{name}" for name in ("bool", "int", "float", "null")}


class _StrictLoader(yaml.SafeLoader):
    """A safe YAML loader that composes under bounds and remembers the line of every value."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.lines: dict[str, int] = {}
        self.problems: list[Problem] = []
        self._stack: list[str] = []  # paths of the collections being composed, outermost first
        self._shape: dict[int, tuple[int, int]] = {}  # id(node) -> (values, height) once composed
        self._path: dict[int, str] = {}  # id(node) -> its path, for errors found while constructing
        self._values = 0
        self._alias_values = 0
        self._current = "$"  # the path of the value the composer is waiting for

    # The scanner refuses deep nesting itself: it looks ahead up to 1,024 characters for a key,
    # and on 5,000 nested '[' that look-ahead is quadratic long before the composer sees a value.
    def fetch_flow_collection_start(self, TokenClass: Any) -> None:
        """Scan a '[' or '{', refusing one nested deeper than the bound."""
        if self.flow_level >= MAX_DEPTH:
            raise _Refused(f"values nested deeper than {MAX_DEPTH} levels", self.get_mark().line + 1,
                           self._current)
        super().fetch_flow_collection_start(TokenClass)

    def add_indent(self, column: int) -> bool:
        """Open a block level, refusing one nested deeper than the bound."""
        if len(self.indents) >= MAX_DEPTH:
            raise _Refused(f"values nested deeper than {MAX_DEPTH} levels", self.get_mark().line + 1,
                           self._current)
        return bool(super().add_indent(column))

    def _child_path(self, parent: yaml.Node | None, index: Any) -> str:
        if parent is None:
            return "$"
        if isinstance(index, int):
            return f"{self._stack[-1]}[{index}]"
        if isinstance(index, yaml.ScalarNode):
            return f"{self._stack[-1]}.{index.value}"
        return f"{self._stack[-1]}.?"  # a key, or a value under a key that is not a scalar

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        """Compose one node, refusing excessive depth, alias expansion and recursive aliases."""
        path = self._current = self._child_path(parent, index)
        event = self.peek_event()
        line = (index.start_mark if isinstance(index, yaml.Node) else event.start_mark).line + 1
        if index is not None or parent is None:  # a value, not a key
            self.lines[path] = line
        depth = len(self._stack) + 1
        if isinstance(event, yaml.AliasEvent):
            target = self.anchors.get(event.anchor)
            if target is not None:
                shape = self._shape.get(id(target))
                if shape is None:
                    raise _Refused(f"alias *{event.anchor} refers to a value that contains it", line, path)
                values, height = shape
                self._alias_values += values
                self._values += values
                if self._alias_values > MAX_ALIAS_VALUES:
                    raise _Refused(f"aliases expand to more than {MAX_ALIAS_VALUES} values "
                                   f"(at alias *{event.anchor})", line, path)
                if depth + height - 1 > MAX_DEPTH:
                    raise _Refused(f"alias *{event.anchor} nests values deeper than {MAX_DEPTH} levels",
                                   line, path)
                self._check_total(line, path)
            return super().compose_node(parent, index)
        if depth > MAX_DEPTH:
            raise _Refused(f"values nested deeper than {MAX_DEPTH} levels", line, path)
        self._values += 1
        self._check_total(line, path)
        self._stack.append(path)
        try:
            node = super().compose_node(parent, index)
        finally:
            self._stack.pop()
        if node is None:
            return None
        self._path[id(node)] = path
        children: list[yaml.Node] = []
        if isinstance(node, yaml.SequenceNode):
            children = node.value
        elif isinstance(node, yaml.MappingNode):
            children = [n for pair in node.value for n in pair]
        shapes = [self._shape[id(child)] for child in children]
        self._shape[id(node)] = (1 + sum(v for v, _ in shapes), 1 + max((h for _, h in shapes), default=0))
        return node

    def _check_total(self, line: int, path: str) -> None:
        if self._values > MAX_VALUES:
            raise _Refused(f"more than {MAX_VALUES} values in one file", line, path)

    def compose_mapping_node(self, anchor: Any) -> yaml.MappingNode:
        """Compose a mapping whose scalar keys are text; a key given twice is a problem naming both lines."""
        node: yaml.MappingNode = super().compose_mapping_node(anchor)
        seen: dict[str, int] = {}
        for key, _value in node.value:
            if not isinstance(key, yaml.ScalarNode) or key.tag == "tag:yaml.org,2002:merge":
                continue
            if key.tag in _TEXT_KEY_TAGS:  # `on:` is the field "on", not True; `1:` is "1"
                key.tag = "tag:yaml.org,2002:str"
            line = key.start_mark.line + 1
            first = seen.get(key.value)
            if first is None:
                seen[key.value] = line
            else:
                self.problems.append(Problem(f"{self._stack[-1]}.{key.value}",
                                             f"duplicate key {key.value!r} (first at line {first}); "
                                             "give each key once", line))
        return node

    def _problem(self, node: yaml.Node, message: str) -> None:
        self.problems.append(Problem(self._path.get(id(node), "$"), message, node.start_mark.line + 1))

    def construct_bounded_int(self, node: yaml.ScalarNode) -> int:
        """An integer that fits in 64 bits, or a problem (and 0 in its place)."""
        try:
            value = int(super().construct_yaml_int(node))
        except ValueError:
            self._problem(node, f"an integer of {len(node.value)} characters is out of range (64-bit)")
            return 0
        if not -INT_LIMIT <= value < INT_LIMIT:
            self._problem(node, f"{node.value} is out of range (64-bit integers)")
            return 0
        return value

    def construct_finite_float(self, node: yaml.ScalarNode) -> float:
        """A finite float, or a problem (the value is kept so the structure still type-checks)."""
        value = float(super().construct_yaml_float(node))
        if not math.isfinite(value):
            self._problem(node, f"{node.value} is not a finite number")
        return value


_StrictLoader.add_constructor("tag:yaml.org,2002:int", _StrictLoader.construct_bounded_int)
_StrictLoader.add_constructor("tag:yaml.org,2002:float", _StrictLoader.construct_finite_float)


@attrs.frozen
class YamlDocument:
    """A parsed document: its data, the line of every path (``$.a.b[0]``) and the problems found reading it."""

    data: Any
    lines: dict[str, int]
    problems: tuple[Problem, ...]


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def load_yaml(text: str, source: str) -> YamlDocument:
    """Parse one YAML document under the loader's bounds.

    Raises ConfigError naming ``source`` and the line (and the field, where
    there is one) if the text cannot be read safely: too large, bad YAML,
    nested too deep, aliases expanding too far.  Duplicate keys and numbers
    out of range are returned as problems, to be reported with the rest.
    """
    if len(text) > MAX_FILE_BYTES:
        raise ConfigError(f"larger than {MAX_FILE_BYTES} bytes", file=source)
    _refuse_unprintable(text, source)
    loader = _StrictLoader(text)
    try:
        root = loader.get_single_node()
        data = None if root is None else loader.construct_document(root)
    except _Refused as exc:
        # a path 64 levels deep helps nobody: name where it starts (the line says where it ends)
        outer = "".join(re.findall(r"\.[^.\[]+|\[[^\]]*\]", exc.path)[:3])
        raise ConfigError(str(exc), file=source, line=exc.line, field=_field("$" + outer)) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        reason = exc.problem or exc.context or "malformed"
        raise ConfigError(f"not valid YAML: {_one_line(reason)}", file=source,
                          line=None if mark is None else mark.line + 1) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"not valid YAML: {_one_line(str(exc))}", file=source) from None
    finally:
        loader.dispose()
    return YamlDocument(data, loader.lines, tuple(loader.problems))


#: Characters YAML does not allow in a document (as PyYAML's reader defines them).
_NON_PRINTABLE = re.compile("[^\x09\x0A\x0D\x20-\x7E\x85\xA0-\uD7FF\uE000-\uFFFD\U00010000-\U0010FFFF]")


def _refuse_unprintable(text: str, source: str) -> None:
    """Raise ConfigError naming the line of a character YAML does not allow (a control, a lone surrogate)."""
    found = _NON_PRINTABLE.search(text)
    if found is None:
        return
    at = found.start()
    line = text.count("\n", 0, at) + 1
    raise ConfigError(f"character U+{ord(text[at]):04X} at offset {at} is not allowed in YAML", file=source,
                      line=line, field=_field_on_line(text.replace(text[at], " "), line))


def load_yaml_value(text: str, source: str) -> Any:
    """Parse one YAML value (e.g. a command-line option) under the loader's bounds; ConfigError if refused."""
    doc = load_yaml(text, source)
    if doc.problems:
        raise problems_error(doc.problems, doc.lines, source)
    return doc.data


def _field(path: str) -> str | None:
    return path[2:] if path.startswith("$.") else (path[1:] if path.startswith("$[") else None)


def _field_on_line(text: str, line: int) -> str | None:
    """The most specific field starting on ``line`` (else the last one before it), if the text parses."""
    try:
        doc = load_yaml(text, "")
    except ConfigError:
        return None
    on = [p for p, n in doc.lines.items() if n == line]
    if not on:
        before = [n for n in doc.lines.values() if n < line]
        on = [p for p, n in doc.lines.items() if before and n == max(before)]
    return _field(max(on, key=len)) if on else None


# ------------------------------------------------------------------- strict types
def _shown(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, int) and value.bit_length() > 64:
        return f"an integer of {value.bit_length()} bits"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _kind(value: Any) -> str:
    names = {bool: "a bool", int: "an int", float: "a float", str: "a str", list: "a list", dict: "a mapping",
             type(None): "null"}
    return names.get(type(value), f"a {type(value).__name__}")


def _structure_int(value: Any, _type: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        if -INT_LIMIT <= value < INT_LIMIT:
            return value
        raise ValueError(f"{_shown(value)} is out of range (64-bit integers)")
    raise ValueError(f"expected an int, got {_shown(value)} ({_kind(value)})")


def _structure_float(value: Any, _type: Any) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        number = float(value)
        if math.isfinite(number):
            return number
        raise ValueError(f"{_shown(value)} is not a finite number")
    raise ValueError(f"expected a float, got {_shown(value)} ({_kind(value)})")


def _structure_bool(value: Any, _type: Any) -> bool:
    if isinstance(value, bool):
        return value
    raise ValueError(f"expected a bool (true or false), got {_shown(value)} ({_kind(value)})")


def _structure_str(value: Any, _type: Any) -> str:
    if isinstance(value, str):
        return value
    raise ValueError(f"expected a str, got {_shown(value)} ({_kind(value)}); quote it if it is text")


def strict_converter() -> cattrs.Converter:
    """A cattrs converter that refuses unknown keys and every lax conversion (bool as int, 1.5 as int,
    'no' as bool, 7 as str, a non-finite float)."""
    converter = cattrs.Converter(forbid_extra_keys=True)
    converter.register_structure_hook(int, _structure_int)
    converter.register_structure_hook(float, _structure_float)
    converter.register_structure_hook(bool, _structure_bool)
    converter.register_structure_hook(str, _structure_str)
    return converter


# ------------------------------------------------------------------- reporting
def _format_exception(exc: BaseException, type_: Any) -> str:
    if "not in literal" in str(exc):
        choices = ", ".join(repr(c) for c in getattr(type_, "__args__", ()))
        return f"unknown value {str(exc).split(' not in literal')[0]!r}; expected one of {choices}"
    if isinstance(exc, (ValueError, TypeError)) and str(exc) and type(exc) is not TypeError:
        return _one_line(str(exc))
    return cattrs.v.format_exception(exc, type_)


def _extra_field(path: str, key: str, cls: type) -> Problem:
    known = [f.name for f in attrs.fields(cls) if f.name not in LOADER_FIELDS] if attrs.has(cls) else []
    close = difflib.get_close_matches(key, known, n=1)
    hint = f"did you mean '{close[0]}'?" if close else f"known: {', '.join(known)}"
    return Problem(f"{path}.{key}", f"extra field '{key}' is not allowed ({hint})")


def structure_problems(exc: BaseException, path: str = "$", type_: Any = None) -> list[Problem]:
    """Every problem in a cattrs structuring error, each at its own path (``$.a.b[0]``)."""
    if isinstance(exc, ForbiddenExtraKeysError):
        return [_extra_field(path, str(key), exc.cl) for key in sorted(exc.extra_fields, key=str)]
    if isinstance(exc, FieldErrors):
        return [Problem(f"{path}.{field}" if field else path, _one_line(message)) for field, message in exc.problems]
    if isinstance(exc, (cattrs.ClassValidationError, cattrs.IterableValidationError)):
        found: list[Problem] = []
        with_notes, without = exc.group_exceptions()
        for sub, note in with_notes:
            if isinstance(note, cattrs.AttributeValidationNote):
                child = f"{path}.{note.name}"
            elif isinstance(note.index, int):
                child = f"{path}[{note.index}]"
            else:
                child = f"{path}.{note.index}"
            found += structure_problems(sub, child, note.type)
        for sub in without:
            found += structure_problems(sub, path, None)
        return found
    return [Problem(path, _format_exception(exc, type_))]


def line_of(lines: dict[str, int], path: str) -> int | None:
    """The line of ``path`` (``$.a.b[0]``), or of its nearest enclosing field that has one."""
    probe = re.sub(r"\['([^']*)'\]", r".\1", path)
    while probe not in lines and ("." in probe or "[" in probe):
        shorter = re.sub(r"(\.[^.\[]+|\[\d+\]|\['[^']*'\])$", "", probe)
        if shorter == probe:
            break  # nothing more can be stripped; report without a line
        probe = shorter
    return lines.get(probe)


def _under(path: str, prefix: str) -> bool:
    return path == prefix or path.startswith((prefix + ".", prefix + "["))


def problems_error(problems: Iterable[Problem], lines: dict[str, int], source: str) -> ConfigError:
    """One ConfigError for every problem, in file order: one problem as ``file, line L, field 'F': message``;
    several listed one per line as ``file:line: field: message`` (at most :data:`MAX_REPORTED`, the rest
    counted).  The error's line and field are the first problem's."""
    placed = [(p.line if p.line is not None else line_of(lines, p.path), _field(p.path), p.message)
              for p in dict.fromkeys(problems)]
    placed.sort(key=lambda problem: (problem[0] is None, problem[0] or 0))
    if len(placed) == 1:
        ((line, field, message),) = placed
        return ConfigError(message, file=source, line=line, field=field)
    shown = placed[:MAX_REPORTED]
    if len(placed) > MAX_REPORTED:
        shown.append((None, None, f"and {len(placed) - MAX_REPORTED} more problems"))
    return ConfigError.listing(source, shown)


def explain_structure_error(exc: Exception, lines: dict[str, int], source: str) -> ConfigError:
    """Turn a cattrs structuring error into a ConfigError naming file, line and field of every problem."""
    return problems_error(structure_problems(exc) or [Problem("$", _one_line(str(exc)))], lines, source)


# ------------------------------------------------------------------- files
def read_yaml_mapping(text: str, source: str, kind: str) -> tuple[dict[str, Any], dict[str, int]]:
    """Parse YAML that must be a mapping; return it with the line of every path (``$.a.b[0]``).

    Raises ConfigError naming ``source`` and the line for bad or unsafe YAML,
    duplicate keys, numbers out of range or a non-mapping.
    """
    doc = _mapping_document(text, source, kind)
    if doc.problems:
        raise problems_error(doc.problems, doc.lines, source)
    return doc.data, doc.lines


def _mapping_document(text: str, source: str, kind: str) -> YamlDocument:
    doc = load_yaml(text, source)
    data = {} if doc.data is None else doc.data
    if not isinstance(data, dict):
        raise ConfigError(f"a {kind} must be a YAML mapping", file=source, line=1)
    return attrs.evolve(doc, data=data)


def read_config_text(path: str | Path, kind: str) -> str:
    """Return the text of the ``kind`` file at ``path``, or raise ConfigError naming it.

    The file must be UTF-8 and at most :data:`MAX_FILE_BYTES` long; a bad
    byte is named by its offset, line and (where the rest parses) field.
    """
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"cannot read {kind}: {exc.strerror}", file=str(path)) from None
    if len(raw) > MAX_FILE_BYTES:
        raise ConfigError(f"a {kind} must be at most {MAX_FILE_BYTES} bytes", file=str(path))
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        field = _field_on_line(raw.decode("utf-8", errors="replace"), line)
        raise ConfigError(f"not UTF-8: byte 0x{raw[exc.start]:02x} at offset {exc.start}", file=str(path),
                          line=line, field=field) from None


def loader_field_problems(data: dict[str, Any], path: str = "$") -> list[Problem]:
    """A problem for every field of the mapping at ``path`` that the loader fills in itself (``source``)."""
    return [Problem(f"{path}.{key}", why) for key, why in LOADER_FIELDS.items() if key in data]


def refuse_loader_fields(data: dict[str, Any], lines: dict[str, int], source: str,
                         path: str = "$") -> None:
    """Raise ConfigError if the mapping at ``path`` sets a field the loader fills in (``source``)."""
    problems = loader_field_problems(data, path)
    if problems:
        raise problems_error(problems, lines, source)


Check = Callable[[T], Iterable[tuple[str, str]]]


def structure_checked(data: dict[str, Any], cls: type[T], converter: cattrs.Converter,
                      check: Check[T] | None = None) -> tuple[T, list[Problem]] | tuple[None, list[Problem]]:
    """Structure ``data`` into ``cls`` and run ``check`` on it; return it (None if the types fail) and
    every problem found.

    When some top-level fields fail, the others are structured again without
    them (the failed ones left at their defaults) until that succeeds, so the
    class's own checks (FieldErrors) on the remaining fields are reported too;
    then the check runs, and its findings under a failed field are dropped:
    type errors, the class's checks and cross-field errors come out together.
    """
    try:
        return _checked(converter.structure(data, cls), check, ())
    except (cattrs.BaseValidationError, ValueError, TypeError) as exc:
        problems = _structure_error_problems(exc)
    fields = attrs.fields_dict(cls) if attrs.has(cls) else {}
    required = {name for name, a in fields.items() if a.default is attrs.NOTHING}
    failed: set[str] = set()
    while True:
        newly = {_top_field(p.path) for p in problems if p.path.startswith("$.")} - failed
        if any(p.path == "$" for p in problems) or not newly or (failed | newly) & required:
            return None, problems
        failed |= newly
        try:
            partial = converter.structure({k: v for k, v in data.items() if k not in failed}, cls)
        except (cattrs.BaseValidationError, ValueError, TypeError) as exc:
            problems += [p for p in _structure_error_problems(exc) if p not in problems]
            continue
        _, more = _checked(partial, check, tuple(f"$.{name}" for name in failed))
        return None, problems + more


def _structure_error_problems(exc: BaseException) -> list[Problem]:
    return structure_problems(exc) or [Problem("$", _one_line(str(exc)))]


def _top_field(path: str) -> str:
    """The top-level field a path under ``$.`` is in (``$.clients.count`` -> ``clients``)."""
    return re.split(r"[.\[]", path[2:], maxsplit=1)[0]


def _checked(obj: T, check: Check[T] | None, skip: tuple[str, ...]) -> tuple[T, list[Problem]]:
    found = [] if check is None else [Problem(path, _one_line(message)) for path, message in check(obj)]
    return obj, [p for p in found if not any(_under(p.path, s) for s in skip)]


def structure_yaml(text: str, source: str, kind: str, cls: type[T], converter: cattrs.Converter,
                   check: Check[T] | None = None) -> tuple[T, dict[str, int]]:
    """Parse YAML text into ``cls`` through ``converter``; return it with the line of every path.

    ``check`` returns (path, message) for every rule the types cannot
    express.  Raises one ConfigError naming ``source`` and, for every problem
    found (bad YAML, a non-mapping, a duplicate key, a loader-only field,
    anything the converter refuses, anything ``check`` finds), its line and field.
    """
    doc = _mapping_document(text, source, kind)
    problems = list(doc.problems) + loader_field_problems(doc.data)
    data = {k: v for k, v in doc.data.items() if k not in LOADER_FIELDS}
    obj, more = structure_checked(data, cls, converter, check)
    # a value already refused while reading (out of range, duplicated) is not reported twice
    problems += [p for p in more if not any(_under(p.path, q.path) for q in doc.problems)]
    if problems or obj is None:
        raise problems_error(problems or [Problem("$", "cannot be structured")], doc.lines, source)
    return obj, doc.lines
