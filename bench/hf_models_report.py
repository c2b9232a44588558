"""fastpe.hf.apply_to on every model family tests/hf covers: what the tests bound, as figures (a script, not a test).

    python bench/hf_models_report.py

For each tiny random-weight model of tests/helpers/hf_models.py, float32:
the largest logit difference between the patched and the unpatched model on
left-padded prompts (padding rows left out), HF's own float32 rounding there
(the unpatched model against the same weights in float64), whether greedy
generate() with the KV cache gives identical tokens, and bfloat16's largest
logit error against the float32 model, patched and unpatched; over ten
AdamW steps, the largest loss difference and the tenth step's largest
gradient difference relative to the largest gradient. The bounds these
figures must meet are tests/hf/test_hf_models.py's.
"""

import pathlib
import sys

import torch

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "tests" / "helpers"))
import hf_models  # noqa: E402

import fastpe.hf  # noqa: E402


def logits(model, input_ids, attention_mask):
    with torch.no_grad():
        return model(input_ids=input_ids, attention_mask=attention_mask,
                     position_ids=hf_models.padded_positions(attention_mask)).logits.float()


def main():
    torch.set_num_threads(1)
    print(f"{'model':16s} {'|patched - HF|':>15s} {'HF rounding':>12s} {'tokens':>9s} "
          f"{'bf16 patched':>13s} {'bf16 HF':>9s} {'loss':>9s} {'grad 10':>9s}")
    for name in hf_models.MODELS:
        model = hf_models.build(name)
        patched = fastpe.hf.apply_to(hf_models.twin(model))
        input_ids, attention_mask = hf_models.prompts(seed=1, lengths=(12, 9))
        real = attention_mask.bool()
        expected, got = logits(model, input_ids, attention_mask), logits(patched, input_ids, attention_mask)
        exact = logits(hf_models.twin(model).to(torch.float64), input_ids, attention_mask)
        finite = real & torch.isfinite(exact).all(-1)
        diff = (got - expected)[real].abs().max().item()
        rounding = (expected - exact)[finite].abs().max().item()
        ids, mask = hf_models.prompts(seed=2, lengths=(7, 4))
        kwargs = dict(input_ids=ids, attention_mask=mask, max_new_tokens=10, do_sample=False, use_cache=True)
        with torch.no_grad():
            same = torch.equal(model.generate(**kwargs), patched.generate(**kwargs))
        bf16 = logits(fastpe.hf.apply_to(hf_models.twin(model).to(torch.bfloat16)), input_ids, attention_mask)
        bf16_hf = logits(hf_models.twin(model).to(torch.bfloat16), input_ids, attention_mask)
        ours, theirs = ((b - expected)[real].abs().max().item() for b in (bf16, bf16_hf))
        ids, mask = hf_models.prompts(seed=4, lengths=(12, 9))
        losses, gradients = hf_models.train(hf_models.twin(model), ids, mask)
        our_losses, our_gradients = hf_models.train(fastpe.hf.apply_to(hf_models.twin(model)), ids, mask)
        loss = (our_losses - losses).abs().max().item()
        grad = ((our_gradients[-1] - gradients[-1]).abs().max() / gradients[-1].abs().max()).item()
        print(f"{name:16s} {diff:15.3g} {rounding:12.3g} {'same' if same else 'DIFFER':>9s} {ours:13.3g} "
              f"{theirs:9.3g} {loss:9.2g} {grad:9.2g}")


if __name__ == "__main__":
    main()
