"""`ExperimentSpec`: the single source of truth for one experiment (or a sweep of them)."""

import re
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from knowrl.spec._algorithm import AlgorithmSpec
from knowrl.spec._base import PositiveInt, Seed, SpecModel, raise_issues
from knowrl.spec._data import DataSpec, ModelSpec
from knowrl.spec._eval import EvalSpec
from knowrl.spec._hints import HintsSpec, NoHints
from knowrl.spec._paths import unknown_key_problem
from knowrl.spec._reward import RewardSpec

GpuType = Literal["H100-80GB", "H200-141GB", "A100-80GB", "A100-40GB", "L40S-48GB", "none"]
Backend = Literal["nemo_rl", "verl", "local"]
BACKEND_RELEASES: dict[str, tuple[str, ...]] = {"nemo_rl": ("v0.7.0",), "verl": ("0.4", "0.9"), "local": ("trl",)}
"""The releases each backend's compiler targets, the default first (each has a contract under `backends/`)."""


HYDRA_OVERRIDE = re.compile(r"^(\+{1,2})?([A-Za-z_][\w\-]*(\.[\w\-]+)*)=")
"""`key=value`, `+key=value` or `++key=value`: what verl's and NeMo-RL's command lines take (group 2, the key)."""


def override_key(override: str) -> str:
    """The dotted key a Hydra override sets (`++a.b=1` -> `a.b`); the text itself if it is none."""
    m = HYDRA_OVERRIDE.match(override)
    return m.group(2) if m else override


class RetrySpec(SpecModel):
    """How often a failed job is tried again, and how long to wait first."""

    kp_select: PositiveInt = 2
    """Attempts of a KP-selection job per `knowrl run`."""
    data: PositiveInt = 2
    """Attempts of a data job (rendering the training sets in the backend's format) per `knowrl run`."""
    train: PositiveInt = 2
    """Attempts of a training job per `knowrl run` (each resumes from the last checkpoint)."""
    eval: PositiveInt = 3
    """Attempts of an eval job per `knowrl run` (finished shards are kept)."""
    export: PositiveInt = 2
    """Attempts of an export job (a backend checkpoint converted to a Hugging Face folder) per `knowrl run`."""
    backoff_s: Annotated[float, Field(ge=0.0)] = 10.0
    """Wait before a job's first retry; it doubles with each further one."""

    def attempts(self, kind: str) -> int:
        """Attempts per `knowrl run` of a job of this kind (every kind the planner makes has a field)."""
        return getattr(self, kind)

    def delay(self, attempt: int) -> float:
        """Seconds to wait after the `attempt`-th failed attempt."""
        return self.backoff_s * 2 ** max(0, attempt - 1)


class ResourcesSpec(SpecModel):
    """Where and on what the experiment runs."""

    backend: Backend = "nemo_rl"
    """Training backend: `nemo_rl`, `verl` (the paper's own) or `local` (TRL on CPU)."""
    nodes: PositiveInt = 8
    """Nodes for training."""
    gpus_per_node: Annotated[int, Field(ge=0)] = 8
    """GPUs per node; 0 only with the `local` backend."""
    gpu_type: GpuType = "H100-80GB"
    """GPU model; it selects the throughput assumptions of cost estimates."""
    cpus_per_job: PositiveInt = 1
    """CPUs each job reserves on the `local` backend."""
    ray_address: str = ""
    """Ray cluster (`http://head:8265` for the Jobs API); empty starts an embedded local Ray."""
    storage: str = ".knowrl"
    """Root under which run directories (`<storage>/runs/<run id>`) are written."""
    backend_version: str | None = None
    """Backend release the compiled configs target: nemo_rl `v0.7.0`; verl `0.4` (the KnowRL authors' fork) or
    `0.9`; empty picks the backend's first (default) release, written into the resolved spec."""
    backend_dir: str | None = None
    """Checkout of NeMo-RL or verl on the cluster (default: /opt/nemo-rl or /opt/verl)."""
    retries: RetrySpec = Field(default_factory=RetrySpec)
    """Retry policy per job kind: attempts and backoff."""
    backend_overrides: list[str] = []
    """Hydra overrides in the backend's own keys (`key=value`, `+key=value` for a key its config lacks), given to
    every training job after knowrl's and winning over them: for what the spec does not model, such as verl's
    `actor_rollout_ref.rollout.agent.num_workers`. What the spec models, set in the spec."""

    @field_validator("backend_version", mode="before")
    @classmethod
    def _version_text(cls, v):
        return str(v) if isinstance(v, int | float) and not isinstance(v, bool) else v  # `backend_version=0.9`

    @model_validator(mode="after")
    def _gpus(self) -> "ResourcesSpec":
        issues = []
        if self.backend != "local" and self.gpus_per_node == 0:
            issues.append(("gpus_per_node", f"the {self.backend} backend needs GPUs; use backend: local for CPU"))
        for i, o in enumerate(self.backend_overrides):
            if not HYDRA_OVERRIDE.match(o):
                issues.append((f"backend_overrides.{i}", f"{o!r} is not a Hydra override; write key=value"))
        if self.backend_overrides and self.backend == "local":
            issues.append(("backend_overrides", "the local backend (TRL) takes no Hydra overrides; remove them"))
        releases = BACKEND_RELEASES[self.backend]
        if self.backend_version is None:  # frozen model: resolve the default once, so the hash names the release
            object.__setattr__(self, "backend_version", releases[0])
        elif self.backend_version not in releases:
            issues.append(
                (
                    "backend_version",
                    f"{self.backend} release '{self.backend_version}' is not supported; use one of "
                    f"{', '.join(releases)}",
                )
            )
        raise_issues(issues)
        return self


