"""Spec identity: the same experiment always hashes the same, any semantic change re-hashes.

The hash is sha256 over canonical JSON (sorted keys, no whitespace) of the
validated spec with every default filled in, so key order, YAML layout,
`extends` structure and spelling out a default change nothing.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

NON_SEMANTIC: dict[str, Any] = {
    "name": True,
    "description": True,
    "tags": True,
    "tracking": True,
    "registry": True,
    "resources": {"ray_address": True, "storage": True, "backend_dir": True, "retries": True},
    "hints": {"concurrency": True},
    "algorithm": {"keep_checkpoints": True},
}
"""Fields that say where or how a run is labelled or stored, not what is computed."""


LATER_FIELDS: tuple[tuple[str, str, Any], ...] = (("resources", "backend_overrides", []),)
"""(section, field, default) of fields added after specs were first hashed: at their default they are left out,
so every run id made before them stands (a changed id would orphan that run's directory and registry rows)."""


def canonical_json(spec) -> str:
    data = spec.model_dump(mode="json", exclude=NON_SEMANTIC)
    for section, field, default in LATER_FIELDS:
        if (part := data.get(section, {})).get(field, default) == default:
            part.pop(field, None)
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def spec_hash(spec) -> str:
    """sha256 hex digest of the spec's semantic content."""
    return hashlib.sha256(canonical_json(spec).encode()).hexdigest()
