"""What a campaign is: the typed, validated spec a user submits (YAML, JSON or Python).

The spec is stored as JSON in the campaign's SQL row, so a resumed or remote coordinator rebuilds
exactly the same campaign from the database alone. Validation happens here, once, and every error
names the field: the CLI prints it, the API turns it into a 422.
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from yolo.fitness import DEFAULT_FITNESS_WEIGHTS
from evolver.blx_search import BLXSettings
from evolver.population_ga import DEFAULT_POPULATION, PopulationGASettings
from evolver.space import SearchSpace
from yolo.hyp import Hyperparameters
from yolo.yaml_errors import yaml_error_line
from yolo.synthetic import BUILTIN_DATASETS

if TYPE_CHECKING:
    from evolver.searcher import Searcher
    from yolo.train import TrainConfig

MODEL_SIZES = ("yolov5n", "yolov5s", "yolov5m", "yolov5l", "yolov5x")
SYNTHETIC = "synthetic"
BUILTIN_DATA = tuple(BUILTIN_DATASETS)  # data names that are generated datasets, not files
FILE_FIELDS = ("data", "hyp_file", "weights", "start_population")
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"
NAME_RULE = "letters, digits, '.', '_' and '-', starting with a letter or digit"
MAX_TRIALS_PER_GPU = 64
LAYERS = 25  # a YOLOv5 detector's layers: 0-23, then Detect (24)
FREEZE_FORMS = (f"a layer count N (the first N layers, as `--freeze N`: 10 = the backbone, layers 0-9) or a list of "
                f"layer indices 0-{LAYERS - 1}, e.g. [0, 1, 2]")


def field_error(field: str, message: str, value: Any) -> ValidationError:
    """A failed rule between fields, located at the field it names (a model validator's ValueError is
    located at the whole spec): the CLI's line starts with the field, the API's 422 `loc` ends with it."""
    return ValidationError.from_exception_data(
        "CampaignSpec", [InitErrorDetails(type=PydanticCustomError("value_error", message), loc=(field,), input=value)])


def looks_like_checkpoint(path: Path) -> bool:
    """Whether a file is shaped like `torch.save` output (a zip archive, or a legacy pickle), by its
    first bytes: a data yaml or an image given as `weights` is refused before anything starts."""
    with open(path, "rb") as f:
        head = f.read(4)
    return head == b"PK\x03\x04" or head[:1] == b"\x80"


def _is_layer_index(item: Any) -> bool:
    """What a freeze list may hold (as it always could): whole numbers, also written 3.0 or '3'."""
    if isinstance(item, bool):
        return False
    if isinstance(item, float):
        return item.is_integer()
    return isinstance(item, int) or (isinstance(item, str) and item.strip().isdigit())


def names_a_file(field: str, value: str | None) -> bool:
    """Whether a file field's value is a path (not empty, not a built-in dataset's name)."""
    return bool(value) and not (field == "data" and value in BUILTIN_DATA)


class EarlyStopping(BaseModel):
    """Median stopping: a trial whose fitness at epoch e (e >= min_epochs) is below the median of
    the completed trials' fitness at e stops and is recorded as pruned. Needs `min_trials`
    completed trials before it judges anyone."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rule: Literal["none", "median"] = Field("none", description="'median' stops trials below the median; "
                                            "'none' trains every trial to the end")
    min_epochs: int = Field(2, ge=1, description="never prune before this many epochs")
    min_trials: int = Field(3, ge=1, description="completed trials needed before pruning starts")


