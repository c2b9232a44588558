"""transformers 5's kernel-hub slot ``rotary_pos_emb``, served on CPU by
fastpe.hf.kernel_mapping() through the ``kernels`` package's own mapping
mechanism, for inference and training.

transformers 5.24 turns its kernel decorations on only with kernels
>= 0.18.2, < 0.19 (transformers.utils.import_utils.KERNELS_MIN_VERSION and
MAX); with another release its apply_rotary_pos_emb is a plain function and
there is no slot to serve. So the slot is exercised twice: wired as
transformers wires it, with the kernels decorators themselves (any release),
and through transformers' own Llama in a fresh interpreter whose version gate
is lifted (the installed kernels release then runs under transformers).
"""

import inspect
import os
import subprocess
import sys
import textwrap

import pytest
from optional import conformance_import, missing_reason

torch = conformance_import("torch")
transformers = conformance_import("transformers")
kernels = pytest.importorskip("kernels", reason=missing_reason("kernels"))

from optional import single_threaded_torch  # noqa: E402,F401 (autouse fixture)
from transformers.models.llama.modeling_llama import apply_rotary_pos_emb as llama_rotary  # noqa: E402

import fastpe.hf  # noqa: E402
from fastpe.hf._hub import RotaryPosEmb  # noqa: E402


