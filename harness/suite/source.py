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
from harness.suite.bounds import MAX_ALIAS_VALUES, MAX_LISTED_PROBLEMS
from harness.suite.brief import brief

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_MERGE_TAG = "tag:yaml.org,2002:merge"
_INT_TAG = "tag:yaml.org,2002:int"
#: Python reads at most this many decimal digits into an integer (sys.get_int_max_str_digits()).
_MAX_INT_DIGITS = 4300
# Expanded sizes stop counting here, so a bomb of a hundred levels costs no huge integer arithmetic.
_SIZE_CAP = 10**15


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
    """Raise one ``SuiteError`` listing the issues (sorted by line, one per line, each line once, at most
    ``MAX_LISTED_PROBLEMS`` of them and then how many more); do nothing when empty. The error's ``issues``
    attribute keeps every distinct one for programs."""
    if not issues:
        return
    issues = sorted(issues, key=lambda i: (i.line or 0, i.column or 0))
    seen: set[str] = set()
    issues = [i for i in issues if not (str(i) in seen or seen.add(str(i)))]  # each line once, the first kept
    if len(issues) == 1:
        text = str(issues[0])
    else:
        shown = issues[:MAX_LISTED_PROBLEMS]
        text = f"{len(issues)} problems in {issues[0].file}:\n" + "\n".join(f"  {i}" for i in shown)
        if len(issues) > len(shown):
            text += f"\n  ... and {len(issues) - len(shown)} more; fix these and validate again to see the rest"
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
            if node is not None:
                check_size(node, file)
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
    """``("matrix", "model", 2)`` -> ``matrix.model[2]`` (a key of more than 60 characters is cut)."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            part = part if isinstance(part, str) and len(part) <= 60 else brief(part).strip("'")
            text += f".{part}" if text else part
    return text


def _children(node: yaml.Node) -> list:
    if isinstance(node, yaml.SequenceNode):
        return node.value
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    return []


def check_size(root: yaml.Node, file: str) -> None:
    """Refuse, before anything is built from it, a document whose aliases (``*name``) add more than
    ``MAX_ALIAS_VALUES`` values to those written (an alias bomb), that refers to itself, or that holds an integer
    too long to read. The walk visits each written node once, however often it is aliased."""
    sizes: dict[int, int] = {}  # id(node) -> values it stands for once aliases are expanded (capped)
    on_path: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        key = id(node)
        if done:
            on_path.discard(key)
            sizes[key] = min(1 + sum(sizes[id(c)] for c in _children(node)), _SIZE_CAP)
            continue
        if key in sizes:
            continue
        mark = node.start_mark
        if key in on_path:
            raise SuiteError(
                f"{file}:{mark.line + 1}: the value anchored here contains an alias to itself, so it never ends; "
                "write the value out instead of the recursive alias"
            )
        if isinstance(node, yaml.ScalarNode) and node.tag == _INT_TAG:
            digits = len(node.value.lstrip("+-").replace("_", ""))
            if digits > _MAX_INT_DIGITS:
                raise SuiteError(
                    f"{file}:{mark.line + 1}:{mark.column + 1}: a number of {digits:,} digits; no suite key takes "
                    "a number this large: write a smaller one"
                )
        on_path.add(key)
        stack.append((node, True))
        stack.extend((child, False) for child in _children(node) if id(child) not in sizes)
    written, expanded = len(sizes), sizes[id(root)]
    if expanded - written <= MAX_ALIAS_VALUES:
        return
    # Name the deepest key whose value is too big, following mappings only: a key is written where it is used,
    # while an aliased value carries the line of its anchor.
    node, path, mark = root, (), root.start_mark
    while isinstance(node, yaml.MappingNode):
        big = next(((k, v) for k, v in node.value if sizes[id(v)] > MAX_ALIAS_VALUES), None)
        if big is None:
            break
        k, node = big
        mark = k.start_mark
        if k.tag != _MERGE_TAG:
            path = (*path, k.value if isinstance(k, yaml.ScalarNode) else brief(k))
    where = f"{file}:{mark.line + 1}" + (f": {key_path(path)}" if path else "")
    count = f"{expanded:,}" if expanded < _SIZE_CAP else f"more than {_SIZE_CAP:,}"
    raise SuiteError(
        f"{where}: YAML aliases (*name) expand this file to {count} values from {written:,} written, and may add "
        f"at most {MAX_ALIAS_VALUES:,} (an alias bomb?); write the values out, or nest fewer aliases"
    )


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
