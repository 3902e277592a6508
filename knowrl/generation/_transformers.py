"""The `transformers` generator: local, batched, CPU or GPU.

Samples are generated in batches of `batch_size` (prompt, sample) jobs with
left padding; each batch is seeded with its first job's seed, so a run is
reproducible for the same batch size.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from knowrl._errors import KnowrlError
from knowrl.generation._base import Completion, Messages, SamplingParams

_MODEL_HINT = (
    "point the model (model.path, or --model) at a local Hugging Face folder "
    "(for a tiny offline model: `knowrl model tiny --out DIR`), or run where the model hub is reachable"
)


def check_local_model(path: str) -> None:
    """A local folder given as a model must be one; a hub id (`org/name`) is left to `from_pretrained`.

    Cheap and import-free, so `knowrl run` can say it before starting Ray
    rather than every job failing with the tokenizer's own puzzling error.
    """
    p = Path(path).expanduser()
    looks_local = p.exists() or path.startswith(("/", ".", "~")) or path.count("/") > 1
    if looks_local and not (p / "config.json").is_file():
        what = "does not exist" if not p.exists() else "has no config.json"
        raise KnowrlError(f"cannot load model '{path}': the folder {what}", hint=_MODEL_HINT)


def dtype_keyword(transformers_version: str) -> str:
    """`from_pretrained`'s dtype argument: `dtype` since transformers 4.56, `torch_dtype` before.

    knowrl's eval and selection jobs run with a cluster's own transformers (the
    authors' verl fork pins 4.51.1), where an unknown `dtype` lands in the
    model config as a torch.dtype and breaks its JSON repr.
    """
    from packaging.version import Version

    return "dtype" if Version(transformers_version) >= Version("4.56") else "torch_dtype"


def load_model_and_tokenizer(path: str, dtype: str = "float32", device: str | None = None):
    """`from_pretrained` for a local folder or a hub id, with a clear error when it cannot be reached."""
    import torch
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    check_local_model(path)
    transformers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()
    local = Path(path).is_dir()
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=local)
        model = AutoModelForCausalLM.from_pretrained(
            path,
            **{dtype_keyword(transformers.__version__): "auto" if dtype == "auto" else getattr(torch, dtype)},
            local_files_only=local,
        )
    except OSError as e:
        raise KnowrlError(f"cannot load model '{path}': {str(e).splitlines()[0]}", hint=_MODEL_HINT) from None
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    return model.to(device).eval(), tokenizer


class TransformersGenerator:
    def __init__(
        self,
        model_path: str,
        *,
        dtype: str = "float32",
        batch_size: int = 16,
        use_chat_template: bool = True,
        device: str | None = None,
    ) -> None:
        self.model_id = model_path
        self.batch_size = batch_size
        self.use_chat_template = use_chat_template
        self.model, self.tokenizer = load_model_and_tokenizer(model_path, dtype, device)
        self.on_batch: Callable[[int], None] | None = None
        """Called with the number of samples finished after each batch (progress bars)."""

    def prompt_text(self, messages: Messages) -> str:
        if self.use_chat_template and self.tokenizer.chat_template:
            return self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        return "\n\n".join(m["content"] for m in messages)

    def generate(
        self, prompts: Sequence[Messages], params: SamplingParams, n: int, seeds: Sequence[Sequence[int]]
    ) -> list[list[Completion]]:
        import torch

        # Each prompt is tokenised once, not once per sample: batches are padded from the ids.
        ids = self.tokenizer([self.prompt_text(p) for p in prompts], add_special_tokens=False)["input_ids"]
        jobs = [(i, j) for i in range(len(prompts)) for j in range(n)]
        out: list[list[Completion | None]] = [[None] * n for _ in prompts]
        eos = self.tokenizer.eos_token_id
        for start in range(0, len(jobs), self.batch_size):
            batch = jobs[start : start + self.batch_size]
            enc = self.tokenizer.pad({"input_ids": [ids[i] for i, _ in batch]}, return_tensors="pt").to(
                self.model.device
            )
            torch.manual_seed(seeds[batch[0][0]][batch[0][1]])
            sample = params.temperature > 0
            with torch.inference_mode():
                generated = self.model.generate(
                    **enc,
                    do_sample=sample,
                    temperature=params.temperature if sample else None,
                    top_p=params.top_p if sample else None,
                    top_k=params.top_k if sample and params.top_k > 0 else None,
                    max_new_tokens=params.max_tokens,
                    pad_token_id=self.tokenizer.pad_token_id,
                    eos_token_id=eos,
                )
            new = generated[:, enc["input_ids"].shape[1] :].tolist()
            lengths = [row.index(eos) if eos in row else len(row) for row in new]
            texts = self.tokenizer.batch_decode(
                [row[:k] for row, k in zip(new, lengths, strict=True)], skip_special_tokens=True
            )
            for (i, j), text, k, row in zip(batch, texts, lengths, new, strict=True):
                finish = "stop" if k < len(row) else "length"
                out[i][j] = Completion(text=text, tokens=k, finish_reason=finish, seed=seeds[i][j])
            if self.on_batch:
                self.on_batch(len(batch))
        return out  # type: ignore[return-value]

    def close(self) -> None:
        self.model = None
