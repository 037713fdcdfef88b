"""Reading YAML while remembering where every value came from.

Documents are composed into nodes with libyaml (when available), turned into plain Python data by
a small walker, and the root node is kept so that any path inside the document can be mapped back
to a line and column when (and only when) something must be reported there.
"""

from __future__ import annotations

import gc
import re
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
    text: str = ""  # the whole file, to find a spot inside a multi-line or quoted string

    def locate(self, path: Sequence[Any], *, key: bool = False) -> Located:
        """Position of the value at `path` (or of its key when `key`), else the nearest parent."""
        node, key_node = self._find(path)
        target = key_node if key and key_node is not None else node
        mark = target.start_mark
        return Located(self.file, mark.line + 1, mark.column + 1)

    def locate_in(self, path: Sequence[Any], offset: int) -> Located:
        """Position of character `offset` of the string at `path`, in any YAML style.

        Quoting, folding and indentation change the text between source and value, but not a
        run like `$<`: its n-th occurrence in the value is its n-th occurrence in the source.
        """
        node, _ = self._find(path)
        start = self.locate(path)
        if not isinstance(node, ScalarNode) or not 0 <= offset < len(node.value):
            return start
        value = node.value
        needle = value[offset : offset + 2] if value.startswith("$<", offset) else value[offset]
        nth = _count(value, needle, offset)
        source = self.text[node.start_mark.index : node.end_mark.index]
        at = -1
        for _ in range(nth + 1):
            at = source.find(needle, at + 1)
            if at < 0:
                return start
        absolute = node.start_mark.index + at
        line = self.text.count("\n", 0, absolute) + 1
        return Located(self.file, line, absolute - self.text.rfind("\n", 0, absolute))

    def _find(self, path: Sequence[Any]) -> tuple[Node, Node | None]:
        node = self.node
        key_node: Node | None = None
        for part in path:
            found = _child(node, part)
            if found is None:
                break
            key_node, node = found
        return node, key_node


def _count(text: str, needle: str, end: int) -> int:
    """Occurrences of `needle` in `text[:end]`, found left to right as `str.find` does."""
    n, at = 0, text.find(needle)
    while 0 <= at < end:
        n += 1
        at = text.find(needle, at + 1)
    return n


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
    """Builds plain data from nodes, reporting what PyYAML would raise (or hide) as problems."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.problems: list[Diagnostic] = []
        # An alias is the same node as its anchor: build it once, as PyYAML does, so that
        # nested aliases ("billion laughs") cost memory linear in the text.
        self._built: dict[int, Any] = {}
        self._open: set[int] = set()

    def document(self, node: Node) -> Any:
        """Plain data of one document's root node."""
        self._built.clear()
        return self.build(node)

    def build(self, node: Node) -> Any:
        if isinstance(node, ScalarNode):
            return self._scalar(node)
        key = id(node)
        if key in self._built:
            return self._built[key]
        if key in self._open:
            self._problem(
                node,
                "an alias refers to the value that contains it, which would never end",
                "use the alias outside of its anchored value",
            )
            return None
        self._open.add(key)
        try:
            value = self._collection(node)
        finally:
            self._open.discard(key)
        self._built[key] = value
        return value

    def _scalar(self, node: ScalarNode) -> Any:
        if "\x00" in node.value:
            # no command, path or environment variable can hold one: the OS cuts or refuses it
            self._problem(node, "a value cannot contain a NUL character ('\\0')")
            return None
        if node.tag == _STR:
            return node.value
        if node.tag in _COLLECTION_TAGS:
            self._problem(node, f"the tag {_short_tag(node.tag)} needs a list or mapping here")
            return None
        make = _scalar_constructors.get(node.tag)
        if make is None:
            return node.value
        try:
            return make(_constructor, node)
        except _CONSTRUCTOR_ERRORS:
            # an explicit tag on text that does not fit it, like `!!bool maybe`
            self._problem(node, f"{node.value!r} is not a valid {_short_tag(node.tag)} value")
            return None

    def _collection(self, node: Node) -> Any:
        if isinstance(node, SequenceNode):
            return [self.build(n) for n in node.value]
        if isinstance(node, MappingNode):
            out: dict[Any, Any] = {}
            written: set[Any] = set()  # keys written here; merged ones may be overridden
            for k, v in node.value:
                if k.tag == _MERGE:
                    self._merge(out, v)
                    continue
                key = self.build(k)
                if isinstance(key, (list, dict)):
                    self._problem(k, "a mapping key must be a plain value")
                    continue
                if key in written:
                    self._problem(
                        k,
                        f"duplicate key {key!r}: the later value would silently win",
                        "remove one of the two entries",
                    )
                written.add(key)
                out[key] = self.build(v)
            return out
        return None  # pragma: no cover - every node is one of the three

    def _merge(self, out: dict[Any, Any], node: Node) -> None:
        """`<<: *base` (or a list of them): keys not written yet are taken from the merged."""
        merged = self.build(node)
        for m in merged if isinstance(merged, list) else [merged]:
            if not isinstance(m, dict):
                self._problem(node, "'<<' merges a mapping or a list of mappings")
                return
            for mk, mv in m.items():
                out.setdefault(mk, mv)

    def _problem(self, node: Node, message: str, hint: str | None = None) -> None:
        m = node.start_mark
        self.problems.append(Diagnostic(message, self.file, m.line + 1, m.column + 1, hint))


