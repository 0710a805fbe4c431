"""config.yaml's common mistakes, found at the line the user has to fix.

PyYAML reports where it gave up, which is often lines after the mistake: an unquoted
``#`` in a channel list, an unclosed quote, a key given twice (which it silently
accepts). These look at the error's marks, the raw lines and the composed tree.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import yaml

# An unquoted channel name is read as a comment: a common config.yaml mistake.
HASH_HINT = (
    'channel names must be quoted because # starts a YAML comment, e.g. channels: ["#bot", "#two"]'
)


Found = tuple[str, str, int]  # key, message, line


def nodes(root: yaml.Node | None) -> Iterator[tuple[str, yaml.Node]]:
    """Every node with its key (``server.port``, ``channels[1]``), each once (aliases)."""
    seen: set[int] = set()
    todo: list[tuple[str, yaml.Node | None]] = [("", root)]
    while todo:
        path, node = todo.pop()
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        yield path, node
        if isinstance(node, yaml.MappingNode):
            todo += [(f"{path}.{k.value}" if path else str(k.value), v) for k, v in node.value]
        elif isinstance(node, yaml.SequenceNode):
            todo += [(f"{path}[{i}]", v) for i, v in enumerate(node.value)]


def duplicates(root: yaml.Node | None) -> list[Found]:
    """Keys given twice in one mapping, at any depth: the loader would keep the last."""
    found = []
    for path, node in nodes(root):
        if not isinstance(node, yaml.MappingNode):
            continue
        first: dict[tuple[str, Any], yaml.Node] = {}
        for key, _ in node.value:
            if not isinstance(key, yaml.ScalarNode):
                continue
            seen = first.setdefault((key.tag, key.value), key)
            if seen is not key:
                name = f"{path}.{key.value}" if path else str(key.value)
                why = f"given twice (first at line {seen.start_mark.line + 1})"
                found.append((name, why, key.start_mark.line + 1))
    return found


# A line holding a key ("nick:", "- name:") or a list item: not the inside of a string.
KEY_LINE = re.compile(r"\s*(?:-\s+)?[\w.-]+\s*:(?:\s|$)|\s*-\s")


def runaway_quotes(root: yaml.Node | None, lines: list[str]) -> list[Found]:
    """Quoted values that run on over lines that look like keys: an unclosed quote.

    YAML lets a quoted string span lines, so ``nick: "bot`` swallows the lines up to
    the next quote mark and the file still parses, only with keys gone missing.
    """
    found = []
    for path, node in nodes(root):
        if not isinstance(node, yaml.ScalarNode) or node.style not in ('"', "'"):
            continue
        start, end = node.start_mark.line, node.end_mark.line
        if any(KEY_LINE.match(line) for line in lines[start + 1 : end + 1]):
            why = (
                f"unclosed quote: the value runs on into line {start + 2}; end it with {node.style}"
            )
            found.append((path, why, start + 1))
    return found


def syntax_problem(exc: yaml.YAMLError, lines: list[str]) -> tuple[str, str, int | None]:
    """(key, message, line) of where the user went wrong, if a common mistake explains
    the error; else PyYAML's words at PyYAML's line."""
    mark = getattr(exc, "problem_mark", None)
    line = mark.line + 1 if mark is not None else None
    if isinstance(exc, yaml.scanner.ScannerError | yaml.parser.ParserError):
        before = lines[: line or len(lines)]
        for found in (_unclosed_quote(before), _comment_in_flow(before)):
            if found:
                return found
    problem = getattr(exc, "problem", None) or str(exc)
    col = f" (column {mark.column + 1})" if mark is not None else ""
    return "", f"invalid YAML: {problem}{col}", line


def _unclosed_quote(lines: list[str]) -> Found | None:
    for n, line in enumerate(lines, 1):
        quote = _open_quote(line)
        if quote:
            return _key_on(line), f"unclosed quote; end the value with {quote}", n
    return None


def _comment_in_flow(lines: list[str]) -> Found | None:
    """``[#bot, #two]``: the comment takes the rest of the line, ``]`` included."""
    for n in range(len(lines), 0, -1):  # the nearest one above where YAML gave up
        if re.search(r"[\[{,]\s*#", _unquoted(lines[n - 1])):
            return _key_on(lines[n - 1]), HASH_HINT, n
    return None


def _open_quote(line: str) -> str | None:
    """The quote mark left open at the end of ``line``, if any (comments skipped)."""
    quote, i = None, 0
    while i < len(line):
        c = line[i]
        starts = i == 0 or line[i - 1] in " \t[{,:"  # a token starts here
        if quote == '"' and c == "\\":
            i += 1  # an escaped character, maybe a quote mark
        elif quote and c == quote:
            doubled = quote == "'" and line[i + 1 : i + 2] == "'"
            i += doubled  # '' is a quote mark inside single quotes
            quote = None if not doubled else quote
        elif not quote and c in "\"'" and starts:
            quote = c
        elif not quote and c == "#" and starts:
            break  # a comment
        i += 1
    return quote


def _unquoted(line: str) -> str:
    return re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\']|\'\')*\'', '""', line)


def _key_on(line: str) -> str:
    """The key written on ``line`` ("channels" for ``channels: [#bot]``), or ""."""
    match = re.match(r"\s*(?:-\s+)?([^\s:#\"'\[\]{},]+)\s*:", line)
    return match.group(1) if match else ""
