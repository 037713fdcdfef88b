"""Reading YAML while remembering where every value came from.

Documents are composed into nodes with libyaml (when available), turned into plain Python data by
a small walker, and the root node is kept so that any path inside the document can be mapped back
to a line and column when (and only when) something must be reported there.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from runner.errors import Diagnostic

try:
    _Loader: type = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - pyyaml built without libyaml
    _Loader = yaml.SafeLoader

__all__ = ["Document", "Located", "read_documents"]

_STR = "tag:yaml.org,2002:str"
_MERGE = "tag:yaml.org,2002:merge"
_constructor = SafeConstructor()
_scalar_constructors = SafeConstructor.yaml_constructors


@dataclass(frozen=True)
class Located:
    """A line/column (1-based) in a file."""

    file: str
    line: int
    column: int


@dataclass
class Document:
    """One YAML document: its data, where it lives, and its node tree for positions."""

    file: str
    index: int
    data: Any
    node: Node

    def locate(self, path: Sequence[Any], *, key: bool = False) -> Located:
        """Position of the value at `path` (or of its key when `key`), else the nearest parent."""
        node = self.node
        key_node: Node | None = None
        for part in path:
            found = _child(node, part)
            if found is None:
                break
            key_node, node = found
        target = key_node if key and key_node is not None else node
        mark = target.start_mark
        return Located(self.file, mark.line + 1, mark.column + 1)


def _child(node: Node, part: Any) -> tuple[Node | None, Node] | None:
    if isinstance(node, MappingNode):
        for k, v in node.value:
            if isinstance(k, ScalarNode) and (k.value == part or k.value == str(part)):
                return k, v
        return None
    if isinstance(node, SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
        return None, node.value[part]
    return None


class _Walker:
    def __init__(self, file: str) -> None:
        self.file = file
        self.problems: list[Diagnostic] = []

    def build(self, node: Node) -> Any:
        if isinstance(node, ScalarNode):
            if node.tag == _STR:
                return node.value
            make = _scalar_constructors.get(node.tag)
            if make is None:
                return node.value
            return make(_constructor, node)
        if isinstance(node, SequenceNode):
            return [self.build(n) for n in node.value]
        if isinstance(node, MappingNode):
            out: dict[Any, Any] = {}
            for k, v in node.value:
                if k.tag == _MERGE:
                    merged = self.build(v)
                    for m in merged if isinstance(merged, list) else [merged]:
                        if isinstance(m, dict):
                            for mk, mv in m.items():
                                out.setdefault(mk, mv)
                    continue
                key = self.build(k)
                if isinstance(key, (list, dict)):
                    self._problem(k, "a mapping key must be a plain value")
                    continue
                if key in out:
                    self._problem(
                        k,
                        f"duplicate key {key!r}: the later value would silently win",
                        "remove one of the two entries",
                    )
                out[key] = self.build(v)
            return out
        return None  # pragma: no cover - every node is one of the three

    def _problem(self, node: Node, message: str, hint: str | None = None) -> None:
        m = node.start_mark
        self.problems.append(Diagnostic(message, self.file, m.line + 1, m.column + 1, hint))


def read_documents(file: str, text: str) -> tuple[list[Document], list[Diagnostic]]:
    """Parse every document in `text`; YAML errors become diagnostics, never exceptions."""
    docs: list[Document] = []
    walker = _Walker(file)
    # The collector costs ~1 s on a 10,000-task manifest while nothing can be garbage yet.
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        for i, node in enumerate(_compose_all(text)):
            if node is None:
                continue
            docs.append(Document(file, i, walker.build(node), node))
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        msg = f"invalid YAML: {e.problem or e.context}"
        if e.context and e.problem:
            msg = f"invalid YAML: {e.problem} ({e.context})"
        line, col = (mark.line + 1, mark.column + 1) if mark else (None, None)
        walker.problems.append(
            Diagnostic(msg, file, line, col, "check indentation, colons and quotes near here")
        )
    except yaml.YAMLError as e:
        walker.problems.append(Diagnostic(f"invalid YAML: {e}", file))
    except (RecursionError, ValueError, OverflowError) as e:
        walker.problems.append(Diagnostic(f"invalid YAML value: {e}", file))
    finally:
        if was_enabled:
            gc.enable()
    return docs, walker.problems


def _compose_all(text: str) -> Iterator[Node | None]:
    loader = _Loader(text)
    try:
        while loader.check_node():
            yield loader.get_node()
    finally:
        loader.dispose()
