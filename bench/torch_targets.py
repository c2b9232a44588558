"""fastpe.torch against Hugging Face's rotary, for the targets of fastpe.torch (a script, not a test).

    python bench/torch_targets.py [--rounds N] [--threads N] [--skip-training] [--skip-compile]

Times, as interleaved medians in one process (each round runs every
contender once in turn, so a busy machine slows them alike; the medians of
the rounds are printed), at 2 torch threads (``--threads``) and fastpe's default team:

* the decode step, q and k each (1, 32, 1, 128) float32 at a new offset
  below 4096 every call: Hugging Face's ``q * cos + rotate_half(q) * sin``
  with cached cos/sin rows (gathered by position_ids, as fastpe.bench's
  torch peer does), fastpe.torch.apply_rotary (out of place, and in place),
  the same through the registered operator (``always_dispatch``), and the
  NumPy-facing fastpe.apply_rotary on NumPy arrays (in place, and into new
  arrays: np.empty_like and out=) and on the tensors;
* forward + backward of the rotation of q and k (4, 32, 2048, 128) float32:
  Hugging Face's eager formula against fastpe.torch.apply_rotary;
* the same decode step and a (1, 32, 256, 128) step inside torch.compile
  (inductor): a function using fastpe.torch (apply_rotary from the offset,
  and apply_rotary_cos_sin with Hugging Face's cos/sin rows, what
  fastpe.hf.apply_rotary_pos_emb calls) against the same function with
  Hugging Face's formula.
"""

import argparse
import statistics
import time

import numpy as np
import torch

import fastpe
import fastpe.torch
from fastpe.torch._tensors import always_dispatch

N_POSITIONS = 4096


def rotate_half(x):
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def hf_apply(q, k, cos, sin):
    cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)
    return q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin


def interleaved(contenders, rounds, calls):
    """{name: median us per call} over `rounds` rounds of `calls` calls each."""
    times = {name: [] for name in contenders}
    for _ in range(rounds):
        for name, fn in contenders.items():
            start = time.perf_counter()
            for i in range(calls):
                fn(i)
            times[name].append((time.perf_counter() - start) / calls * 1e6)
    return {name: statistics.median(t) for name, t in times.items()}


def report(title, medians, base):
    print(f"\n{title}")
    for name, us in medians.items():
        print(f"  {name:58s} {us:10.1f} us   {us / medians[base]:5.2f}x {base}")


def decode(rounds):
    rng = np.random.default_rng(0)
    q = torch.from_numpy(rng.standard_normal((1, 32, 1, 128)).astype(np.float32))
    k = torch.from_numpy(rng.standard_normal((1, 32, 1, 128)).astype(np.float32))
    qn, kn = q.numpy().copy(), k.numpy().copy()

    def numpy_into_new(i):
        q_out, k_out = np.empty_like(qn), np.empty_like(kn)
        return fastpe.apply_rotary(qn, kn, offset=offsets[i], out=(q_out, k_out))
    cos_table, sin_table = fastpe.torch.rotary_cos_sin(N_POSITIONS + 1, 128)
    position_ids = [torch.arange(N_POSITIONS)[None, o:o + 1] for o in range(N_POSITIONS)]
    offsets = (np.arange(1 << 16) * 2654435761 % N_POSITIONS).tolist()  # a new offset every call
    offsets_t = [torch.tensor(o) for o in offsets[:N_POSITIONS]]
    cos1, sin1 = cos_table[None, :1], sin_table[None, :1]

    def hf(i):
        pid = position_ids[offsets[i]]
        return hf_apply(q, k, cos_table[pid], sin_table[pid])

    def dispatched(i):
        with always_dispatch():
            return fastpe.torch.apply_rotary(q, k, offset=offsets[i])

    contenders = {
        "HF eager (cached cos/sin rows)": hf,
        "fastpe.apply_rotary, NumPy arrays (in place)": lambda i: fastpe.apply_rotary(qn, kn, offset=offsets[i]),
        "fastpe.apply_rotary, NumPy arrays into new ones (out=)": numpy_into_new,
        "fastpe.apply_rotary, the tensors (in place)": lambda i: fastpe.apply_rotary(q, k, offset=offsets[i]),
        "fastpe.torch.apply_rotary": lambda i: fastpe.torch.apply_rotary(q, k, offset=offsets[i]),
        "fastpe.torch.apply_rotary, offset a tensor": lambda i: fastpe.torch.apply_rotary(
            q, k, offset=offsets_t[i % N_POSITIONS]),
        "fastpe.torch.apply_rotary_ (in place)": lambda i: fastpe.torch.apply_rotary_(q, k, offset=offsets[i]),
        "fastpe.torch.apply_rotary through the operator": dispatched,
        "fastpe.torch.apply_rotary_cos_sin (given rows)": lambda i: fastpe.torch.apply_rotary_cos_sin(
            q, k, cos1, sin1),
    }
    with torch.no_grad():
        report("decode step, q and k each (1, 32, 1, 128) float32, no grad", interleaved(contenders, rounds, 200),
               "HF eager (cached cos/sin rows)")


