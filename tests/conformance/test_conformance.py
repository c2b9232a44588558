"""fastpe's presets against the original implementations in Hugging Face transformers.

Skipped unless torch and transformers are installed. Nothing is downloaded:
every module is constructed from code (tiny configs or the embedding modules
themselves) and the sinusoid functions are called directly. Tested with
torch 2.13.0+cpu and transformers 5.24.0.

| fastpe preset | original                                                         | angles computed in |
| ------------- | ---------------------------------------------------------------- | ------------------ |
| vaswani       | DistilBERT create_sinusoidal_embeddings                          | float64 (NumPy)    |
| marian        | MarianSinusoidalPositionalEmbedding.create_weight / forward      | float64 (NumPy)    |
| fairseq       | M2M100 / Speech2Text SinusoidalPositionalEmbedding.get_embedding,| float32 (torch)    |
|               | forward and create_position_ids_from_input_ids                   |                    |
| whisper       | Whisper sinusoids                                                | float32 (torch)    |

Tolerances
----------
* Libraries that form the angles in float64 and round the result to float32
  once (DistilBERT, Marian) are matched to the core contract: both sides are
  the float32 rounding of (nearly) the same float64 value, so they differ by
  at most one float32 ulp at 1, FLOAT64_LIBRARY_ATOL = 1.2e-7.
* Libraries that form the angles in float32 (M2M100, Speech2Text, Whisper)
  carry their own float32 error, which grows with the position p: w_k comes
  out of a float32 exp (~1 ulp, 1.2e-7 relative), its argument k * -emb is
  rounded to float32 (<= 2.2e-8 absolute in w_k, since x e^-x <= 1/e), and the
  product p * w_k is rounded to float32 (6e-8 relative). The angle error is
  therefore <= p * w_k * ~2e-7 <= 2e-7 * p (w_k <= 1), and an error in the
  angle moves sin/cos by at most as much. On top come the float32 rounding of
  both outputs and the library's float32 sin/cos (a few 1e-8), covered by a
  floor of 1e-6:

      float32_library_atol(p) = 1e-6 + 2e-7 * |p|

  Measured (single-threaded torch, widths 4..1024, p < 5000): the error of
  these libraries against the float64 values is at most ~8.5e-8 * p (d=1023)
  and 1.3e-6 at p < 20, so the rule has a margin of ~2.4x on the slope and is
  still small enough to catch a wrong frequency, layout or position shift
  (errors of order 1e-1).
* torch's multi-threaded float32 cos was seen to be ~3e-5 off on some
  elements, so torch runs on one thread here (fixture below).
"""

import math

import numpy as np
import pytest

from optional import conformance_import  # noqa: E402

torch = conformance_import("torch")
transformers = conformance_import("transformers")

import fastpe  # noqa: E402
from optional import np32, single_threaded_torch  # noqa: E402,F401 (autouse fixture)
from util import add_tolerance, assert_within, rng_for  # noqa: E402

from transformers.models.distilbert import modeling_distilbert  # noqa: E402
from transformers.models.m2m_100 import modeling_m2m_100  # noqa: E402
from transformers.models.marian import modeling_marian  # noqa: E402
from transformers.models.speech_to_text import modeling_speech_to_text  # noqa: E402
from transformers.models.whisper import modeling_whisper  # noqa: E402

FLOAT64_LIBRARY_ATOL = 1.2e-7


def float32_library_atol(positions):
    """Elementwise bound for a float32-angle library at these positions (see the module docstring);
    shaped to broadcast over the last (dim) axis."""
    p = np.abs(np.asarray(positions, dtype=np.float64))
    return (1e-6 + 2e-7 * p)[..., None]


