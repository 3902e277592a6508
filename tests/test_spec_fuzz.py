"""Mutated specs either validate or raise `KnowrlError` -- never any other exception."""

from __future__ import annotations

import contextlib
import copy

from conftest import EXPERIMENTS
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from knowrl import KnowrlError
from knowrl.spec import load_data, load_spec, validate

BASES = [
    load_data(EXPERIMENTS / name)[0] for name in ("css_main.yaml", "quickstart-tiny.yaml", "sweeps/clip_high.yaml")
]

leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**12), 10**12),
    st.floats(allow_nan=True),
    st.text(max_size=12),
    st.sampled_from(["css", "none", "dapo", "hf://a/b@c", "hf://bad", "${seed}", "${nope}", "0.5", "[1]", "-1"]),
)
value = st.recursive(
    leaf, lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=6), kids, max_size=3), max_leaves=6
)


def paths(tree, prefix=()):
    yield prefix
    if isinstance(tree, dict):
        for k, v in tree.items():
            yield from paths(v, (*prefix, k))
    elif isinstance(tree, list):
        for i, v in enumerate(tree):
            yield from paths(v, (*prefix, i))


def mutate(tree, path, op, new):
    tree = copy.deepcopy(tree)
    if not path:
        return new if op == "set" else tree
    node = tree
    for part in path[:-1]:
        node = node[part]
    last = path[-1]
    if op == "delete":
        del node[last]
    elif op == "add" and isinstance(node[last], dict):
        node[last]["unexpected_key"] = new
    else:
        node[last] = new
    return tree


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(range(len(BASES))), st.data(), st.sampled_from(["set", "delete", "add"]), value)
def test_mutated_specs_fail_only_with_knowrl_errors(base_index, data, op, new):
    base = BASES[base_index]
    path = data.draw(st.sampled_from(list(paths(base))[1:]))
    mutated = mutate(base, path, op, new)
    try:
        validate(mutated)
    except KnowrlError as e:
        assert e.problems  # type: ignore[attr-defined]


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
)
@given(st.text(alphabet=st.sampled_from(list("abc.=[]{}:,'\" 01-$\n\t#&*!|>%@`")), max_size=30))
def test_arbitrary_override_text_fails_only_with_knowrl_errors(tmp_path_factory, override):
    with contextlib.suppress(KnowrlError):
        load_spec(EXPERIMENTS / "css_main.yaml", [override])


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
)
@given(st.binary(max_size=200) | st.text(max_size=200))
def test_arbitrary_files_fail_only_with_knowrl_errors(tmp_path_factory, content):
    path = tmp_path_factory.mktemp("fuzz") / "s.yaml"
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8", "surrogatepass"))
    with contextlib.suppress(KnowrlError):
        load_spec(path)
