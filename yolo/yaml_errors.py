"""A YAML syntax error as one line: the file, where in it (1-based line and column), what is wrong.
Used for every yaml a user hands us: data, hyp, campaign specs."""

from __future__ import annotations

from pathlib import Path

import yaml


def yaml_error_line(path: str | Path, err: yaml.YAMLError) -> str:
    """E.g. 'c.yaml, line 1, column 7: not valid YAML: while parsing a flow sequence, expected ',' or
    ']', but got '<stream end>' (at line 2, column 1)'."""
    mark = getattr(err, "context_mark", None) or getattr(err, "problem_mark", None)
    if mark is None:
        return f"{path}: not valid YAML: {' '.join(str(err).split())}"
    what = ", ".join(str(part) for part in (getattr(err, "context", None), getattr(err, "problem", None)) if part)
    problem_mark = getattr(err, "problem_mark", None)
    if problem_mark is not None and (problem_mark.line, problem_mark.column) != (mark.line, mark.column):
        what += f" (at line {problem_mark.line + 1}, column {problem_mark.column + 1})"
    return f"{path}, line {mark.line + 1}, column {mark.column + 1}: not valid YAML: {what}"
