"""YAML loading that remembers where each value came from, so errors can name a line."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from edge_agent.errors import ConfigError

__all__ = ["YamlDocument", "load_yaml"]


class YamlDocument:
    """A parsed YAML document plus its node tree (for line numbers)."""

    def __init__(self, path: Path, data: Any, root: yaml.Node | None) -> None:
        self.path = path
        self.data = data
        self.root = root

    def line_of(self, loc: Sequence[int | str]) -> int | None:
        """1-based line of the deepest node on ``loc`` that exists in the file (best effort)."""
        node = self.root
        if node is None:
            return None
        line = int(node.start_mark.line) + 1
        for part in loc:
            child = _child(node, part)
            if child is None:
                continue  # e.g. a union tag pydantic adds to the location, or a missing key
            key_node, node = child
            line = int((key_node or node).start_mark.line) + 1
        return line


def _child(node: yaml.Node, part: int | str) -> tuple[yaml.Node | None, yaml.Node] | None:
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode) and key.value == str(part):
                return key, value
    elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
        return None, node.value[part]
    return None


def _check_duplicate_keys(path: Path, node: yaml.Node | None) -> None:
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode):
                line = key.start_mark.line + 1
                if key.value in seen:
                    raise ConfigError(
                        f"duplicate key (first set on line {seen[key.value]})",
                        file=path,
                        line=line,
                        field=key.value,
                    )
                seen[key.value] = line
            _check_duplicate_keys(path, value)
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            _check_duplicate_keys(path, item)


def load_yaml(path: Path) -> YamlDocument:
    """Read and parse ``path``; raise :class:`ConfigError` naming the file and line on failure."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError(f"cannot read the config file: {reason}", file=path) from None
    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
        _check_duplicate_keys(path, root)
        data = loader.construct_document(root) if root is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        reason = " ".join(p for p in (exc.context, exc.problem) if p) or "invalid YAML"
        raise ConfigError(f"invalid YAML: {reason}", file=path, line=line) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"invalid YAML: {exc}", file=path) from None
    finally:
        loader.dispose()
    return YamlDocument(path, data, root)
