"""A YAML syntax error as one line: the file, where in it (1-based line and column), what is wrong."""

from __future__ import annotations

from pathlib import Path

import yaml


def yaml_error_line(path: str | Path, err: yaml.YAMLError) -> str:
    mark = getattr(err, "problem_mark", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    problem = getattr(err, "problem", None) or " ".join(str(err).split())
    return f"{path}: not valid YAML{where} ({problem})"
