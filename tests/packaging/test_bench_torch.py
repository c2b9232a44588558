"""The benchmark's cases that time fastpe.torch: its decode step beside the
rotary peers, and the forward and backward of the rotation beside Hugging
Face's eager formula under autograd. Each computes what the reference (or
an independent formula) computes; nothing here asserts a speed."""

import numpy as np
import pytest
from optional import missing_reason

import fastpe
from fastpe import bench, reference
from fastpe.bench import cases, measure

pytest.importorskip("torch", reason=missing_reason("torch"))
pytest.importorskip("fastpe.torch", reason=missing_reason("torch"))

NEW_OFFSET = bench.NEW_OFFSET
F32 = np.dtype(np.float32)


def _state(op, shape, seed=0):
    return op.setup(shape, F32, np.random.default_rng(seed), NEW_OFFSET)


def test_the_fastpe_torch_decode_step_is_the_reference_rotation():
    st = _state(cases.TORCH_ROTARY, (1, 4, 3, 16))
    for i in (0, 5):
        got = bench.peer_result(st, lambda i: cases.TORCH_ROTARY.call(fastpe, st, i, None, NEW_OFFSET),
                                i, F32)
        expected = bench.peer_result(st, lambda i: cases.ROTARY.call(reference, st, i, None, NEW_OFFSET), i, F32)
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)


def test_the_fastpe_torch_decode_step_has_the_rotary_peers():
    st = _state(cases.TORCH_ROTARY, (1, 4, 1, 16))
    with bench.load_peers(2, quick=True) as peer_set:
        calls, _, _ = bench.build_peers(cases.TORCH_ROTARY, st, F32, NEW_OFFSET, peer_set)
        figures = bench.check_peers(cases.TORCH_ROTARY, st, F32, NEW_OFFSET, calls, None)
    assert {"numpy", "torch"} <= set(figures)


def test_the_gradients_are_the_inverse_rotation_of_the_output_gradients():
    """Independently of both implementations: the gradient of a rotation by
    angle a is the output gradient rotated by -a, which is the reference's
    rotation at the negated positions."""
    shape = (2, 3, 5, 16)
    st = _state(cases.ROTARY_TRAIN, shape)
    i = 7
    offset = cases.call_offset(i, NEW_OFFSET)
    grads = cases.ROTARY_TRAIN.call(fastpe, st, i, None, NEW_OFFSET)
    positions = -(offset + np.arange(shape[-2]))
    for grad, grad_out in zip(grads, st.grad_out):
        expected = reference.apply_rotary(grad_out.numpy().astype(np.float64), positions=positions)
        np.testing.assert_allclose(grad.numpy(), expected, rtol=0, atol=1e-5)


def test_hf_training_peer_agrees_with_fastpe_torch():
    st = _state(cases.ROTARY_TRAIN, (1, 4, 9, 16))
    with bench.load_peers(2, quick=True) as peer_set:
        calls, missing, _ = bench.build_peers(cases.ROTARY_TRAIN, st, F32, NEW_OFFSET, peer_set)
        assert set(calls) == {"torch"}  # the only peer with a training builder
        figures = bench.check_peers(cases.ROTARY_TRAIN, st, F32, NEW_OFFSET, calls, None)
    assert figures["torch"]["max_abs_diff"] <= figures["torch"]["tolerance"]


def test_the_torch_cases_run_and_report(monkeypatch):
    monkeypatch.setattr(measure, "load_average", lambda: 0.0)
    small = [bench.Case("torch decode", cases.TORCH_ROTARY, (1, 4, 1, 16), options=NEW_OFFSET, reference=False,
                        requires=("fastpe.torch",)),
             bench.Case("torch training", cases.ROTARY_TRAIN, (1, 4, 9, 16), options=NEW_OFFSET, reference=False,
                        requires=("fastpe.torch",))]
    report = bench.run(cases=small, repeat=2, budget_s=0.5, log=None, quick=True)
    decode, training = report.results
    assert decode.rows()[0]["best_peer"] is not None
    assert training.rows()[0]["peers_s"]["torch"] > 0
    assert [c.name for c in bench.CASES if "fastpe.torch" in c.requires] == [
        "rotary decode step, fastpe.torch", "rotary forward+backward, fastpe.torch", "tiny Llama decode step, fastpe.hf"]
