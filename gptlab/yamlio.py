"""Safe YAML reading that remembers where each key came from, and atomic file writes."""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import yaml

from gptlab.errors import UserError

KeyPath = tuple[str, ...]


# Aliases let a few hundred bytes name billions of nodes ("billion laughs"); yaml builds them as shared
# references, but anything that walks the data (this module's line map, config flattening, a dump) expands
# them. A file whose expanded tree passes these bounds, or that refers to itself, is refused.
MAX_NODES = 100_000
MAX_DEPTH = 100


def load_yaml(path: str | Path) -> tuple[Any, dict[KeyPath, int]]:
    """Parse a YAML file with yaml's safe loader; return the data and a map key-path -> line (1-based)."""
    path = Path(path)
    if not path.is_file():
        raise UserError("file not found", source=str(path), fix="check the path")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise UserError("not UTF-8 text", source=str(path), fix="save the file as UTF-8") from None
    return load_yaml_text(text, str(path))


def load_yaml_text(text: str, source: str | None = None) -> tuple[Any, dict[KeyPath, int]]:
    """`load_yaml` for text already read; `source` names it in errors."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is not None:
            _check_expansion(node, source)
        data = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise UserError(f"malformed YAML: {problem}", source=source,
                        line=mark.line + 1 if mark else None, fix="fix the YAML syntax") from None
    except RecursionError:
        raise UserError(f"nested more than {MAX_DEPTH} levels deep", source=source,
                        fix="flatten the structure") from None
    finally:
        loader.dispose()
    lines: dict[KeyPath, int] = {}
    if node is not None:
        try:
            _collect_lines(node, (), lines, set())
        except _DuplicateKey as dup:
            raise UserError("duplicate key (YAML keeps only the last one)", source=source, line=dup.line,
                            key=".".join(dup.path), fix="remove or rename one of them") from None
    return data, lines


def _check_expansion(root: yaml.Node, source: str | None) -> None:
    """Refuse recursive structures and trees that expand past MAX_NODES / MAX_DEPTH. Each node's expanded
    size is computed once (memoized by identity), so the check itself never expands an alias."""
    sizes: dict[int, int] = {}
    on_path: set[int] = set()

    def size(node: yaml.Node, depth: int) -> int:
        key = id(node)
        if key in on_path:
            raise UserError(f"recursive structure: an alias refers to its own parent (line {node.start_mark.line + 1})",
                            source=source, fix="write the data out instead of referring to itself")
        if key in sizes:
            return sizes[key]
        if depth > MAX_DEPTH:
            raise UserError(f"nested more than {MAX_DEPTH} levels deep", source=source,
                            line=node.start_mark.line + 1, fix="flatten the structure")
        on_path.add(key)
        total = 1
        if isinstance(node, yaml.SequenceNode):
            children = node.value
        elif isinstance(node, yaml.MappingNode):
            children = [n for pair in node.value for n in pair]
        else:
            children = []
        for child in children:
            total += size(child, depth + 1)
            if total > MAX_NODES:
                raise UserError(f"aliases expand to more than {MAX_NODES:,} values (an alias bomb?)",
                                source=source, fix="write the data out without nested aliases")
        on_path.discard(key)
        sizes[key] = total
        return total

    size(root, 0)


class _DuplicateKey(Exception):
    def __init__(self, path: KeyPath, line: int) -> None:
        self.path, self.line = path, line


def _collect_lines(node: yaml.Node, prefix: KeyPath, lines: dict[KeyPath, int], seen: set[int]) -> None:
    """Walk each node once: an aliased node keeps the lines of its first appearance."""
    if id(node) in seen:
        return
    seen.add(id(node))
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            path = prefix + (str(key_node.value),)
            if path in lines:
                raise _DuplicateKey(path, key_node.start_mark.line + 1)
            lines[path] = key_node.start_mark.line + 1
            _collect_lines(value_node, path, lines, seen)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            lines[prefix + (str(i),)] = item.start_mark.line + 1
            _collect_lines(item, prefix + (str(i),), lines, seen)


def line_of(lines: dict[KeyPath, int], path: KeyPath) -> int | None:
    """Line of the deepest known prefix of `path`."""
    for end in range(len(path), 0, -1):
        if path[:end] in lines:
            return lines[path[:end]]
    return None


def parse_scalar(text: str) -> Any:
    """A command-line value as a YAML scalar: '1e-3' -> 0.001, 'true' -> True, 'rope' -> 'rope'."""
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    if isinstance(value, str):
        try:  # YAML 1.1 reads '1e-3' as a string; users mean a number
            return float(value) if any(c in value.lower() for c in "e.") else value
        except ValueError:
            return value
    return value if isinstance(value, (int, float, bool, str)) or value is None else text


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write then rename, so a reader never sees a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; a shared run store must stay readable
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_json(path: str | Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def atomic_write_yaml(path: str | Path, obj: Any) -> None:
    atomic_write_text(path, yaml.safe_dump(obj, sort_keys=False))