class ConfirmSpec(BaseModel):
    """The confirmation stage (evolver/confirmation.py): after the search's last trial, the best
    `top_k` distinct hyperparameters and the base are trained again `seeds` times each, with
    training seeds no search trial used, and scored on a split the search never saw. The winner
    is the best confirmed mean, not the luckiest trial. `confirm: false` in a spec turns it off."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(True, description="run the stage after the search (false: the answer is the search's "
                          "raw best trial)")
    top_k: int = Field(3, ge=1, le=50, description="distinct best search candidates retrained (the base comes too)")
    seeds: int = Field(2, ge=1, le=50, description="fresh training seeds per candidate")
    split: Literal["test", "val", "train"] | None = Field(
        None, description="split the retrainings are scored on; default: the data's test split when it has "
        "one, else val (then the report says it is the split that selected them)")
    epochs: int | None = Field(None, ge=1, le=10_000, description="epochs of each retraining; default: the "
                               "trials' epochs (set the length you will really train)")

    @model_validator(mode="before")
    @classmethod
    def _on_off(cls, value: Any) -> Any:
        """`confirm: false` / `confirm: true` are the whole block off / on with its defaults."""
        if isinstance(value, bool):
            return {"enabled": value}
        return value

    def trials(self) -> int:
        """Most trials the stage can add (fewer when the search found fewer distinct candidates)."""
        return (self.top_k + 1) * self.seeds if self.enabled else 0


class CampaignSpec(BaseModel):
    """One evolution campaign: the data, the training of each trial, the GA, the search space."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field("campaign", min_length=1, max_length=100, json_schema_extra={"pattern": NAME_PATTERN},
                      description=f"names the run folder: {NAME_RULE}")
    # Training of every trial (DESIGN.md: one trial is YOLOv5's 10-epoch fine-tune by default).
    data: str = Field(SYNTHETIC, description="data yaml (YOLO format), or a built-in synthetic dataset: "
                      "'synthetic' or 'synthetic-shifted' (other colours, backgrounds and scales)")
    cfg: Literal["yolov5n", "yolov5s", "yolov5m", "yolov5l", "yolov5x"] | None = Field(
        None, description="model size; default: the architecture of `weights`, else yolov5n")
    weights: str | None = Field(None, description="checkpoint every trial fine-tunes from (default: scratch)")
    freeze: tuple[int, ...] = Field(
        (), description="layers frozen in every trial: a count N = the first N layers (10 = the backbone, "
        "layers 0-9, as YOLOv5's --freeze 10) or a list of layer indices, e.g. [0, 1, 2]")
    epochs: int = Field(10, ge=1, le=10_000, description="training epochs of each search trial")
    img_size: int = Field(640, ge=32, le=8192, description="train and val image size in pixels, a multiple of 32")
    batch_size: int = Field(16, ge=1, le=4096, description="images per training batch")
    # The search.
    generations: int = Field(10, ge=1, le=100_000, description="search trials = generations x population")
    population: int = Field(1, ge=1, le=10_000, description="trials per generation (1 = YOLOv5's classic loop); "
                            f"default {DEFAULT_POPULATION} with searcher yolov5-population (YOLOv5 master's)")
    sync: bool = Field(False, description="wait for each generation before breeding the next")
    seed: int = Field(0, ge=0, description="makes the sequence of children repeat")
    searcher: Literal["ga", "yolov5-population", "blx", "random", "tpe", "cmaes"] = Field(
        "ga", description="what breeds the trials: YOLOv5's classic GA; YOLOv5 master's population GA "
        "(yolov5-population: tournament, crossover, elitism; evolves the augmentation genes unless "
        "search_space widens it; knobs in population_ga); Ultralytics' tuner (blx: BLX-alpha crossover and "
        "log-normal mutation; knobs in blx); random search within the limits; or Optuna's TPE / CMA-ES "
        "(pip install 'evolver[optuna]'); top_n, parent_selection, mutation_probability and sigma are the "
        "classic GA's")
    parent_selection: Literal["single", "weighted"] = Field(
        "single", description="GA: one parent drawn by fitness weight (YOLOv5's 'single'), or a fitness-weighted "
        "mean of the top_n ('weighted')")
    top_n: int = Field(5, ge=1, description="parents come from the best n finished trials")
    parents_per_worker: float = Field(
        0.0, ge=0.0, le=100.0, description="GA: parents come from the best max(top_n, ceil(this x workers)) "
        "finished trials, a pool that grows with the cluster; 0 = YOLOv5's fixed top_n")
    mutation_probability: float = Field(0.9, gt=0.0, le=1.0, description="GA: chance that each gene mutates")
    sigma: float = Field(0.2, gt=0.0, le=10.0, description="mutation scale (variance sigma^2)")
    population_ga: PopulationGASettings = Field(PopulationGASettings(), description="searcher yolov5-population: "
                                                "its schedules (YOLOv5 master's values by default)")
    start_population: str | None = Field(
        None, description="searcher yolov5-population: individuals generation 0 trains after the base, in order "
        "(YOLOv5 master's evolve_population.yaml, as --resume_evolve, or any mapping name -> hyps); the rest of "
        "generation 0 is drawn uniformly within the limits")
    blx: BLXSettings = Field(BLXSettings(), description="searcher blx: its knobs (Ultralytics' values by default)")
    fitness_weights: tuple[float, float, float, float] = Field(
        DEFAULT_FITNESS_WEIGHTS, description="weights of precision, recall, mAP@0.5 and mAP@0.5:0.95 in a trial's "
        "fitness (YOLOv5's)")
    hyp: dict[str, float] = Field(default_factory=dict, description="base hyperparameters, over YOLOv5's defaults")
    hyp_file: str | None = Field(None, description="a YOLOv5 hyp yaml as the base (hyp overrides it)")
    search_space: dict[str, dict[str, float]] = Field(
        default_factory=dict, description="per hyperparameter: gain / lower / upper overrides")
    early_stopping: EarlyStopping = Field(EarlyStopping(), description="median stopping of weak search trials")
    trial_seeds: Literal["shared", "per-trial"] = Field(
        "per-trial", description="training seed of the search trials: 'shared' = every trial trains with the "
        "same seed (YOLOv5's --evolve: trials differ by their hyperparameters, not their luck), 'per-trial' = "
        "a fresh seed each")
    confirm: ConfirmSpec = Field(ConfirmSpec(), description="retrain the best candidates and the base with fresh "
                                 "seeds on an unseen split; false turns it off")
    # Running it.
    max_attempts: int = Field(3, ge=1, le=100, description="tries per trial when workers die")
    cpu_workers: int = Field(1, ge=1, le=256, description="workers when the cluster has no GPU")
    trials_per_gpu: int = Field(
        1, ge=1, le=MAX_TRIALS_PER_GPU, description="trials training at once on each GPU, each in a worker of its "
        "own asking Ray for 1/N of the GPU (small models leave most of a big GPU idle); `evolver run/resume "
        "--trials-per-gpu` overrides it for that run; ignored without GPUs")
    loader_workers: int = Field(0, ge=0, le=64, description="data loader processes per trial")
    keep_top_k: int = Field(3, ge=0, description="best trials whose weights are kept")
    exports: tuple[Literal["onnx", "engine", "wts"], ...] = Field(
        ("onnx",), description="formats the winner is exported to when the campaign completes "
        "('engine' needs a worker with a GPU and TensorRT)")
    trainer: Literal["yolo", "sleep"] = Field(
        "yolo", description="'sleep' trains nothing: a dry run of the cluster and the GA")
    dry_run_seconds: tuple[float, float] = Field(
        (0.2, 0.8), description="trainer 'sleep' only: each trial sleeps a random [min, max] seconds, spread "
        "over its epochs (set it near your real trials' length to rehearse cancels and resumes)")

    @model_validator(mode="before")
    @classmethod
    def _population_default(cls, value: Any) -> Any:
        """The population GA's generations hold YOLOv5 master's 50 trials unless the spec says otherwise."""
        if isinstance(value, dict) and value.get("searcher") == "yolov5-population" and "population" not in value:
            return {**value, "population": DEFAULT_POPULATION}
        return value

    @model_validator(mode="after")
    def _population_searcher_fields(self) -> "CampaignSpec":
        if self.searcher == "yolov5-population" and self.population < 2:
            raise field_error("population", f"the population GA needs at least 2 trials per generation, got "
                              f"{self.population}", self.population)
        if self.start_population and self.searcher != "yolov5-population":
            raise field_error("start_population", f"only searcher yolov5-population trains a starting population, "
                              f"got searcher {self.searcher!r} (to seed the parents of another searcher, import an "
                              "evolve.csv)", self.start_population)
        return self

    @field_validator("trials_per_gpu", mode="before")
    @classmethod
    def _whole_count(cls, value: Any) -> Any:
        """A count of trials: `true` is not 1."""
        if isinstance(value, bool):
            raise ValueError(f"a number of trials (an integer >= 1), got {value!r}")
        return value

    @field_validator("dry_run_seconds")
    @classmethod
    def _ordered_range(cls, value: tuple[float, float]) -> tuple[float, float]:
        if not 0 <= value[0] <= value[1] <= 86_400:
            raise ValueError(f"need 0 <= min <= max <= 86400 seconds, got {list(value)}")
        return value

    @field_validator("img_size")
    @classmethod
    def _multiple_of_32(cls, value: int) -> int:
        if value % 32:
            raise ValueError(f"must be a multiple of 32 (the largest stride), got {value}")
        return value

    @field_validator("name")
    @classmethod
    def _name_characters(cls, value: str) -> str:
        if not re.fullmatch(NAME_PATTERN, value):
            odd = sorted({c for c in value if not (c.isascii() and (c.isalnum() or c in "._-"))})
            shown = f" ({', '.join(repr(c) for c in odd)} not allowed)" if odd else ""
            raise ValueError(f"a campaign name uses {NAME_RULE}, got {value!r}{shown}")
        return value

    @field_validator("freeze", mode="before")
    @classmethod
    def _freeze_forms(cls, value: Any) -> Any:
        """As YOLOv5's `--freeze` (yolo/freeze.py): one number N is the first N layers; a list is the
        layer indices themselves."""
        if isinstance(value, bool):
            raise ValueError(f"give {FREEZE_FORMS}; got {value!r}")
        if isinstance(value, int):
            if not 0 <= value <= LAYERS:
                raise ValueError(f"a layer count runs from 0 to {LAYERS} (the model has layers 0-{LAYERS - 1}), "
                                 f"got {value}")
            return tuple(range(value))
        if not isinstance(value, (list, tuple)) or not all(_is_layer_index(item) for item in value):
            raise ValueError(f"give {FREEZE_FORMS}; got {value!r}")
        return value

    @field_validator("freeze")
    @classmethod
    def _layer_indices(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        bad = [i for i in value if not 0 <= i < LAYERS]
        if bad:
            raise ValueError(f"layer indices run from 0 to {LAYERS - 1} ({LAYERS - 1} = Detect), got {bad}")
        return tuple(sorted(set(value)))

    @field_validator("fitness_weights")
    @classmethod
    def _weights_count(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        if all(w == 0 for w in value):
            raise ValueError("at least one weight must be non-zero")
        return value

    @field_validator("hyp")
    @classmethod
    def _known_hyps(cls, value: dict[str, float]) -> dict[str, float]:
        unknown = sorted(set(value) - set(Hyperparameters.keys()))
        if unknown:
            raise ValueError(f"unknown hyperparameter(s): {', '.join(unknown)}")
        return value

    @field_validator("search_space")
    @classmethod
    def _space_overrides(cls, value: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
        SearchSpace.default().with_overrides(value)  # raises ValueError naming the bad entry
        return value

    @model_validator(mode="after")
    def _data_is_yaml(self) -> "CampaignSpec":
        if self.trainer == "yolo" and names_a_file("data", self.data) and not self.data.endswith((".yaml", ".yml")):
            raise ValueError(f"data must be a data yaml or one of {', '.join(BUILTIN_DATA)}, got {self.data!r}")
        return self

    @property
    def total_trials(self) -> int:
        """Trials of the search (the confirmation stage adds up to `confirm.trials()` after them)."""
        return self.generations * self.population

    def epochs_of(self, stage: str) -> int:
        """Epochs a trial of `stage` trains: confirmation may retrain at full length."""
        return self.confirm.epochs or self.epochs if stage == "confirm" else self.epochs

    def train_config(self, *, seed: int, save_dir: str, weights: str | None, stage: str = "search") -> "TrainConfig":
        """How every trial of this campaign trains, with one trial's seed and folder: the one
        place where the campaign's training fields become yolo's `TrainConfig`. `weights` is the
        checkpoint trials load (the campaign's, converted when it is a YOLOv5 file); `data` may
        stay 'synthetic' and `device` is left for the worker to choose."""
        from yolo.train import TrainConfig  # torch: only where trials are built, not for the API

        return TrainConfig(
            data=self.data, cfg=self.cfg, epochs=self.epochs_of(stage), img_size=self.img_size, batch_size=self.batch_size,
            seed=seed, workers=self.loader_workers, save_dir=save_dir, weights=weights,
            fitness_weights=self.fitness_weights, progress=False, freeze=self.freeze,
        )

    def build_searcher(self) -> "Searcher":
        """A fresh searcher for this campaign (the coordinator feeds it the stored trials)."""
        space, base = self.space(), self.base_hyp()
        if self.searcher == "random":
            from evolver.random_search import RandomSearcher

            return RandomSearcher(space, base, self.seed)
        if self.searcher in ("tpe", "cmaes"):
            from evolver.optuna_search import OptunaSearcher

            return OptunaSearcher(space, base, self.seed, self.searcher)
        if self.searcher == "yolov5-population":
            from evolver.population_ga import PopulationSearcher

            return PopulationSearcher(space, base, self.seed, population=self.population,
                                      generations=self.generations, settings=self.population_ga,
                                      start_population=self.starting_population())
        if self.searcher == "blx":
            from evolver.blx_search import BLXSearcher

            return BLXSearcher(space, base, self.seed, self.blx)
        from evolver.searcher import GeneticSearcher

        return GeneticSearcher(space, base, self.seed, parent_selection=self.parent_selection, top_n=self.top_n,
                               mutation_probability=self.mutation_probability, sigma=self.sigma,
                               parents_per_worker=self.parents_per_worker)

    def space(self) -> SearchSpace:
        """The searcher's default space (the population GA's: augmentation genes only), then the
        campaign's overrides."""
        default = SearchSpace.augmentation_only() if self.searcher == "yolov5-population" else SearchSpace.default()
        return default.with_overrides(self.search_space)

    def starting_population(self, base_dir: Path | None = None) -> list[dict[str, float]]:
        """The individuals of `start_population` (none without it); ValueError naming the field."""
        if not self.start_population:
            return []
        from evolver.population_file import read_population

        try:
            return read_population(self._resolve(self.start_population, base_dir))
        except ValueError as err:
            raise ValueError(f"start_population: {err}") from None

    def base_hyp(self, base_dir: Path | None = None) -> dict[str, float]:
        """YOLOv5's defaults, then `hyp_file`, then `hyp`; unknown keys in the file are an error."""
        base = Hyperparameters()
        if self.hyp_file:
            path = self._resolve(self.hyp_file, base_dir)
            try:
                base = Hyperparameters.from_yaml(path)
            except yaml.YAMLError as err:
                raise ValueError(f"hyp_file: {yaml_error_line(path, err)}") from None
            except (ValueError, OSError) as err:
                raise ValueError(f"hyp_file: {err}") from None
        return base.replace(**self.hyp).to_dict()

    def check_files(self, base_dir: Path | None = None) -> None:
        """Files the spec names must exist (raises FileNotFoundError naming the field)."""
        for field in FILE_FIELDS:
            value = getattr(self, field)
            if names_a_file(field, value) and not self._resolve(value, base_dir).is_file():
                raise FileNotFoundError(f"{field}: no such file: {value}")
        if self.weights and not looks_like_checkpoint(self._resolve(self.weights, base_dir)):
            raise ValueError(f"weights: {self.weights} is not a PyTorch checkpoint (a .pt file: a zip archive "
                             "or a pickle)")

    def check_data(self) -> None:
        """The data yaml (a file; built-in datasets always pass) loads, every split it names is
        there (`test:` included), and a `confirm.split` it lacks is refused: all before any trial
        runs. Raises ValueError naming the field."""
        if not names_a_file("data", self.data) or self.trainer != "yolo":
            return
        from yolo.data import load_data_config  # lists the splits' images: no decoding

        try:
            config = load_data_config(self.data)
        except yaml.YAMLError as err:
            raise ValueError(f"data: {yaml_error_line(Path(self.data), err)}") from None
        except (ValueError, OSError) as err:
            raise ValueError(f"data: {err}") from None
        if self.confirm.enabled and self.confirm.split is not None:
            try:
                config.split_files(self.confirm.split)
            except ValueError as err:
                raise ValueError(f"confirm.split: {err}") from None

    def resolved(self, base_dir: Path) -> "CampaignSpec":
        """The spec with its file paths made absolute (relative ones are relative to base_dir),
        so it means the same thing when a coordinator elsewhere reads it from SQL."""
        changes: dict[str, Any] = {}
        for field in FILE_FIELDS:
            value = getattr(self, field)
            if names_a_file(field, value):
                changes[field] = str(self._resolve(value, base_dir).resolve())
        return self.model_copy(update=changes)

    @staticmethod
    def _resolve(path: str, base_dir: Path | None) -> Path:
        p = Path(path).expanduser()
        return p if p.is_absolute() or base_dir is None else base_dir / p

    def to_json_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    @classmethod
    def from_yaml(cls, path: str | Path) -> "CampaignSpec":
        """Load a campaign yaml; its relative paths are taken relative to the yaml's folder.

        A file that cannot be read or parsed raises ValueError naming the file (and the line and
        column of a YAML mistake); fields that fail validation raise pydantic's ValidationError."""
        path = Path(path)
        if not path.is_file():
            problem = "is a folder, not a file" if path.is_dir() else "no such file"
            raise ValueError(f"campaign yaml {path}: {problem}")
        try:
            row = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as err:
            raise ValueError(yaml_error_line(path, err)) from None
        except (OSError, UnicodeDecodeError) as err:
            raise ValueError(f"campaign yaml {path}: cannot be read: {err}") from None
        if row is None:
            raise ValueError(f"campaign yaml {path} is empty; it is a mapping of fields (see "
                             "examples/synthetic-campaign.yaml)")
        if not isinstance(row, dict):
            raise ValueError(f"campaign yaml {path}: a campaign yaml is a mapping of fields (name: value), "
                             f"got a {type(row).__name__}")
        return cls.model_validate(row).resolved(path.resolve().parent)


def format_validation_error(err: ValidationError) -> str:
    """One line per bad field, e.g. 'population: Input should be greater than or equal to 1, got 0';
    an unknown field names the closest known one."""
    lines = []
    for problem in err.errors():
        where = ".".join(str(part) for part in problem["loc"]) or "spec"
        if problem["type"] == "extra_forbidden":
            lines.append(f"{where}: unknown field{_did_you_mean(problem['loc'])}")
            continue
        message = problem["msg"].removeprefix("Value error, ")
        value = problem.get("input")
        if isinstance(value, (str, int, float)) and "got " not in message:
            message += f", got {value!r}"
        lines.append(f"{where}: {message}")
    return "\n".join(lines)


def validation_error_text(err: ValidationError, source: str) -> str:
    """'SOURCE: field: problem' for one bad field; for several, how many, then one indented line each."""
    lines = format_validation_error(err).splitlines()
    if len(lines) == 1:
        return f"{source}: {lines[0]}"
    return f"{source}: {len(lines)} fields are invalid:\n" + "\n".join(f"  {line}" for line in lines)


def _did_you_mean(loc: tuple) -> str:
    """' (did you mean 'epochs'?)' for a misspelt field, else the fields that block accepts."""
    model: type[BaseModel] = CampaignSpec
    for part in loc[:-1]:
        field = model.model_fields.get(str(part))
        inner = getattr(field, "annotation", None)
        if not (isinstance(inner, type) and issubclass(inner, BaseModel)):
            return ""
        model = inner
    known = list(model.model_fields)
    close = difflib.get_close_matches(str(loc[-1]), known, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else f"; the fields are: {', '.join(known)}"
