"""The end-to-end case: one decode step of a tiny random-weight Hugging Face
Llama (built from a ``LlamaConfig``, nothing downloaded), patched by
``fastpe.hf.apply_to`` (the fastpe column) and unpatched (the torch peer),
the same weights in both.

Each call feeds one token at a new position (``position_ids``: the prompt's
length plus the case's offset of the call) against the KV cache of a
32-token prompt, and returns the logits; the cache is cut back to the
prompt after the call (``DynamicCache.crop``, inside the timed call for
both models), so every call sees the same cache. The rotation is a small
part of a model's step, so the gain is small: this is the honest
end-to-end figure beside the rotary cases.

Both models live in one process: the patched one's modeling module holds
fastpe.hf's dispatcher, which the unpatched model's attention layers pass
through on their way to Hugging Face's own function (a check of its cos
argument a layer).
"""

import importlib

import numpy as np

from .cases import State, call_offset

PROMPT = 32
# initializer_range 0.2 (HF's default 0.02 leaves attention scores so small that a wrong rotation would hardly
# move the logits, and the peer check would not see it)
_SIZES = dict(initializer_range=0.2, vocab_size=1000, hidden_size=256, intermediate_size=512, num_hidden_layers=4,
              num_attention_heads=8, num_key_value_heads=2, max_position_embeddings=8192,
              rope_parameters={"rope_type": "default", "rope_theta": 10000.0})


def _modules():
    """(torch, transformers, fastpe.hf): the case requires them (Case.requires)."""
    return tuple(importlib.import_module(m) for m in ("torch", "transformers", "fastpe.hf"))


def setup(shape, dtype, rng, options):
    """The two models and their prompt caches. shape: (1, 1, vocab_size), the logits of a step (what the
    probe sweeps); dtype: the models' (float32)."""
    torch, transformers, fastpe_hf = _modules()
    config = transformers.LlamaConfig(**{**_SIZES, "vocab_size": shape[-1]})
    torch.manual_seed(int(rng.integers(1 << 31)))
    with torch.no_grad():
        plain = transformers.LlamaForCausalLM(config).to(getattr(torch, np.dtype(dtype).name)).eval()
        patched = transformers.LlamaForCausalLM(config).to(plain.dtype).eval()
        patched.load_state_dict(plain.state_dict())
        fastpe_hf.apply_to(patched)
    prompt = torch.from_numpy(rng.integers(0, shape[-1], size=(1, PROMPT)))
    token = torch.from_numpy(rng.integers(0, shape[-1], size=(1, 1)))
    st = State(target=np.zeros(shape, dtype=dtype), pattern=np.zeros(shape[-1:], dtype=dtype))
    st.prompt, st.token = prompt, token
    st.models = {"fastpe": patched, "torch": plain}
    st.caches, st.steps = {}, {}
    for name, model in st.models.items():
        with torch.no_grad():
            st.caches[name] = model(prompt, use_cache=True).cache
        st.steps[name] = _step(torch, model, st.caches[name], token)
    return st


def _step(torch, model, cache, token):
    def step(position):
        with torch.no_grad():
            logits = model(token, cache=cache, use_cache=True, position_ids=torch.tensor([[position]])).logits
        cache.crop(-1)  # the step's token out again (transformers 5: a negative count of tokens)
        return (logits,)

    return step


def call(api, st, i, num_threads, options):
    """fastpe's column: the patched model's step (its rotations take fastpe.torch's own threads)."""
    return st.steps["fastpe"](PROMPT + call_offset(i, options))


def torch_peer(op, st, dtype, options, torch, threads):
    """The torch column: the unpatched model's step at the same positions."""
    return lambda i: st.steps["torch"](PROMPT + call_offset(i, options))
