"""fastpe.hf.apply_to and revert: what is refused (and left untouched),
what a patch changes and what it leaves alone, dynamic scaling's state,
copies, gradient checkpointing."""

import copy
import math
import sys

import pytest
from optional import conformance_import

torch = conformance_import("torch")
transformers = conformance_import("transformers")

import hf_models  # noqa: E402
from optional import single_threaded_torch  # noqa: E402,F401 (autouse fixture)

import fastpe.hf  # noqa: E402
import fastpe.torch  # noqa: E402

LLAMA_MODELING = sys.modules[transformers.LlamaForCausalLM.__module__]
SMALL = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=1, num_attention_heads=4,
             num_key_value_heads=2, **hf_models.COMMON)


def _logits(model, input_ids, **kwargs):
    with torch.no_grad():
        return model(input_ids=input_ids, **kwargs).logits


def _ids(n=9, seed=0, batch=2):
    return torch.randint(3, hf_models.VOCAB, (batch, n), generator=torch.Generator().manual_seed(seed))


def _untouched(model, modeling):
    rotary = [m for m in model.modules() if type(m).__name__.endswith("RotaryEmbedding")]
    return all("forward" not in m.__dict__ for m in rotary) and \
        not hasattr(getattr(modeling, "apply_rotary_pos_emb", None), "__wrapped__")


def _refused(model, exc, match):
    modeling = sys.modules[type(model).__module__]
    with pytest.raises(exc, match=match):
        fastpe.hf.apply_to(model)
    assert _untouched(model, modeling), "a refused apply_to changed something"


def test_a_model_without_rotary_is_refused():
    model = transformers.GPT2LMHeadModel(transformers.GPT2Config(n_embd=64, n_layer=1, n_head=4, **hf_models.COMMON))
    _refused(model, TypeError, r"cannot patch GPT2LMHeadModel: it has no rotary embedding module.*It patches the "
                               r"models whose rotary module is one of .*LlamaRotaryEmbedding")
    with pytest.raises(TypeError, match="must be a transformers model"):
        fastpe.hf.apply_to("llama")


def test_an_unknown_rotary_module_is_refused():
    model = transformers.OlmoForCausalLM(transformers.OlmoConfig(**SMALL))
    _refused(model, TypeError, r"its rotary module model.rotary_emb \(transformers.models.olmo.modeling_olmo."
                               r"OlmoRotaryEmbedding\) is of a class fastpe.hf does not know")


def test_no_partial_patch():
    """A known and an unknown rotary module in one model: neither is patched."""
    llama = hf_models.build("llama")
    both = torch.nn.ModuleDict({"llama": llama, "olmo": transformers.OlmoForCausalLM(transformers.OlmoConfig(**SMALL))})
    with pytest.raises(TypeError, match="OlmoRotaryEmbedding"):
        fastpe.hf.apply_to(both)
    assert _untouched(llama, LLAMA_MODELING)


def test_a_scaling_fastpe_reads_otherwise_is_refused():
    """Llama's default rope ignores partial_rotary_factor (the scaling reader applies it, as for
    GPT-NeoX and Phi): a Llama config that sets one would rotate differently. Refused."""
    config = transformers.LlamaConfig(**SMALL, rope_parameters={"rope_type": "default", "rope_theta": 10000.0,
                                                                "partial_rotary_factor": 0.5})
    _refused(transformers.LlamaForCausalLM(config), ValueError,
             r"the scaling of model.rotary_emb, rope_type='default', reads differently in fastpe: 4 frequencies "
             r".* where the model's rotary module holds 8")


def test_an_unreadable_scaling_is_refused():
    model = hf_models.build("llama-yarn")
    model.model.rotary_emb.config = copy.deepcopy(model.config)
    model.model.rotary_emb.config.rope_parameters["beta_fast"] = -1.0
    _refused(model, ValueError, r"the scaling of model.rotary_emb, rope_type='yarn', cannot be applied: "
                                r"scaling\['beta_fast'\] must be > 0")


def test_a_replaced_rotary_forward_is_refused():
    model = hf_models.build("llama")
    model.model.rotary_emb.forward = lambda x, position_ids: None
    with pytest.raises(TypeError, match="the forward of model.rotary_emb was replaced by something other than"):
        fastpe.hf.apply_to(model)


def test_gptj_that_cannot_run_is_refused():
    """Attention layers that pass whole 16-channel heads to a table of 8 rotary channels: the unpatched model
    fails on its first forward, the patch is refused."""
    model = hf_models.build("gptj")
    for layer in model.modules():
        if type(layer).__name__ == "GPTJAttention":
            layer.rotary_dim = None
    _refused(model, ValueError, "rotates 8 channels .* but the attention passes 16 of its 16-channel heads")


def test_revert_gives_back_the_model_and_the_modeling_module():
    original = LLAMA_MODELING.apply_rotary_pos_emb
    model = hf_models.build("llama")
    ids = _ids()
    before = _logits(model, ids)
    assert fastpe.hf.apply_to(model) is model
    assert LLAMA_MODELING.apply_rotary_pos_emb.__wrapped__ is original
    assert not torch.equal(_logits(model, ids), before)  # another rounding: it is patched
    assert fastpe.hf.revert(model) is model
    assert LLAMA_MODELING.apply_rotary_pos_emb is original
    assert torch.equal(_logits(model, ids), before)
    assert fastpe.hf.revert(model) is model  # not patched: nothing to do
    assert torch.equal(_logits(model, ids), before)


