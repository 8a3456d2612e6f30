"""Reading a suite file: the YAML text, its data, and the line of every key and value in it.

PyYAML's node tree keeps a start mark (line and column) for each node. The data is constructed from that tree,
and the tree is kept, so a validation error at a key path such as ``("matrix", "model", 2)`` can be reported
at the line the user wrote it on. Duplicate keys, which YAML loaders silently collapse to the last one, are
found here too.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from harness.errors import SuiteError

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_MERGE_TAG = "tag:yaml.org,2002:merge"


@dataclass(frozen=True)
class Issue:
    """One problem in a suite file: where (file, 1-based line and column, key path) and what."""

    file: str
    line: int | None
    column: int | None
    key: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.key}: {self.message}" if self.key else f"{where}: {self.message}"


def raise_issues(issues: list[Issue]) -> None:
    """Raise one ``SuiteError`` listing every issue (sorted by line, one per line); do nothing when empty.
    The error's ``issues`` attribute keeps them for programs."""
    if not issues:
        return
    issues = sorted(issues, key=lambda i: (i.line or 0, i.column or 0))
    if len(issues) == 1:
        text = str(issues[0])
    else:
        text = f"{len(issues)} problems in {issues[0].file}:\n" + "\n".join(f"  {i}" for i in issues)
    error = SuiteError(text)
    error.issues = issues
    raise error


def read_text(path: Path) -> str:
    """The text of suite file ``path``; a missing file, a directory or undecodable bytes raise ``SuiteError``."""
    if path.is_dir():
        raise SuiteError(f"{path}: is a directory, not a suite file; give a file such as {path / 'smoke.yaml'}")
    if not path.exists():
        hint = ""
        if path.parent.is_dir():
            near = sorted(p.name for p in path.parent.glob("*.yaml"))
            hint = f"; suites in {path.parent}: {', '.join(near)}" if near else ""
        raise SuiteError(f"{path}: no such suite file{hint}")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise SuiteError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start}); save it as UTF-8") from None
    except OSError as exc:
        raise SuiteError(f"{path}: cannot read it ({exc.strerror})") from None


def parse_yaml(text: str, file: str) -> tuple[Any, yaml.Node | None, list[Issue]]:
    """Parse one YAML document into (data, node tree, duplicate-key issues). A syntax error raises
    ``SuiteError`` with YAML's own line, column and problem."""
    try:
        loader = _Loader(text)
        try:
            node = loader.get_single_node()
            dupes = _duplicate_keys(node, file) if node is not None else []
            data = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{file}:{mark.line + 1}:{mark.column + 1}" if mark else file
        problem = ": ".join(p for p in (exc.context, exc.problem) if p)
        raise SuiteError(f"{where}: YAML syntax error: {problem}; fix the YAML at that line") from None
    except yaml.YAMLError as exc:
        raise SuiteError(f"{file}: YAML error: {exc}") from None
    return data, node, dupes


def key_path(loc: tuple) -> str:
    """``("matrix", "model", 2)`` -> ``matrix.model[2]``."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _duplicate_keys(root: yaml.Node, file: str) -> list[Issue]:
    issues: list[Issue] = []
    seen_nodes: set[int] = set()
    stack: list[tuple[yaml.Node, tuple]] = [(root, ())]
    while stack:
        node, path = stack.pop()
        if id(node) in seen_nodes:
            continue
        seen_nodes.add(id(node))
        if isinstance(node, yaml.MappingNode):
            first_line: dict[str, int] = {}
            for key, value in node.value:
                if key.tag == _MERGE_TAG or not isinstance(key, yaml.ScalarNode):
                    stack.append((value, path))
                    continue
                stack.append((value, (*path, key.value)))
                if key.value in first_line:
                    message = f"duplicate key (first given at line {first_line[key.value]}); keep one"
                    mark = key.start_mark
                    issues.append(Issue(file, mark.line + 1, mark.column + 1, key_path((*path, key.value)), message))
                else:
                    first_line[key.value] = key.start_mark.line + 1
        elif isinstance(node, yaml.SequenceNode):
            stack.extend((item, (*path, i)) for i, item in enumerate(node.value))
    return issues


def locate(root: yaml.Node | None, loc: tuple, at_key: bool = False) -> tuple[int | None, int | None]:
    """The 1-based (line, column) of the value at key path ``loc`` (of its key when ``at_key``). Parts that are
    not in the file (a missing key, a scalar standing for a list) stop the walk at the nearest enclosing node."""
    if root is None:
        return None, None
    node, mark = root, root.start_mark
    for i, part in enumerate(loc):
        last = i == len(loc) - 1
        if isinstance(node, yaml.MappingNode):
            pairs = reversed(node.value)  # after a merge (<<) the last pair of a key is the one in effect
            pair = next((p for p in pairs if isinstance(p[0], yaml.ScalarNode) and p[0].value == str(part)), None)
            if pair is None:
                break
            node = pair[1]
            mark = pair[0].start_mark if (last and at_key) else node.start_mark
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
            node = node.value[part]
            mark = node.start_mark
        elif isinstance(node, yaml.ScalarNode):
            break
    return mark.line + 1, mark.column + 1


def trim_loc(root: yaml.Node | None, loc: tuple) -> tuple:
    """``loc`` without a trailing list index where the file has a single value (``model: resnet5`` standing
    for ``[resnet5]``), so messages show the key the user wrote."""
    node = root
    for i, part in enumerate(loc):
        if isinstance(node, yaml.ScalarNode) and isinstance(part, int):
            return loc[:i] + loc[i + 1 :]
        if isinstance(node, yaml.MappingNode):
            pair = next((p for p in reversed(node.value) if getattr(p[0], "value", None) == str(part)), None)
            node = pair[1] if pair else None
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
            node = node.value[part]
        else:
            node = None
    return loc
