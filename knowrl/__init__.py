"""knowrl: declarative experiments for knowledge-point-guided RL of LLM math reasoners.

The top level stays import-light: submodules load on first use, so
`import knowrl` costs nothing that `knowrl --help` would not.
"""

from knowrl._errors import KnowrlError, SpecError, SpecIssue

__version__ = "0.1.0"

__all__ = ["KnowrlError", "SpecError", "SpecIssue", "__version__", "load_spec", "spec_hash"]


def __getattr__(name: str):
    if name in ("load_spec", "spec_hash"):
        from knowrl import spec

        return getattr(spec, name)
    raise AttributeError(f"module 'knowrl' has no attribute {name!r}")
