"""Turning a POST /campaigns request into a validated, safe campaign spec, or a 422 naming every
bad field with nothing stored.

The body is JSON (a CampaignSpec) or multipart with a `spec` YAML file and an optional `hyp` YAML
file (YOLOv5's hyp format, the campaign's base values; the spec's own `hyp` entries override it).
YAML is read with the safe loader and must not use aliases (a few bytes of anchors can expand to
gigabytes); documents deeper than a spec ever is, or holding NaN / infinity, are refused. Every
file the spec names must resolve inside the server's data roots; the stored spec holds the real,
absolute paths, so the coordinator opens exactly the file that was checked. Start weights must
load as the coordinator will load them (`yolo.checkpoint.load_checkpoint`: the safe reader, its
size and layout limits, the architecture check), so a hostile or unsupported file is a 422 naming
the reason, not a failed campaign.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from fastapi import HTTPException, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from starlette.concurrency import run_in_threadpool
from pydantic import ValidationError

from api.body_limit import BodyTooLarge
from api.security import PathOutsideRoots, resolve_inside
from api.settings import ApiSettings
from evolver.campaign import FILE_FIELDS, CampaignSpec, names_a_file
from yolo.hyp import Hyperparameters

MAX_DEPTH = 16  # a spec nests 3 levels; anything much deeper is not a spec


def problem(loc: Sequence[str | int], msg: str, kind: str = "value_error") -> dict[str, Any]:
    return {"loc": list(loc), "msg": msg, "type": kind}


def reject(*problems: dict[str, Any]) -> RequestValidationError:
    return RequestValidationError(list(problems))


# --------------------------------------------------------------------------------- parsing
def _refuse_constant(name: str) -> float:
    raise ValueError(f"{name} is not a number JSON allows")


def parse_json(raw: bytes) -> Any:
    try:
        return json.loads(raw, parse_constant=_refuse_constant)
    except (ValueError, RecursionError) as err:  # JSONDecodeError is a ValueError
        raise reject(problem(["body"], f"invalid JSON: {err}", "json_invalid")) from None


def parse_yaml(text: bytes, loc: list[str]) -> Any:
    """A YAML document, refused before it is built if it uses aliases or nests deeper than
    MAX_DEPTH: the event stream is read lazily and abandoned at the first offence, so a hostile
    file costs a few levels of parsing, not PyYAML's slow composing of thousands of levels.
    Blocking work: call it off the event loop (`parse_yaml_off_loop`)."""
    try:
        decoded = text.decode("utf-8")
        depth = 0
        for event in yaml.parse(decoded, Loader=yaml.SafeLoader):
            if isinstance(event, yaml.AliasEvent):
                raise reject(problem(loc, "YAML aliases (*name) are not accepted"))
            if isinstance(event, yaml.CollectionStartEvent):
                depth += 1
                if depth > MAX_DEPTH:
                    raise reject(problem(loc, f"nested deeper than {MAX_DEPTH} levels"))
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
        return yaml.safe_load(decoded)
    except UnicodeDecodeError:
        raise reject(problem(loc, "not UTF-8 text")) from None
    except (yaml.YAMLError, RecursionError) as err:
        raise reject(problem(loc, f"invalid YAML: {err}")) from None


async def parse_yaml_off_loop(text: bytes, loc: list[str]) -> Any:
    """`parse_yaml` in the thread pool: a slow document never stalls other requests."""
    return await run_in_threadpool(parse_yaml, text, loc)


def check_plain_data(document: Any, loc: list[str]) -> None:
    """Iteratively: nesting depth bounded, every number finite (YAML's .nan / .inf are refused)."""
    stack: list[tuple[Any, list[str | int]]] = [(document, loc)]
    while stack:
        value, where = stack.pop()
        if len(where) - len(loc) > MAX_DEPTH:
            raise reject(problem(where, f"nested deeper than {MAX_DEPTH} levels"))
        if isinstance(value, float) and not math.isfinite(value):
            raise reject(problem(where, "must be a finite number"))
        if isinstance(value, dict):
            stack.extend((item, [*where, str(key)]) for key, item in value.items())
        elif isinstance(value, list):
            stack.extend((item, [*where, i]) for i, item in enumerate(value))


async def _read_upload(part: UploadFile | str, loc: list[str], limit: int) -> bytes:
    if isinstance(part, str):
        data = part.encode("utf-8")
    else:
        data = await part.read(limit + 1)
    if len(data) > limit:
        raise HTTPException(413, f"{loc[-1]}: upload larger than {limit} bytes")
    return data


async def read_submission(request: Request, settings: ApiSettings) -> tuple[Any, list[str], Any]:
    """(spec document, loc prefix of its fields, uploaded hyp document or None)."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "multipart/form-data":
        try:
            form = await request.form(max_files=2, max_fields=2)
        except (HTTPException, BodyTooLarge):
            raise
        except Exception as err:  # malformed multipart
            raise reject(problem(["body"], f"invalid multipart body: {err}")) from None
        unknown = sorted(set(form.keys()) - {"spec", "hyp"})
        if unknown:
            raise reject(*(problem(["body", key], "unexpected form field (expected spec, hyp)", "extra_forbidden")
                           for key in unknown))
        if "spec" not in form:
            raise reject(problem(["body", "spec"], "Field required", "missing"))
        spec = await parse_yaml_off_loop(
            await _read_upload(form["spec"], ["body", "spec"], settings.max_upload_bytes), ["body", "spec"])
        hyp = None
        if "hyp" in form:
            hyp = await parse_yaml_off_loop(
                await _read_upload(form["hyp"], ["body", "hyp"], settings.max_upload_bytes), ["body", "hyp"])
            check_plain_data(hyp, ["body", "hyp"])
        check_plain_data(spec, ["body", "spec"])
        return spec, ["body", "spec"], hyp
    if content_type not in ("application/json", ""):
        raise HTTPException(415, "send application/json (a campaign spec) or multipart/form-data (spec, hyp files)")
    document = parse_json(await request.body())
    check_plain_data(document, ["body"])
    return document, ["body"], None


# --------------------------------------------------------------------------------- validation
def _merge_uploaded_hyp(document: dict, hyp: Any) -> dict:
    if hyp is None:
        return document
    if not isinstance(hyp, dict):
        raise reject(problem(["body", "hyp"], "a hyp file is a mapping of name: value"))
    try:
        Hyperparameters().replace(**{str(k): v for k, v in hyp.items()})
    except (ValueError, TypeError) as err:
        raise reject(problem(["body", "hyp"], str(err))) from None
    own = document.get("hyp", {})
    if not isinstance(own, dict):
        return document  # the spec's own `hyp` is wrong: model validation names it
    return {**document, "hyp": {**hyp, **own}}


def validate_spec(document: Any, loc: list[str], hyp: Any, settings: ApiSettings) -> CampaignSpec:
    """The spec with real, absolute file paths, or RequestValidationError (422) naming each problem."""
    if not isinstance(document, dict):
        raise reject(problem(loc, "a campaign spec is an object of fields", "dict_type"))
    document = _merge_uploaded_hyp(document, hyp)
    try:
        spec = CampaignSpec.model_validate(document)
    except ValidationError as err:
        raise reject(*(problem([*loc, *e["loc"]], e["msg"], e["type"]) for e in err.errors())) from None
    roots = settings.resolved_data_roots()
    changes: dict[str, str] = {}
    problems = []
    for field in FILE_FIELDS:
        value = getattr(spec, field)
        if not names_a_file(field, value):
            continue
        try:
            real = resolve_inside(value, roots)
            if field == "data":
                _check_dataset_folders(real, roots)
            changes[field] = str(real)
        except PathOutsideRoots as err:
            problems.append(problem([*loc, field], str(err)))
    if problems:
        raise reject(*problems)
    spec = spec.model_copy(update=changes)
    try:
        spec.check_data()
    except ValueError as err:
        field = "confirm" if str(err).startswith("confirm.") else "data"
        raise reject(problem([*loc, field], str(err))) from None
    try:
        spec.base_hyp()
    except (ValueError, OSError) as err:
        raise reject(problem([*loc, "hyp_file" if spec.hyp_file else "hyp"], str(err))) from None
    try:
        spec.starting_population()
    except ValueError as err:  # named as the client knows it, as the weights are: no server folders
        named = str(err).replace(str(spec.start_population), Path(str(spec.start_population)).name)
        raise reject(problem([*loc, "start_population"], named)) from None
    if names_a_file("weights", spec.weights):
        _check_weights(spec.weights, [*loc, "weights"])
    return spec


def _check_weights(path: str, loc: list[str]) -> None:
    """The start weights load (refused files say why: unsafe, over the limits, unsupported, damaged)."""
    from yolo.checkpoint import load_checkpoint

    try:
        load_checkpoint(path)
    except (ValueError, OSError) as err:  # UnsafeCheckpointError and UnsupportedCheckpointError are ValueErrors
        # named as the client knows it: the server's folders stay out of the answer, as elsewhere
        raise reject(problem(loc, str(err).replace(path, Path(path).name))) from None


def _check_dataset_folders(data_yaml: Path, roots: Sequence[Path]) -> None:
    """A data yaml inside the roots must not point its `path`, `train` or `val` outside them."""
    try:
        document = yaml.safe_load(data_yaml.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        raise PathOutsideRoots(f"the data yaml cannot be read: {err}") from None
    if not isinstance(document, dict):
        raise PathOutsideRoots("the data yaml is not a mapping")
    root = data_yaml.parent / str(document.get("path") or ".")
    entries = [root]
    for split in ("train", "val", "test"):
        value = document.get(split)
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, str):
                entries.append(root / item)
    for entry in entries:
        real = entry.expanduser().resolve()
        if not any(real.is_relative_to(r) for r in roots):
            raise PathOutsideRoots(f"the data yaml points outside the server's data roots ({entry.name})")