def training(rounds):
    shape = (4, 32, 2048, 128)
    q = torch.randn(shape, requires_grad=True)
    k = torch.randn(shape, requires_grad=True)
    grads = (torch.randn(shape), torch.randn(shape))
    cos_table, sin_table = fastpe.torch.rotary_cos_sin(2048, 128)
    position_ids = torch.arange(2048)[None].expand(4, -1)

    def hf(i):
        outs = hf_apply(q, k, cos_table[position_ids], sin_table[position_ids])
        torch.autograd.backward(outs, grads)

    def ours(i):
        outs = fastpe.torch.apply_rotary(q, k, positions=position_ids)
        torch.autograd.backward(outs, grads)

    def ours_offset(i):
        outs = fastpe.torch.apply_rotary(q, k)
        torch.autograd.backward(outs, grads)

    report("forward + backward, q and k each (4, 32, 2048, 128) float32",
           interleaved({"HF eager (cos/sin rows of position_ids)": hf, "fastpe.torch.apply_rotary(positions=)": ours,
                        "fastpe.torch.apply_rotary (offset 0)": ours_offset}, rounds, 1),
           "HF eager (cos/sin rows of position_ids)")


def compiled(rounds):
    for shape, calls in (((1, 32, 1, 128), 200), ((1, 32, 256, 128), 20)):
        T = shape[2]
        q, k = torch.randn(shape), torch.randn(shape)
        cos_table, sin_table = fastpe.torch.rotary_cos_sin(N_POSITIONS + T, 128)
        starts = [torch.tensor(o) for o in range(0, N_POSITIONS, 7)]

        def with_hf(q, k, start):
            pid = (start + torch.arange(T))[None]
            q2, k2 = hf_apply(q, k, cos_table[pid], sin_table[pid])
            return q2 * 0.5, k2 * 0.5

        def with_fastpe(q, k, start):
            q2, k2 = fastpe.torch.apply_rotary(q, k, offset=start)
            return q2 * 0.5, k2 * 0.5

        def with_given_rows(q, k, start):  # Hugging Face's cos and sin, fastpe's apply_rotary_pos_emb
            pid = (start + torch.arange(T))[None]
            q2, k2 = fastpe.torch.apply_rotary_cos_sin(q, k, cos_table[pid], sin_table[pid])
            return q2 * 0.5, k2 * 0.5

        # Static shapes for both (each shape compiled on its own, as a model compiles its decode step)
        hf_c = torch.compile(with_hf, fullgraph=True, dynamic=False)
        fp_c = torch.compile(with_fastpe, fullgraph=True, dynamic=False)
        rows_c = torch.compile(with_given_rows, fullgraph=True, dynamic=False)
        with torch.no_grad():  # compiled under the grad mode they are timed in (another mode recompiles)
            for fn in (hf_c, fp_c, rows_c):
                fn(q, k, starts[0])
                fn(q, k, starts[1])
        contenders = {
            "torch.compile(HF formula)": lambda i: hf_c(q, k, starts[i % len(starts)]),
            "torch.compile(fastpe.torch.apply_rotary)": lambda i: fp_c(q, k, starts[i % len(starts)]),
            "torch.compile(fastpe.torch.apply_rotary_cos_sin, HF's rows)": lambda i: rows_c(
                q, k, starts[i % len(starts)]),
            "eager fastpe.torch.apply_rotary": lambda i: with_fastpe(q, k, starts[i % len(starts)]),
        }
        with torch.no_grad():
            report(f"inside torch.compile (inductor), q and k each {shape} float32, offset a tensor",
                   interleaved(contenders, rounds, calls), "torch.compile(HF formula)")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--threads", type=int, default=2, help="torch's threads (default 2)")
    parser.add_argument("--skip-training", action="store_true")
    parser.add_argument("--skip-compile", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} torch threads; fastpe {fastpe.__version__}")
    decode(args.rounds)
    if not args.skip_training:
        training(max(3, args.rounds // 3))
    if not args.skip_compile:
        compiled(args.rounds)


if __name__ == "__main__":
    main()