def tokens(rng, B, T, padding_idx):
    """Ids with right padding (row 0), left padding (row 1), pads in the middle (row 2)."""
    ids = rng.integers(padding_idx + 1, padding_idx + 100, size=(B, T))
    ids[0, T - T // 3:] = padding_idx
    ids[1, : T // 4] = padding_idx
    ids[2, T // 2 : T // 2 + 7] = padding_idx
    return ids


def float64_concat(positions, dim, inv):
    """[sin | cos] of float64 angles (plus a zero column for odd dim): the float64 values the
    float32 libraries approximate."""
    p = np.asarray(positions, dtype=np.float64)[..., None]
    a = p * inv
    pad = np.zeros(p.shape[:-1] + (dim % 2,))
    return np.concatenate([np.sin(a), np.cos(a), pad], axis=-1)


# --------------------------------------------------------------------------
# vaswani: DistilBERT


@pytest.mark.parametrize("n,dim", [(3000, 4), (3000, 5), (2000, 8), (2000, 9), (1500, 64), (1500, 65),
                                   (512, 768)])
def test_distilbert_create_sinusoidal_embeddings(n, dim):
    out = torch.empty(n, dim)
    lib = np32(modeling_distilbert.create_sinusoidal_embeddings(n, dim, out))
    for kw in ({}, {"preset": "vaswani"}):
        got = fastpe.sinusoidal_table(n, dim, **kw)
        assert_within(got, lib, FLOAT64_LIBRARY_ATOL, f"DistilBERT n={n} dim={dim} {kw}")


def test_distilbert_model_position_embeddings():
    """A DistilBertModel built from a tiny config (sinusoidal_pos_embds=True) holds the vaswani table, and
    its embeddings' x + position_embeddings is add_sinusoidal(x)."""
    cfg = transformers.DistilBertConfig(vocab_size=20, dim=16, n_layers=1, n_heads=2, hidden_dim=8,
                                        max_position_embeddings=64, sinusoidal_pos_embds=True, pad_token_id=0)
    model = modeling_distilbert.DistilBertModel(cfg)
    lib = np32(model.embeddings.position_embeddings.weight)
    assert_within(fastpe.sinusoidal_table(64, 16, preset="vaswani"), lib, FLOAT64_LIBRARY_ATOL, "DistilBertModel")
    rng = rng_for("distilbert-add")
    x = rng.uniform(-3, 3, size=(2, 40, 16)).astype(np.float32)
    position_ids = torch.arange(40).expand(2, -1)
    expected = np32(torch.from_numpy(x) + model.embeddings.position_embeddings(position_ids))
    got = fastpe.add_sinusoidal(x.copy(), preset="vaswani")
    assert_within(got, expected, FLOAT64_LIBRARY_ATOL + add_tolerance(np.float32, 40, np.abs(x)), "DistilBERT add")


# --------------------------------------------------------------------------
# marian


def marian_module(n, dim):
    module = modeling_marian.MarianSinusoidalPositionalEmbedding(n, dim)
    with torch.no_grad():
        module.weight.copy_(module.create_weight())  # what MarianPreTrainedModel._init_weights does
    return module


@pytest.mark.parametrize("n,dim", [(3000, 4), (3000, 5), (2000, 8), (2000, 9), (1500, 64), (1500, 65),
                                   (512, 512)])
def test_marian_create_weight(n, dim):
    lib = np32(modeling_marian.MarianSinusoidalPositionalEmbedding(n, dim).create_weight())
    got = fastpe.sinusoidal_table(n, dim, preset="marian")
    assert_within(got, lib, FLOAT64_LIBRARY_ATOL, f"Marian n={n} dim={dim}")


@pytest.mark.parametrize("dim", [9, 64])
def test_marian_forward(dim):
    """forward(shape, cache_length) = positions cache_length + t; forward(position_ids=...) = those positions."""
    module = marian_module(600, dim)
    rng = rng_for("marian-forward", dim)
    for cache_length in (0, 5, 300):
        T = 100
        lib = np32(module(torch.Size([2, T]), cache_length=cache_length))  # (T, dim), shared by the batch
        x = rng.uniform(-3, 3, size=(2, T, dim)).astype(np.float32)
        expected = np32(torch.from_numpy(x) + torch.from_numpy(lib))
        got = fastpe.add_sinusoidal(x.copy(), offset=cache_length, preset="marian")
        assert_within(got, expected, FLOAT64_LIBRARY_ATOL + add_tolerance(np.float32, 400, np.abs(x)),
                      f"Marian forward cache_length={cache_length}")
        assert_within(fastpe.sinusoidal_table(T, dim, offset=cache_length, preset="marian"), lib,
                      FLOAT64_LIBRARY_ATOL, f"Marian table cache_length={cache_length}")
    position_ids = torch.from_numpy(rng.integers(0, 600, size=(3, 50)))
    lib = np32(module(torch.Size([3, 50]), position_ids=position_ids))
    got = fastpe.sinusoidal_encode(position_ids.numpy(), dim, preset="marian")
    assert_within(got, lib, FLOAT64_LIBRARY_ATOL, "Marian forward position_ids")


def test_marian_model_position_embeddings():
    """A MarianModel built from a tiny config initialises both position tables with create_weight."""
    cfg = transformers.MarianConfig(vocab_size=20, d_model=18, encoder_layers=1, decoder_layers=1,
                                    encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=8,
                                    decoder_ffn_dim=8, max_position_embeddings=64, pad_token_id=1,
                                    bos_token_id=0, eos_token_id=2, decoder_start_token_id=2)
    model = modeling_marian.MarianModel(cfg)
    expected = fastpe.sinusoidal_table(64, 18, preset="marian")
    for name, emb in (("encoder", model.encoder.embed_positions), ("decoder", model.decoder.embed_positions)):
        assert_within(expected, np32(emb.weight), FLOAT64_LIBRARY_ATOL, f"MarianModel {name}")


# --------------------------------------------------------------------------
# fairseq: M2M100 (also NLLB) and Speech2Text


FAIRSEQ_CASES = [(4, 1), (5, 1), (8, 0), (9, 1), (64, 1), (65, 3), (1023, 1), (1024, 1)]


@pytest.mark.parametrize("module", ["m2m100", "speech2text"])
@pytest.mark.parametrize("dim,padding_idx", FAIRSEQ_CASES, ids=str)
def test_fairseq_get_embedding(dim, padding_idx, module):
    """get_embedding(n, dim, padding_idx) is sinusoidal_table(n, dim, preset='fairseq', padding_idx=...):
    row p = position p, row padding_idx zero, a zero last column for odd dim."""
    cls = (modeling_m2m_100.M2M100SinusoidalPositionalEmbedding if module == "m2m100"
           else modeling_speech_to_text.Speech2TextSinusoidalPositionalEmbedding)
    n = 4096 if dim < 1000 else 1500
    lib = np32(cls.get_embedding(n, dim, padding_idx))
    kw = {} if padding_idx == 1 else {"padding_idx": padding_idx}  # 1 is fastpe's default for fairseq
    got = fastpe.sinusoidal_table(n, dim, preset="fairseq", **kw)
    assert_within(got, lib, float32_library_atol(np.arange(n)), f"{module} get_embedding dim={dim}")
    assert not got[padding_idx].any() and not lib[padding_idx].any()
    if dim % 2:
        assert not got[:, -1].any()


def m2m100_module(n, dim, padding_idx):
    return modeling_m2m_100.M2M100SinusoidalPositionalEmbedding(n, dim, padding_idx)


@pytest.mark.parametrize("dim,padding_idx", [(9, 1), (64, 1), (64, 0), (1024, 1)], ids=str)
def test_m2m100_forward_input_ids(dim, padding_idx):
    """forward(input_ids, cache_length): make_positions + sinusoidal_encode / add_sinusoidal(positions=...)."""
    module = m2m100_module(1000, dim, padding_idx)
    rng = rng_for("m2m100-forward", dim, padding_idx)
    B, T = 3, 120
    ids = torch.from_numpy(tokens(rng, B, T, padding_idx))
    for cache_length in (0, 7, 500):
        msg = f"M2M100 dim={dim} padding_idx={padding_idx} cache_length={cache_length}"
        lib = np32(module(input_ids=ids, cache_length=cache_length))
        lib_pos = module.create_position_ids_from_input_ids(ids, padding_idx, cache_length).numpy()
        pos = fastpe.make_positions(ids.numpy(), padding_idx, past_length=cache_length)
        assert pos.dtype == np.int64 and np.array_equal(pos, lib_pos), msg
        atol = float32_library_atol(pos)
        got = fastpe.sinusoidal_encode(pos, dim, preset="fairseq", padding_idx=padding_idx)
        assert_within(got, lib, atol, msg + " encode")
        # the encoder: inputs_embeds * embed_scale + embed_pos
        scale = math.sqrt(dim)
        x = rng.uniform(-1, 1, size=(B, T, dim)).astype(np.float32)
        expected = np32(torch.from_numpy(x) * scale + torch.from_numpy(lib))
        got = fastpe.add_sinusoidal(x.copy(), positions=pos, scale=scale, preset="fairseq", padding_idx=padding_idx)
        assert_within(got, expected, atol + add_tolerance(np.float32, 2000, np.abs(x) * scale), msg + " add")
        is_pad = ids.numpy() == padding_idx
        assert_within(got[is_pad], x[is_pad].astype(np.float64) * scale, 2.4e-7 * np.abs(x[is_pad]) * scale,
                      msg + " pad tokens")


@pytest.mark.parametrize("dim", [9, 64])
def test_m2m100_forward_inputs_embeds(dim):
    """Without ids, positions start at padding_idx + 1 + cache_length: fastpe's implicit fairseq positions."""
    for padding_idx in (1, 0, 4):
        module = m2m100_module(1000, dim, padding_idx)
        for cache_length in (0, 3, 200):
            B, T = 2, 150
            lib = np32(module(inputs_embeds=torch.zeros(B, T, dim), cache_length=cache_length))
            got = fastpe.add_sinusoidal(np.zeros((B, T, dim), np.float32), offset=cache_length, preset="fairseq",
                                        padding_idx=padding_idx)
            positions = padding_idx + 1 + cache_length + np.arange(T)
            assert_within(got, lib, float32_library_atol(positions),
                          f"M2M100 inputs_embeds padding_idx={padding_idx} cache_length={cache_length}")


def test_m2m100_make_positions_batches():
    """make_positions = create_position_ids_from_input_ids on random batches; per-sequence past_length =
    the library row by row."""
    rng = rng_for("m2m100-make-positions")
    f = modeling_m2m_100.M2M100SinusoidalPositionalEmbedding.create_position_ids_from_input_ids
    for padding_idx in (0, 1, 2):
        for shape in ((1, 9), (4, 33), (7, 5)):
            ids = rng.integers(0, 5, size=shape)
            for past in (0, 1, 17):
                lib = f(torch.from_numpy(ids), padding_idx, past).numpy()
                assert np.array_equal(fastpe.make_positions(ids, padding_idx, past_length=past), lib)
                assert np.array_equal(fastpe.reference.make_positions(ids, padding_idx, past_length=past), lib)
            past = rng.integers(0, 40, size=shape[0])
            lib = np.concatenate([f(torch.from_numpy(ids[i : i + 1]), padding_idx, int(past[i])).numpy()
                                  for i in range(shape[0])])
            assert np.array_equal(fastpe.make_positions(ids, padding_idx, past_length=past), lib)


def test_m2m100_model_position_table():
    """An M2M100Model built from a tiny config holds get_embedding(max_position_embeddings + 2, d, pad)."""
    cfg = transformers.M2M100Config(vocab_size=20, d_model=16, encoder_layers=1, decoder_layers=1,
                                    encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=8,
                                    decoder_ffn_dim=8, max_position_embeddings=64, pad_token_id=1,
                                    bos_token_id=0, eos_token_id=2, decoder_start_token_id=2)
    model = modeling_m2m_100.M2M100Model(cfg)
    lib = np32(model.encoder.embed_positions.weights)
    got = fastpe.sinusoidal_table(lib.shape[0], 16, preset="fairseq", padding_idx=1)
    assert_within(got, lib, float32_library_atol(np.arange(lib.shape[0])), "M2M100Model")


def test_speech2text_forward():
    module = modeling_speech_to_text.Speech2TextSinusoidalPositionalEmbedding(1000, 64, padding_idx=1)
    rng = rng_for("speech2text")
    ids = torch.from_numpy(tokens(rng, 3, 90, 1))
    for cache_length in (0, 11):
        lib = np32(module(ids, cache_length=cache_length))
        pos = fastpe.make_positions(ids.numpy(), 1, past_length=cache_length)
        assert np.array_equal(pos, module.create_position_ids_from_input_ids(ids, 1, cache_length).numpy())
        x = np.zeros((3, 90, 64), np.float32)
        got = fastpe.add_sinusoidal(x, positions=pos, preset="fairseq")
        assert_within(got, lib, float32_library_atol(pos), f"Speech2Text cache_length={cache_length}")


# --------------------------------------------------------------------------
# whisper


@pytest.mark.parametrize("max_timescale", [10000.0, 1000.0])
@pytest.mark.parametrize("dim", [4, 8, 64, 384, 1024])
def test_whisper_sinusoids(dim, max_timescale):
    n = 3000 if dim < 1000 else 1500  # Whisper's encoder has 1500 positions
    lib = np32(modeling_whisper.sinusoids(n, dim, max_timescale=max_timescale))
    kw = {} if max_timescale == 10000.0 else {"max_timescale": max_timescale}
    got = fastpe.sinusoidal_table(n, dim, preset="whisper", **kw)
    assert_within(got, lib, float32_library_atol(np.arange(n)), f"Whisper dim={dim} max_timescale={max_timescale}")


def test_whisper_odd_dim_is_rejected_like_the_library():
    with pytest.raises(ValueError):
        modeling_whisper.sinusoids(10, 65)
    with pytest.raises(ValueError, match="even"):
        fastpe.sinusoidal_table(10, 65, preset="whisper")


def test_whisper_model_encoder_positions():
    """A WhisperModel built from a tiny config: the encoder adds sinusoids(max_source_positions, d_model)."""
    cfg = transformers.WhisperConfig(vocab_size=20, d_model=16, encoder_layers=1, decoder_layers=1,
                                     encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=8,
                                     decoder_ffn_dim=8, max_source_positions=30, max_target_positions=20,
                                     num_mel_bins=8, pad_token_id=1, bos_token_id=0, eos_token_id=2,
                                     decoder_start_token_id=2)
    model = modeling_whisper.WhisperModel(cfg)
    lib = np32(model.encoder.embed_positions.weight)
    assert_within(fastpe.sinusoidal_table(30, 16, preset="whisper"), lib, float32_library_atol(np.arange(30)),
                  "WhisperModel encoder")
    rng = rng_for("whisper-add")
    x = rng.uniform(-3, 3, size=(2, 30, 16)).astype(np.float32)
    expected = np32(torch.from_numpy(x) + model.encoder.embed_positions.weight)
    got = fastpe.add_sinusoidal(x.copy(), preset="whisper")
    assert_within(got, expected, float32_library_atol(np.arange(30)) + add_tolerance(np.float32, 30, np.abs(x)),
                  "Whisper add")


# --------------------------------------------------------------------------
# Large positions: fastpe stays on the float64 values, float32 libraries drift.


def test_float32_libraries_drift_fastpe_does_not():
    """At p ~ 1e5 the float32-angle libraries (M2M100, Whisper) are ~5e-3 off the float64 values their
    formulas define, while fastpe's float32 output is within the contract's 1.2e-7 of them; the
    float64-angle DistilBERT stays on them too (and so on fastpe)."""
    n0, dim, half = 100_000, 64, 32
    positions = n0 + np.arange(64)
    inv = np.exp(np.arange(half) * -(math.log(10000.0) / (half - 1)))  # fairseq = whisper frequencies, float64
    exact = float64_concat(positions, dim, inv)
    m2m = np32(modeling_m2m_100.M2M100SinusoidalPositionalEmbedding.get_embedding(n0 + 64, dim, None))[n0:]
    whisper = np32(modeling_whisper.sinusoids(n0 + 64, dim))[n0:]
    for preset, lib in (("fairseq", m2m), ("whisper", whisper)):
        got = fastpe.sinusoidal_table(64, dim, offset=n0, preset=preset)
        fast_err = np.abs(got.astype(np.float64) - exact).max()
        lib_err = np.abs(lib.astype(np.float64) - exact).max()
        assert fast_err <= 1.2e-7, f"{preset}: fastpe is {fast_err:.3e} off the float64 values"
        assert lib_err > 1e-3, f"{preset}: the float32 library was expected to drift, error {lib_err:.3e}"
        # ... and the drift stays within the position-proportional rule used above
        assert_within(lib, exact, float32_library_atol(positions), f"{preset} library vs float64")
    # DistilBERT computes angles in float64: no drift, fastpe matches it at p ~ 1e5 too
    out = torch.empty(n0 + 64, 4)
    distil = np32(modeling_distilbert.create_sinusoidal_embeddings(n0 + 64, 4, out))[n0:]
    got = fastpe.sinusoidal_table(64, 4, offset=n0, preset="vaswani")
    assert_within(got, distil, FLOAT64_LIBRARY_ATOL, "DistilBERT at p ~ 1e5")
