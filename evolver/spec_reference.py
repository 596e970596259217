"""examples/campaign-reference.yaml: every field of a campaign spec, set to its default, with its
type, limits and description as comments, written from the pydantic model itself.

The model (evolver/campaign.py) is the one source: a field added there, a new limit or a changed
type shows up here on the next `python -m evolver.spec_reference`, and
tests/evolver/test_spec_reference.py fails until the committed file is regenerated. Since every
line holds the default, the file loads as a campaign equal to `CampaignSpec()`.
"""

from __future__ import annotations

import argparse
import inspect
import sys
import textwrap
import types
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import annotated_types
import yaml
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from evolver.campaign import CampaignSpec

REFERENCE_PATH = Path(__file__).resolve().parents[1] / "examples" / "campaign-reference.yaml"
REGENERATE = "python -m evolver.spec_reference"
WIDTH = 100  # comment lines wrap here
INDENT = "  "

HEADER = f"""\
Every field of a campaign spec (evolver.campaign.CampaignSpec), each set to its default, with its
type, limits and meaning. Generated from the model by `{REGENERATE}`: change the model, not this
file. Because every value is the default, this file is itself a valid campaign (a YOLO training
from scratch on the built-in synthetic data); copy the lines you want to change into your own.
The same schema, as JSON Schema: GET /openapi.json on `evolver serve`, under components.schemas."""

# annotated_types bounds pydantic keeps in FieldInfo.metadata, as (class, attribute, symbol).
BOUNDS = ((annotated_types.Gt, "gt", ">"), (annotated_types.Ge, "ge", ">="),
          (annotated_types.Lt, "lt", "<"), (annotated_types.Le, "le", "<="))


def type_text(annotation: Any) -> str:
    """A reader's name for a field's type: 'int', 'one of: ga, random', 'list of int', 'int or null'."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Literal:
        return "one of: " + ", ".join(yaml_value(choice) for choice in args)  # as YAML needs them: 'off'
    if origin in (typing.Union, types.UnionType):
        return " or ".join("null" if arg is type(None) else type_text(arg) for arg in args)
    if origin in (tuple, list) and (origin is list or (len(args) == 2 and args[1] is Ellipsis)):
        item = type_text(args[0])
        return f"list, each {item}" if item.startswith("one of") else f"list of {item}"
    if origin is tuple:
        return "[" + ", ".join(type_text(arg) for arg in args) + "]"
    if origin is dict:
        return f"mapping of {type_text(args[0])} to {type_text(args[1])}"
    if inspect.isclass(annotation) and issubclass(annotation, BaseModel):
        return "block"
    return getattr(annotation, "__name__", str(annotation))


def limits_text(name: str, field: FieldInfo) -> str:
    """The field's declared bounds, e.g. '1 <= epochs <= 10000', '1 to 100 characters, matches ^[a-z]+$'."""
    lower = upper = None
    shortest, longest = 0, None
    extras = []
    for constraint in field.metadata:
        for kind, attribute, symbol in BOUNDS:
            if isinstance(constraint, kind):
                bound = (symbol, getattr(constraint, attribute))
                if symbol.startswith(">"):
                    lower = bound
                else:
                    upper = bound
        if isinstance(constraint, annotated_types.MinLen):
            shortest = constraint.min_length
        if isinstance(constraint, annotated_types.MaxLen):
            longest = constraint.max_length
        if getattr(constraint, "pattern", None):
            extras.append(f"matches {constraint.pattern}")
    schema_extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
    if schema_extra.get("pattern"):  # a pattern checked by a validator, declared for the schema
        extras.append(f"matches {schema_extra['pattern']}")
    parts = []
    if lower and upper:
        parts.append(f"{lower[1]} {lower[0].replace('>', '<')} {name} {upper[0]} {upper[1]}")
    elif lower or upper:
        symbol, value = lower or upper
        parts.append(f"{name} {symbol} {value}")
    if shortest or longest is not None:
        parts.append(f"{shortest} to {longest} characters" if longest is not None else f"{shortest}+ characters")
    return ", ".join(parts + extras)


def yaml_value(value: Any) -> str:
    """One value as inline YAML: `campaign`, `null`, `[0.0, 0.1]`, `{}`."""
    text = yaml.safe_dump(value, default_flow_style=True, width=10**6, sort_keys=False).strip()
    return text.removesuffix("\n...").strip()


def _comment(text: str, indent: str) -> list[str]:
    return textwrap.wrap(text, width=WIDTH, initial_indent=indent + "# ", subsequent_indent=indent + "# ",
                         break_long_words=False, break_on_hyphens=False)


def _docstring(model: type[BaseModel]) -> str:
    """A model's docstring as one paragraph (pydantic's own BaseModel docstring does not count)."""
    doc = model.__doc__ if model.__doc__ is not BaseModel.__doc__ else None
    return " ".join(inspect.cleandoc(doc).split()) if doc else ""


def _nested_model(annotation: Any) -> type[BaseModel] | None:
    return annotation if inspect.isclass(annotation) and issubclass(annotation, BaseModel) else None


def field_lines(name: str, field: FieldInfo, default: Any, indent: str = "") -> list[str]:
    """The comment block and the `name: default` line(s) of one field; a nested model's fields
    follow, indented, each with its own block."""
    lines = []
    if field.description:
        lines += _comment(field.description[0].upper() + field.description[1:], indent)
    nested = _nested_model(field.annotation)
    if nested is not None:
        if _docstring(nested):
            lines += _comment(_docstring(nested), indent)
        lines.append(f"{indent}{name}:")
        for number, (sub_name, sub_field) in enumerate(nested.model_fields.items()):
            lines += [""] * bool(number) + field_lines(sub_name, sub_field, default[sub_name], indent + INDENT)
        return lines
    kind = ", ".join(part for part in (type_text(field.annotation), limits_text(name, field)) if part)
    lines += _comment(f"{kind}. Default: {yaml_value(default)}", indent)
    lines.append(f"{indent}{name}: {yaml_value(default)}")
    return lines


def render(model: type[BaseModel] = CampaignSpec) -> str:
    """The reference yaml of `model` (every field needs a default: the file must load as it is)."""
    missing = [name for name, field in model.model_fields.items() if field.is_required()]
    if missing:
        raise ValueError(f"{model.__name__}: the reference sets every field to its default, and "
                         f"{', '.join(missing)} has none")
    defaults = model().model_dump(mode="json")
    lines = _comment(HEADER.replace("\n", " "), "")
    if _docstring(model):
        lines += ["#"] + _comment(_docstring(model), "")
    for name, field in model.model_fields.items():
        lines += [""] + field_lines(name, field, defaults[name])
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=f"python -m {__spec__.name if __spec__ else 'evolver.spec_reference'}",
                                     description="Write the annotated reference of every campaign field.")
    parser.add_argument("--out", type=Path, default=REFERENCE_PATH, help=f"default: {REFERENCE_PATH}")
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 if the file differs from what the model gives")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        current = args.out.read_text() if args.out.is_file() else None
        if current != text:
            print(f"{args.out} is out of date with evolver/campaign.py: run `{REGENERATE}` to regenerate it",
                  file=sys.stderr)
            return 1
        print(f"{args.out} is up to date")
        return 0
    args.out.write_text(text)
    print(f"wrote {args.out} ({len(CampaignSpec.model_fields)} fields)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