def _hf_wiring():
    """HF's wiring of the slot (modeling_llama): the function made a kernel layer named rotary_pos_emb,
    and an attention module that attaches it with use_kernelized_func and calls it by name."""

    @kernels.use_kernel_forward_from_hub("rotary_pos_emb")
    def apply_rotary_pos_emb(q, k, cos, sin, unsqueeze_dim=1):
        return llama_rotary(q, k, cos, sin, unsqueeze_dim)

    @kernels.use_kernelized_func(apply_rotary_pos_emb)
    class Attention(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.proj = torch.nn.Linear(16, 16)

        def forward(self, q, k, cos, sin):
            return apply_rotary_pos_emb(self.proj(q), self.proj(k), cos, sin)

    return apply_rotary_pos_emb, Attention()


def _inputs():
    gen = torch.Generator().manual_seed(0)
    q, k = torch.randn(2, 4, 6, 16, generator=gen), torch.randn(2, 2, 6, 16, generator=gen)
    angles = (torch.arange(6.0)[:, None] + 100) * 10000.0 ** (-torch.arange(0.0, 16, 2) / 16)
    angles = torch.cat([angles, angles], dim=-1)[None].expand(2, 6, 16)
    return q, k, angles.cos(), angles.sin()


@pytest.mark.parametrize("mode", ["INFERENCE", "TRAINING"])
def test_the_slot_is_served_on_cpu(mode):
    function, attention = _hf_wiring()
    q, k, cos, sin = _inputs()
    expected = attention(q, k, cos, sin)
    with kernels.use_kernel_mapping(fastpe.hf.kernel_mapping()):
        kernels.kernelize(attention, mode=getattr(kernels.Mode, mode), device="cpu")
    assert function.forward.__func__ is RotaryPosEmb.forward
    got = attention(q, k, cos, sin)
    for g, e in zip(got, expected):
        torch.testing.assert_close(g, e, rtol=0, atol=1e-5)
    if mode == "TRAINING":
        (got[0].sum() + got[1].square().sum()).backward()
        ours = attention.proj.weight.grad.clone()
        attention.proj.weight.grad = None
        for p in attention.parameters():
            p.grad = None
        kernels.kernelize(attention, mode=kernels.Mode.TRAINING, device="cpu")  # outside the mapping: HF's own
        assert function.forward.__func__ is not RotaryPosEmb.forward
        again = attention(q, k, cos, sin)
        (again[0].sum() + again[1].square().sum()).backward()
        torch.testing.assert_close(ours, attention.proj.weight.grad, rtol=1e-5, atol=1e-5)


def test_every_mode_is_mapped_for_cpu_only():
    mapping = fastpe.hf.kernel_mapping()
    assert list(mapping) == ["rotary_pos_emb"] and list(mapping["rotary_pos_emb"]) == ["cpu"]
    modes = mapping["rotary_pos_emb"]["cpu"]
    m = kernels.Mode
    assert set(modes) == {m.INFERENCE, m.TRAINING, m.INFERENCE | m.TORCH_COMPILE, m.TRAINING | m.TORCH_COMPILE}
    (repository,) = set(modes.values())
    assert repository.load() is RotaryPosEmb
    # what kernels checks of a layer: HF's forward signature, no state, its flags
    assert list(inspect.signature(RotaryPosEmb.forward).parameters) == ["self", "q", "k", "cos", "sin",
                                                                         "unsqueeze_dim"]
    assert RotaryPosEmb.__init__ is torch.nn.Module.__init__
    assert RotaryPosEmb.has_backward and RotaryPosEmb.can_torch_compile


def test_transformers_gate_on_the_kernels_release():
    """The environment fact the docs state: outside transformers' kernels range, no slot exists."""
    from transformers.utils.import_utils import is_kernels_available

    from transformers.models.llama import modeling_llama

    slot = modeling_llama.apply_rotary_pos_emb
    if is_kernels_available():
        assert getattr(slot, "kernel_layer_name", None) == "rotary_pos_emb"
    else:
        assert inspect.isfunction(slot) and not hasattr(slot, "kernel_layer_name")


_THROUGH_TRANSFORMERS = textwrap.dedent("""
    import torch
    import transformers.utils as utils
    import transformers.utils.import_utils as import_utils

    # lift transformers' kernels version gate before any modeling module is imported
    import_utils.is_kernels_available = utils.is_kernels_available = lambda *args, **kwargs: True
    import kernels
    import transformers
    from transformers.models.llama import modeling_llama

    import fastpe.hf

    torch.set_num_threads(1)
    kernels.register_kernel_mapping(fastpe.hf.kernel_mapping())
    config = transformers.LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                      num_attention_heads=4, num_key_value_heads=2, vocab_size=128,
                                      initializer_range=0.2)
    torch.manual_seed(0)
    model = transformers.LlamaForCausalLM(config).eval()
    ids = torch.tensor([[5, 17, 42, 9, 77, 3]])
    with torch.no_grad():
        before = model(ids).logits
    model.set_use_kernels(True)
    served = modeling_llama.apply_rotary_pos_emb.forward.__func__ is fastpe.hf._hub.RotaryPosEmb.forward
    with torch.no_grad():
        after = model(ids).logits
    model.train()  # transformers kernelizes again, for training
    served_training = modeling_llama.apply_rotary_pos_emb.forward.__func__ is fastpe.hf._hub.RotaryPosEmb.forward
    loss = model(ids, labels=ids).loss
    loss.backward()
    print(served, served_training, (after - before).abs().max().item(), loss.item(),
          model.model.layers[0].self_attn.q_proj.weight.grad.abs().sum().item() > 0)
""")


def test_through_transformers_with_the_gate_lifted(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    env["HF_HUB_OFFLINE"] = "1"  # nothing to fetch: kernelize must not reach the network
    result = subprocess.run([sys.executable, "-c", _THROUGH_TRANSFORMERS], capture_output=True, text=True,
                            timeout=300, env=env, cwd=tmp_path)  # not the checkout: its fastpe/ is unbuilt
    assert result.returncode == 0, result.stderr[-3000:]
    served, served_training, diff, loss, has_gradient = result.stdout.split()[-5:]
    assert served == "True" and served_training == "True", result.stdout
    assert float(diff) < 1e-5 and has_gradient == "True"


# inductor's own imports warn about torch.jit (torch 2.13); nothing of fastpe's
@pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated:DeprecationWarning")
def test_the_layer_compiles_without_a_graph_break():
    """RotaryPosEmb says can_torch_compile: kernels maps it for the TORCH_COMPILE modes too."""
    layer = RotaryPosEmb()
    q, k, cos, sin = _inputs()
    q.requires_grad_()
    compiled = torch.compile(layer, fullgraph=True)
    got = compiled(q, k, cos, sin)
    expected = layer(q, k, cos, sin)
    for g, e in zip(got, expected):
        torch.testing.assert_close(g, e, rtol=0, atol=0)
    (grad,) = torch.autograd.grad(got[0].sum(), q)
    (expected_grad,) = torch.autograd.grad(expected[0].sum(), q)
    torch.testing.assert_close(grad, expected_grad, rtol=0, atol=0)