class TrackingSpec(SpecModel):
    """Experiment tracking."""

    backend: Literal["aim", "none"] = "aim"
    """`aim`, or `none` to track nothing."""
    repo: str = ".knowrl/aim"
    """Aim repository folder."""
    experiment: str | None = None
    """Aim experiment name (defaults to the spec's name)."""


class RegistrySpec(SpecModel):
    """The DuckDB results registry."""

    path: str = ".knowrl/registry.duckdb"
    """DuckDB file that records runs, metrics and eval samples."""


class RangeAxis(SpecModel):
    """A numeric range for random search."""

    low: float
    """Lower end (inclusive)."""
    high: float
    """Upper end."""
    log: bool = False
    """Sample uniformly in log space (low must be > 0)."""
    integer: bool = False
    """Round to an integer."""

    @model_validator(mode="after")
    def _order(self) -> "RangeAxis":
        if self.high <= self.low:
            raise_issues([("high", f"must be > low ({self.low})")])
        if self.log and self.low <= 0:
            raise_issues([("low", "must be > 0 for a log range")])
        return self


class ChoiceAxis(SpecModel):
    """A finite set of values for random search."""

    choices: list[Any] = Field(min_length=1)
    """Values to draw from."""


class RandomAxes(SpecModel):
    """`n` points drawn at random (seeded) from per-key choices or ranges."""

    n: PositiveInt
    """Number of points."""
    seed: Seed = 0
    """Seed of the draw."""
    params: dict[str, RangeAxis | ChoiceAxis] = Field(min_length=1)
    """Dotted key -> range or choices."""


class SweepSpec(SpecModel):
    """Axes over dotted keys; the points are their product (grid x zip x random)."""

    grid: dict[str, list[Any]] = Field(default_factory=dict)
    """Cartesian product: dotted key -> values."""
    zip: dict[str, list[Any]] = Field(default_factory=dict)
    """Paired lists of equal length: dotted key -> values."""
    random: RandomAxes | None = None
    """Random search axes."""

    def axis_keys(self) -> list[str]:
        return [*self.grid, *self.zip, *(self.random.params if self.random else {})]


class ExperimentSpec(SpecModel):
    """One KnowRL experiment: data, KP hints, the RL algorithm, evaluation and where it runs."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$", max_length=100)
    """Experiment name (letters, digits, `.`, `_`, `-`); not part of the spec hash."""
    description: str = ""
    """Free text; not part of the spec hash."""
    tags: list[str] = Field(default_factory=list)
    """Labels for filtering runs; not part of the spec hash."""
    seed: Seed = 42
    """Global seed (data order, sampling, initialisation)."""
    model: ModelSpec
    """The policy model."""
    data: DataSpec = Field(default_factory=DataSpec)
    """Training and validation data."""
    hints: HintsSpec = Field(default_factory=lambda: NoHints(strategy="none"))
    """KP selection for training prompts."""
    algorithm: AlgorithmSpec = Field(default_factory=AlgorithmSpec)
    """GRPO/DAPO hyperparameters and clip schedule."""
    reward: RewardSpec = Field(default_factory=RewardSpec)
    """Reward rule."""
    eval: EvalSpec = Field(default_factory=EvalSpec)
    """Evaluation suites and hint modes."""
    resources: ResourcesSpec = Field(default_factory=ResourcesSpec)
    """Backend and cluster."""
    tracking: TrackingSpec = Field(default_factory=TrackingSpec)
    """Experiment tracking; not part of the spec hash."""
    registry: RegistrySpec = Field(default_factory=RegistrySpec)
    """Results registry; not part of the spec hash."""
    sweep: SweepSpec | None = None
    """Sweep axes; a spec with a sweep stands for many experiments."""

    @model_validator(mode="after")
    def _cross_field(self) -> "ExperimentSpec":
        issues: list[tuple[str, str]] = []
        a, ctx = self.algorithm, self.model.max_context
        if ctx is not None and a.max_prompt_length + a.max_response_length > ctx:
            issues.append(
                (
                    "algorithm.max_response_length",
                    f"max_prompt_length + max_response_length = {a.max_prompt_length + a.max_response_length} "
                    f"exceeds model.max_context ({ctx})",
                )
            )
        if self.sweep is not None:
            seen: set[str] = set()
            for key in self.sweep.axis_keys():
                if key in seen:
                    issues.append((f"sweep.{key}", "key appears in more than one axis"))
                seen.add(key)
                problem = unknown_key_problem(ExperimentSpec, key)
                if problem:
                    issues.append((f"sweep.{key}", problem))
            lengths = {k: len(v) for k, v in self.sweep.zip.items()}
            if len(set(lengths.values())) > 1:
                issues.append(("sweep.zip", f"lists must have equal lengths, got {lengths}"))
            if any(len(v) == 0 for v in [*self.sweep.grid.values(), *self.sweep.zip.values()]):
                issues.append(("sweep", "an axis has no values"))
            if not self.sweep.axis_keys():
                issues.append(("sweep", "declares no axis (grid, zip or random)"))
        raise_issues(issues)
        return self