_COLLECTION_TAGS = {f"tag:yaml.org,2002:{t}" for t in ("seq", "map", "set", "omap", "pairs")}
# what YAML allows in a stream; anything else is the first thing its reader rejects
_NOT_PRINTABLE = re.compile(
    "[^\x09\x0a\x0d\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]"
)
_CONSTRUCTOR_ERRORS = (
    yaml.YAMLError,
    ValueError,
    KeyError,
    IndexError,
    AttributeError,
    TypeError,
    OverflowError,
)


def _short_tag(tag: str) -> str:
    return "!!" + tag.removeprefix("tag:yaml.org,2002:")


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
            docs.append(Document(file, i, walker.document(node), node, text))
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        msg = f"invalid YAML: {e.problem or e.context}"
        if e.context and e.problem:
            msg = f"invalid YAML: {e.problem} ({e.context})"
        line, col = (mark.line + 1, mark.column + 1) if mark else (None, None)
        hint = "check indentation, colons and quotes near here"
        if mark is not None and text[mark.index : mark.index + 1] == "\t":
            hint = "indent with spaces: YAML does not allow tabs there"
        walker.problems.append(Diagnostic(msg, file, line, col, hint))
    except yaml.reader.ReaderError:
        walker.problems.append(_unprintable(file, text))
    except yaml.YAMLError as e:
        walker.problems.append(Diagnostic(f"invalid YAML: {e}", file))
    except (RecursionError, ValueError, OverflowError) as e:
        walker.problems.append(Diagnostic(f"invalid YAML value: {e}", file))
    finally:
        if was_enabled:
            gc.enable()
    return docs, walker.problems


def _unprintable(file: str, text: str) -> Diagnostic:
    """Where the first character YAML does not allow is, and which it is."""
    m = _NOT_PRINTABLE.search(text)
    if m is None:  # pragma: no cover - the reader only rejects such characters
        return Diagnostic("invalid YAML: a character YAML does not allow", file)
    code = f"{ord(m.group()):04X}"
    line = text.count("\n", 0, m.start()) + 1
    column = m.start() - text.rfind("\n", 0, m.start())
    return Diagnostic(
        f"invalid YAML: the character U+{code} is not allowed in YAML",
        file,
        line,
        column,
        f'remove it, or write it as "\\u{code}" inside a double-quoted string',
    )


def _compose_all(text: str) -> Iterator[Node | None]:
    loader = _Loader(text)
    try:
        while loader.check_node():
            yield loader.get_node()
    finally:
        loader.dispose()
