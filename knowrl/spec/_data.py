"""What model is trained and on which data."""

import re
from typing import Literal

from pydantic import Field, field_validator

from knowrl.spec._base import DEFAULT_PROMPT_SUFFIX, PositiveInt, SpecModel

RecordFormat = Literal["auto", "knowrl-annotations", "knowrl-train", "verl-math", "plain"]

_HF_URI = re.compile(r"^hf://(?P<repo>[\w.-]+/[\w.-]+)(?::(?P<config>[\w.-]+))?(?:@(?P<split>[\w.\[\]:%-]+))?$")


def parse_hf_uri(uri: str) -> tuple[str, str | None, str | None]:
    """Split `hf://org/name[:config][@split]` into (repo, config, split); ValueError if malformed."""
    m = _HF_URI.match(uri)
    if not m:
        raise ValueError(f"malformed dataset URI {uri!r}; expected hf://org/name[:config][@split]")
    return m["repo"], m["config"], m["split"]


class DatasetSource(SpecModel):
    """One dataset: a local file or folder, or a Hugging Face dataset."""

    source: str = Field(min_length=1)
    """A local .jsonl/.parquet file or a folder of them, or `hf://org/name[:config][@split]`."""
    format: RecordFormat = "auto"
    """Record format; `auto` detects it from the first record's fields."""
    name: str | None = None
    """Display name (defaults to the file or split name)."""
    limit: PositiveInt | None = None
    """Read at most this many records (for quick runs)."""

    @field_validator("source")
    @classmethod
    def _check_uri(cls, v: str) -> str:
        if v.startswith("hf://"):
            parse_hf_uri(v)
        elif "://" in v:
            raise ValueError(f"unsupported scheme in {v!r}; use a local path or hf://org/name@split")
        return v


class ModelSpec(SpecModel):
    """The policy model that is trained (and evaluated)."""

    path: str = Field(min_length=1)
    """A local Hugging Face folder or a hub id such as `nvidia/OpenMath-Nemotron-1.5B`."""
    tokenizer: str | None = None
    """Tokenizer path or hub id; defaults to `path`."""
    use_chat_template: bool = True
    """Wrap the prompt in the tokenizer's chat template (one user message, no system prompt)."""
    dtype: Literal["bfloat16", "float16", "float32", "auto"] = "bfloat16"
    """Parameter dtype for training and generation on GPUs (CPU jobs compute in float32)."""
    max_context: PositiveInt | None = None
    """The model's context window in tokens, if known; prompt + response must fit in it."""


class DataSpec(SpecModel):
    """Training and validation data, and the instruction appended to every prompt."""

    train: list[DatasetSource] = Field(default_factory=list)
    """Training datasets, concatenated in order."""
    validation: list[DatasetSource] = Field(default_factory=list)
    """Validation sets scored every `algorithm.validate_every` steps during training."""
    prompt_suffix: str = DEFAULT_PROMPT_SUFFIX
    """The answer-format instruction that ends every prompt."""
    shuffle: bool = True
    """Shuffle the training data once (seeded by `seed`); the order is fixed across phases."""
