"""Tiny random-weight Hugging Face models, one per rotary wiring fastpe.hf
supports, built from configs (nothing is downloaded): two layers, hidden
size 64, a vocabulary of 128 tokens. Their rope scalings are chosen so that
the tests' prompts and generations cross what the scaling depends on: the
dynamic model's max_position_embeddings and the longrope model's
original_max_position_embeddings are 8, shorter than a prompt and its
generation.

Import only after torch and transformers (the tests skip, naming the
conformance extra, where they are missing).
"""

import logging
import math

import torch
import transformers

VOCAB = 128
PAD, BOS = 0, 1
# initializer_range 0.2, not HF's 0.02: with 0.02 the attention scores are so small that the
# rotation hardly moves the logits (Llama's default and linear-scaled RoPE differ by 5e-3), and a
# wrong rotation would pass; at 0.2 they differ by 6.7. No end-of-sequence token: every generation
# runs its full length.
COMMON = dict(vocab_size=VOCAB, pad_token_id=PAD, bos_token_id=BOS, eos_token_id=None, tie_word_embeddings=False,
              initializer_range=0.2)
DECODER = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
               num_key_value_heads=2, max_position_embeddings=64, **COMMON)


def _longrope_factors(n):
    return {"long_factor": [1.0 + 0.5 * i for i in range(n)], "short_factor": [1.0 + 0.05 * i for i in range(n)]}


def _llama(rope_parameters, **extra):
    return transformers.LlamaForCausalLM, transformers.LlamaConfig(**{**DECODER, **extra},
                                                                     rope_parameters=rope_parameters)


# name -> () -> (model class, config)
MODELS = {
    "llama": lambda: _llama({"rope_type": "default", "rope_theta": 10000.0}),
    "llama-linear": lambda: _llama({"rope_type": "linear", "factor": 4.0, "rope_theta": 10000.0}),
    "llama-dynamic": lambda: _llama({"rope_type": "dynamic", "factor": 4.0, "rope_theta": 10000.0},
                                    max_position_embeddings=8),
    "llama-yarn": lambda: _llama({"rope_type": "yarn", "factor": 4.0, "rope_theta": 10000.0,
                                  "original_max_position_embeddings": 16}),
    "llama3": lambda: _llama({"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                              "rope_theta": 500000.0, "original_max_position_embeddings": 16}),
    "mistral": lambda: (transformers.MistralForCausalLM, transformers.MistralConfig(**DECODER, sliding_window=None)),
    "qwen2": lambda: (transformers.Qwen2ForCausalLM, transformers.Qwen2Config(**DECODER)),
    "qwen3": lambda: (transformers.Qwen3ForCausalLM, transformers.Qwen3Config(**DECODER, head_dim=16)),
    "gemma": lambda: (transformers.GemmaForCausalLM, transformers.GemmaConfig(**DECODER, head_dim=16)),
    "gemma2": lambda: (transformers.Gemma2ForCausalLM, transformers.Gemma2Config(**DECODER, head_dim=16,
                                                                                 sliding_window=8)),
    # sliding layers: plain RoPE, theta 1e4; full layers: linear, factor 8, theta 1e6 (Gemma 3 4B's)
    "gemma3": lambda: (transformers.Gemma3ForCausalLM, transformers.Gemma3TextConfig(
        **DECODER, head_dim=16, sliding_window=8, layer_types=["sliding_attention", "full_attention"],
        rope_parameters={"sliding_attention": {"rope_type": "default", "rope_theta": 10000.0},
                         "full_attention": {"rope_type": "linear", "factor": 8.0, "rope_theta": 1000000.0}})),
    "phi3-longrope": lambda: (transformers.Phi3ForCausalLM, transformers.Phi3Config(
        **DECODER, original_max_position_embeddings=8,
        rope_parameters={"rope_type": "longrope", "rope_theta": 10000.0, **_longrope_factors(8)})),
    # head_dim 32, rotary width 16: the attention rotates the 16 rotary channels alone
    "phi": lambda: (transformers.PhiForCausalLM, transformers.PhiConfig(
        **{**DECODER, "num_attention_heads": 2, "num_key_value_heads": 2},
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "partial_rotary_factor": 0.5})),
    # head_size 16, rotary_pct 0.25: 4 rotary channels per head
    "gpt_neox": lambda: (transformers.GPTNeoXForCausalLM, transformers.GPTNeoXConfig(
        hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
        max_position_embeddings=64, rotary_pct=0.25, **COMMON)),
    # head_dim 16, rotary_dim 8, interleaved pairs
    "gptj": lambda: (transformers.GPTJForCausalLM, transformers.GPTJConfig(
        n_embd=64, n_layer=2, n_head=4, n_positions=64, rotary_dim=8, **COMMON)),
}


def build(name, dtype=torch.float32, seed=0):
    """A fresh model of MODELS[name] in eval mode, its weights drawn from the seed."""
    logging.getLogger("transformers").setLevel(logging.ERROR)  # tiny configs draw HF's advice
    model_class, config = MODELS[name]()
    torch.manual_seed(seed)
    model = model_class(config).to(dtype)
    model.eval()
    return model


def twin(model):
    """An independent model of the same class and config with the same weights."""
    copy = type(model)(model.config).to(next(model.parameters()).dtype)
    copy.load_state_dict(model.state_dict())
    copy.train(model.training)
    return copy


def prompts(seed=0, lengths=(7, 4)):
    """Left-padded prompts: input_ids and attention_mask of shape (len(lengths), max(lengths))."""
    gen = torch.Generator().manual_seed(seed)
    width = max(lengths)
    input_ids = torch.full((len(lengths), width), PAD, dtype=torch.long)
    attention_mask = torch.zeros((len(lengths), width), dtype=torch.long)
    for row, n in enumerate(lengths):
        input_ids[row, width - n:] = torch.randint(3, VOCAB, (n,), generator=gen)
        attention_mask[row, width - n:] = 1
    return input_ids, attention_mask


def padded_positions(attention_mask):
    """HF generate()'s position_ids for left padding: 0 at each sequence's first token."""
    return (attention_mask.cumsum(-1) - 1).clamp(min=0)


def float32_ulp(value):
    """The spacing of float32 numbers at |value|."""
    return 2.0 ** (math.floor(math.log2(abs(value))) - 23)


def train(model, input_ids, attention_mask, steps=10, lr=1e-3):
    """steps AdamW steps on one batch (labels: the tokens, padding ignored): the losses, and the
    flattened gradients of the first and the last step."""
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    labels = input_ids.masked_fill(attention_mask == 0, -100)
    losses, gradients = [], []
    for step in range(steps):
        optimizer.zero_grad()
        loss = model(input_ids=input_ids, attention_mask=attention_mask, labels=labels).loss
        loss.backward()
        if step in (0, steps - 1):
            gradients.append(torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None]))
        losses.append(loss.item())
        optimizer.step()
    return torch.tensor(losses, dtype=torch.float64), gradients