def test_unpatched_models_of_the_family_compute_what_they_did():
    patched, other = hf_models.build("llama"), hf_models.build("mistral")
    plain = hf_models.build("llama", seed=1)
    ids = _ids()
    before = _logits(plain, ids)
    fastpe.hf.apply_to(patched)
    try:
        assert hasattr(LLAMA_MODELING.apply_rotary_pos_emb, "__wrapped__")
        assert torch.equal(_logits(plain, ids), before), "the dispatcher changed an unpatched model"
        assert _untouched(other, sys.modules[type(other).__module__])
    finally:
        fastpe.hf.revert(patched)


def test_a_second_apply_to_and_a_copy():
    model = hf_models.build("llama3")
    ids = _ids()
    expected = _logits(fastpe.hf.apply_to(model), ids)
    assert torch.equal(_logits(fastpe.hf.apply_to(model), ids), expected)
    twin = copy.deepcopy(model)
    fastpe.hf.revert(model)  # takes the dispatcher out: no patched model is left but the copy
    assert torch.equal(_logits(twin, ids), expected), "the copy puts the dispatcher back"
    fastpe.hf.revert(twin)


def test_the_stand_ins_are_nan_and_carry_the_positions():
    model = fastpe.hf.apply_to(hf_models.build("llama-yarn"))
    try:
        x = torch.zeros(2, 5, 64)
        position_ids = torch.stack([torch.arange(5) + 40, torch.arange(5)])
        cos, sin = model.model.rotary_emb(x, position_ids)
        assert cos.shape == sin.shape == (2, 5, 16)
        assert torch.isnan(cos).all() and torch.isnan(sin).all()
        q, k = torch.randn(2, 4, 5, 16), torch.randn(2, 2, 5, 16)
        got = fastpe.hf.apply_rotary_pos_emb(q, k, cos, sin)
        expected = fastpe.torch.apply_rotary(q, k, positions=position_ids, scaling=model.config)
        for g, e in zip(got, expected):
            assert torch.equal(g, e)
    finally:
        fastpe.hf.revert(model)


def test_dynamic_keeps_hfs_state():
    """HF's dynamic scaling keeps the frequencies of the longest sequence seen, back to the original ones
    below max_position_embeddings (8 here). A length-9 call after a length-20 one uses length 20's."""
    model = hf_models.build("llama-dynamic")
    patched = fastpe.hf.apply_to(hf_models.twin(model))
    for n in (12, 5, 10, 20, 9, 3):
        ids = _ids(n, seed=n)
        expected, got = _logits(model, ids), _logits(patched, ids)
        assert (got - expected).abs().max().item() < 2e-5, f"length {n}"
        assert int(patched.model.rotary_emb.max_seq_len_cached) == int(model.model.rotary_emb.max_seq_len_cached)
        if n == 9:  # the state matters: a fresh model at length 9 rotates otherwise
            fresh = _logits(hf_models.twin(model), ids)
            assert (fresh - expected).abs().max().item() > 1e-2
    fastpe.hf.revert(patched)


def test_activation_checkpointing():
    model = hf_models.build("qwen3")
    patched = fastpe.hf.apply_to(hf_models.twin(model))
    patched.activation_checkpointing_enable()
    ids, mask = hf_models.prompts(seed=6, lengths=(9, 6))
    losses, gradients = hf_models.train(model, ids, mask, steps=2)
    our_losses, our_gradients = hf_models.train(patched, ids, mask, steps=2)
    assert (our_losses - losses).abs().max().item() < 2e-5
    for ours, theirs in zip(our_gradients, gradients):
        assert ((ours - theirs).abs().max() / theirs.abs().max()).item() < 1e-4
    assert math.isfinite(our_losses[-1].item())
    fastpe.hf.revert(patched)


def test_one_run_of_positions_takes_an_offset():
    """A prefill without padding or a decode step of one sequence rotates by offset (fastpe's fast path):
    the same bits as by positions. Anything else keeps its positions."""
    from fastpe.hf._rotation import RotaryCall

    frequencies = {"scaling": {"rope_type": "linear", "factor": 2.0, "rope_theta": 10000.0}}
    q, k = torch.randn(1, 4, 6, 16), torch.randn(1, 2, 6, 16)
    run = RotaryCall(torch.arange(6)[None] + 1000, 16, "half", frequencies)
    assert run.where == {"offset": 1000}
    by_positions = fastpe.torch.apply_rotary(q, k, positions=torch.arange(6)[None] + 1000, **frequencies)
    for got, expected in zip(run.rotate(q, k, -2), by_positions):
        assert torch.equal(got, expected)
    assert RotaryCall(torch.tensor([[7]]), 16, "half", frequencies).where == {"offset": 7}
    for positions in (torch.tensor([[0, 1, 3]]), torch.stack([torch.arange(3), torch.arange(3) + 1]),
                      torch.arange(3.0)[None]):
        assert set(RotaryCall(positions, 16, "half", frequencies).where) == {"positions"}
