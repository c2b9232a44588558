"""The benchmark's end-to-end case: a tiny random-weight Llama's decode step
patched by fastpe.hf.apply_to (fastpe's column) and unpatched (the torch
peer). Both compute what the unpatched model computes without a cache; the
cache is the prompt's again after every call. Nothing here asserts a speed."""

import copy

import numpy as np
import pytest
from optional import conformance_import

torch = conformance_import("torch")
conformance_import("transformers")

import fastpe  # noqa: E402
import fastpe.hf  # noqa: E402
from fastpe import bench  # noqa: E402
from fastpe.bench import cases, hf_model  # noqa: E402

NEW_OFFSET = bench.NEW_OFFSET
F32 = np.dtype(np.float32)
VOCAB = 50


@pytest.fixture(scope="module")
def state():
    st = cases.LLAMA_STEP.setup((1, 1, VOCAB), F32, np.random.default_rng(0), NEW_OFFSET)
    yield st
    fastpe.hf.revert(st.models["fastpe"])  # Llama's modeling module gets its own function back


def _columns(st):
    """{column: call(i)}: fastpe's (the case's op) and the torch peer, as the benchmark builds them."""
    with bench.load_peers(2, quick=True) as peer_set:
        calls, _, _ = bench.build_peers(cases.LLAMA_STEP, st, F32, NEW_OFFSET, peer_set)
    return {"fastpe": lambda i: cases.LLAMA_STEP.call(fastpe, st, i, None, NEW_OFFSET), "torch": calls["torch"]}


def _uncached_float64_logits(st, i, patch):
    """The unpatched model's weights in float64 (patched by fastpe.hf.apply_to or not) on the prompt and the
    step's token at once, no cache, the step's position last."""
    position = hf_model.PROMPT + cases.call_offset(i, NEW_OFFSET)
    ids = torch.cat([st.prompt, st.token], dim=1)
    position_ids = torch.cat([torch.arange(hf_model.PROMPT), torch.tensor([position])])[None]
    model = copy.deepcopy(st.models["torch"]).double()
    if patch:
        fastpe.hf.apply_to(model)
    with torch.no_grad():
        logits = model(ids, position_ids=position_ids).logits[:, -1:].numpy()
    fastpe.hf.revert(model)
    return logits


def test_only_fastpes_column_is_patched(state):
    def patched(model):
        return any(hasattr(m, "_fastpe_hf_patch") for m in model.modules())

    assert patched(state.models["fastpe"]) and not patched(state.models["torch"])


@pytest.mark.parametrize("i", [0, 3, 1000])
def test_both_columns_compute_the_models_step(state, i):
    """Against the same weights in float64 without a cache (tests/hf's bound): the unpatched float32 step
    within 1e-4 of the largest logit of the unpatched float64 model (a step at the wrong position is off by
    more than the logits themselves), the patched one within three times that error plus what HF's float32
    angles change (the patched and unpatched float64 models differ by that alone)."""
    expected = _uncached_float64_logits(state, i, patch=False)
    angles = np.abs(_uncached_float64_logits(state, i, patch=True) - expected).max()
    got = {name: bench.peer_result(state, call, i, F32)[0] for name, call in _columns(state).items()}
    hf_error = np.abs(got["torch"] - expected).max()
    assert hf_error <= 1e-4 * np.abs(expected).max()
    assert np.abs(got["fastpe"] - expected).max() <= 3 * hf_error + angles


def test_the_cache_is_the_prompts_after_every_call(state):
    for name, step in state.steps.items():
        step(hf_model.PROMPT + 5)
        step(hf_model.PROMPT + 9)
        assert state.caches[name].get_seq_length() == hf_model.PROMPT, name


def test_the_peer_check_passes_and_the_case_is_listed(state):
    with bench.load_peers(2, quick=True) as peer_set:
        calls, _, _ = bench.build_peers(cases.LLAMA_STEP, state, F32, NEW_OFFSET, peer_set)
        figures = bench.check_peers(cases.LLAMA_STEP, state, F32, NEW_OFFSET, calls, None)
    assert set(figures) == {"torch"} and figures["torch"]["max_abs_diff"] <= figures["torch"]["tolerance"]
    case = next(c for c in cases.CASES if c.op is cases.LLAMA_STEP)
    assert {"fastpe.torch", "fastpe.hf", "transformers"} <= set(case.requires) and not case.reference
