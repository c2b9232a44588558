"""fastpe.hf.apply_to end to end, on a tiny random-weight model of every
supported family (tests/helpers/hf_models.py): the patched model against
the same weights unpatched, in float32 forward, greedy generation with the
KV cache and left padding, bfloat16, and ten AdamW training steps.

The bounds, and why:

* forward, float32: the logits differ by at most three times the float32
  rounding of the unpatched model (its distance to the same weights in
  float64, ~5e-6 here, 10 ulps of the largest logit), plus what HF's
  float32 angles change (the unpatched and patched models in float64 differ
  by that alone: HF forms its angles in float32 in a float64 model too).
  That allows the patched model twice HF's own rounding error. Both round
  every operation to float32 and differ in how the rotation is rounded
  (fastpe: each element once, from float64 angles; HF: float32 angles, then
  three roundings); those differences travel through two layers and the
  head. Always within 64 ulps of the largest logit.
* generation: identical tokens.
* bfloat16: both models against the float32 one; the patched model's error
  is at most twice the unpatched model's, plus 4 bfloat16 ulps of the
  largest logit (HF's bfloat16 model also rounds its frequencies to
  bfloat16; fastpe keeps them in float64).
* training, float32: losses within 2e-5, gradients within 1e-4 (first step)
  and 1e-3 (tenth step) of the largest gradient. AdamW divides each update
  by the gradient's running scale, so rounding differences compound from
  step to step: HF's own float32 run drifts from its float64 run by up to
  5e-4 of the largest gradient over the same ten steps.
"""

import pytest
from optional import conformance_import

torch = conformance_import("torch")
transformers = conformance_import("transformers")

import hf_models  # noqa: E402
from optional import single_threaded_torch  # noqa: E402,F401 (autouse fixture)

import fastpe.hf  # noqa: E402

MODELS = list(hf_models.MODELS)


def _pair(name, dtype=torch.float32):
    model = hf_models.build(name)
    patched = fastpe.hf.apply_to(hf_models.twin(model))
    return model.to(dtype), patched.to(dtype)


def _logits(model, input_ids, attention_mask):
    with torch.no_grad():
        return model(input_ids=input_ids, attention_mask=attention_mask,
                     position_ids=hf_models.padded_positions(attention_mask)).logits.float()


def _rotary_is_patched(model):
    patched = [m for m in model.modules() if type(m).__name__.endswith("RotaryEmbedding")]
    return bool(patched) and all("forward" in m.__dict__ for m in patched)


@pytest.mark.parametrize("name", MODELS)
def test_forward_within_float32_rounding(name):
    model, patched = _pair(name)
    assert _rotary_is_patched(patched) and not _rotary_is_patched(model)
    input_ids, attention_mask = hf_models.prompts(seed=1, lengths=(12, 9))
    expected = _logits(model, input_ids, attention_mask)
    got = _logits(patched, input_ids, attention_mask)
    exact = _logits(hf_models.twin(model).to(torch.float64), input_ids, attention_mask)
    exact_patched = _logits(fastpe.hf.apply_to(hf_models.twin(model).to(torch.float64)), input_ids, attention_mask)
    real = attention_mask.bool()  # padding rows are masked out; their logits mean nothing
    assert torch.isfinite(got[real]).all()
    # HF's float64 Gemma 2 gives NaN on left-padded rows (its own fault, float32 is fine): measure where it is finite
    measured = real & torch.isfinite(exact).all(-1) & torch.isfinite(exact_patched).all(-1)
    assert measured.any()
    rounding = (expected - exact)[measured].abs().max().item()
    angles = (exact_patched - exact)[measured].abs().max().item()
    diff = (got - expected)[real].abs().max().item()
    assert diff <= 3 * rounding + angles, f"{name}: logits differ by {diff:.3g}; HF's float32 rounding is " \
                                         f"{rounding:.3g}, its float32 angles {angles:.3g}"
    assert diff <= 64 * hf_models.float32_ulp(expected[real].abs().max().item())


@pytest.mark.parametrize("name", MODELS)
def test_greedy_generation_with_cache_and_left_padding_gives_the_same_tokens(name):
    model, patched = _pair(name)
    input_ids, attention_mask = hf_models.prompts(seed=2, lengths=(7, 4))
    kwargs = dict(input_ids=input_ids, attention_mask=attention_mask, max_new_tokens=10, do_sample=False,
                  use_cache=True)
    with torch.no_grad():
        expected = model.generate(**kwargs)
        got = patched.generate(**kwargs)
    assert got.shape == (2, 17)
    assert torch.equal(got, expected), f"{name}:\n{got.tolist()}\n!=\n{expected.tolist()}"


@pytest.mark.parametrize("name", MODELS)
def test_bfloat16_runs(name):
    reference = hf_models.build(name)
    model, patched = hf_models.twin(reference).to(torch.bfloat16), fastpe.hf.apply_to(
        hf_models.twin(reference).to(torch.bfloat16))
    input_ids, attention_mask = hf_models.prompts(seed=3, lengths=(12, 9))
    real = attention_mask.bool()
    exact = _logits(reference, input_ids, attention_mask)
    theirs = (_logits(model, input_ids, attention_mask) - exact)[real].abs().max().item()
    got = _logits(patched, input_ids, attention_mask)
    assert torch.isfinite(got[real]).all()
    ours = (got - exact)[real].abs().max().item()
    largest = exact[real].abs().max().item()
    assert ours <= 2 * theirs + 4 * largest * 2.0 ** -8, f"{name}: bfloat16 off by {ours:.3g}, HF's {theirs:.3g}"
    with torch.no_grad():
        tokens = patched.generate(input_ids=input_ids, attention_mask=attention_mask, max_new_tokens=4,
                                  do_sample=False)
    assert tokens.shape == (2, 16)


@pytest.mark.parametrize("name", MODELS)
def test_ten_adamw_steps_match(name):
    model, patched = _pair(name)
    input_ids, attention_mask = hf_models.prompts(seed=4, lengths=(12, 9))
    losses, gradients = hf_models.train(model, input_ids, attention_mask)
    our_losses, our_gradients = hf_models.train(patched, input_ids, attention_mask)
    assert losses[-1] < losses[0] - 1.0, f"{name}: the training does not learn: {losses.tolist()}"
    assert (our_losses - losses).abs().max().item() <= 2e-5, f"{name}: {our_losses.tolist()} vs {losses.tolist()}"
    for step, ours, theirs, tol in zip((1, 10), our_gradients, gradients, (1e-4, 1e-3)):
        relative = ((ours - theirs).abs().max() / theirs.abs().max()).item()
        assert relative <= tol, f"{name}: gradients of step {step} differ by {relative:.3g} of the largest"
