"""The JSON Schema editors use (via `# yaml-language-server: $schema=...`)."""

from __future__ import annotations

import inspect
import json
from pathlib import Path

SCHEMA_PATH = Path("schemas/experiment.schema.json")


def json_schema() -> dict:
    from knowrl.spec._docs import field_docs, models_under
    from knowrl.spec._experiment import ExperimentSpec

    schema = ExperimentSpec.model_json_schema()
    models = models_under(ExperimentSpec)
    for name, node in [("ExperimentSpec", schema), *schema.get("$defs", {}).items()]:
        cls = models.get(name)
        if cls is None:
            continue
        node.setdefault("description", inspect.cleandoc(cls.__doc__ or ""))
        for field, doc in field_docs(cls).items():
            node.get("properties", {}).get(field, {})["description"] = doc
    # `extends` is consumed by the loader before validation, but editors should know it.
    schema["properties"]["extends"] = {
        "description": "Base spec file(s), relative to this file; later ones and this file win (deep merge).",
        "anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}],
    }
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}


def schema_text() -> str:
    return json.dumps(json_schema(), indent=2, ensure_ascii=False) + "\n"


def write_schema(path: Path = SCHEMA_PATH) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(schema_text(), encoding="utf-8")
    return path
