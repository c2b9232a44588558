"""A model patched by fastpe.hf.apply_to under torch.compile(fullgraph=True):
no graph break, the rotation traced as torch operations (no fastpe
operator in the graph), one graph for every set of position ids, and the
logits within tests/hf's float32 bound of the unpatched eager model."""

import pytest
from optional import conformance_import

torch = conformance_import("torch")
transformers = conformance_import("transformers")

import torch._dynamo.testing  # noqa: E402

import hf_models  # noqa: E402
from torch_cases import GraphRecorder  # noqa: E402
from optional import single_threaded_torch  # noqa: E402,F401 (autouse fixture)

import fastpe.hf  # noqa: E402

# Inductor's own imports warn so (torch 2.13); pytest turns warnings into errors.
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated:DeprecationWarning")

# Every rotation path of fastpe.hf: plain and scaled (an attention factor), a partial rotary (Phi-3's
# longrope is position-dependent: the operator), the sliced channels of Phi, Gemma 3's two layer types, GPT-J.
NAMES = ["llama", "llama-yarn", "phi", "gemma3", "gptj"]


@pytest.fixture(autouse=True)
def _fresh_dynamo():
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


@pytest.fixture
def patch():
    """fastpe.hf.apply_to, reverted after the test (the modeling module gets its own function back)."""
    patched = []

    def apply(model):
        patched.append(fastpe.hf.apply_to(model))
        return patched[-1]

    yield apply
    for model in patched:
        fastpe.hf.revert(model)


def _logits(model, input_ids, position_ids):
    with torch.no_grad():
        return model(input_ids=input_ids, position_ids=position_ids).logits


@pytest.mark.parametrize("name", NAMES)
def test_a_patched_model_compiles_with_fullgraph(name, patch):
    model = hf_models.build(name)
    patched = patch(hf_models.twin(model))
    graphs = GraphRecorder()
    counter = torch._dynamo.testing.CompileCounterWithBackend(graphs)
    compiled = torch.compile(patched, backend=counter, fullgraph=True, dynamic=False)
    input_ids = torch.randint(3, hf_models.VOCAB, (2, 6), generator=torch.Generator().manual_seed(0))
    with torch._dynamo.config.patch(error_on_recompile=True):
        for start in (0, 5, 40):
            position_ids = torch.arange(start, start + 6).expand(2, 6)
            expected = _logits(model, input_ids, position_ids)
            got = _logits(compiled, input_ids, position_ids)
            bound = 64 * hf_models.float32_ulp(expected.abs().max().item())
            assert (got - expected).abs().max().item() <= bound, f"{name} at {start}"
    assert counter.frame_count == 1
    assert graphs.fastpe_operators() == set(), "the rotation traced as torch operations"


def _across_the_switch(model, compiled):
    """Logits of compiled against the unpatched model below and beyond what the scaling switches on (8)."""
    input_ids = torch.randint(3, hf_models.VOCAB, (1, 6), generator=torch.Generator().manual_seed(1))
    for start in (0, 20):
        position_ids = torch.arange(start, start + 6)[None]
        expected = _logits(model, input_ids, position_ids)
        got = _logits(compiled, input_ids, position_ids)
        assert (got - expected).abs().max().item() <= 64 * hf_models.float32_ulp(expected.abs().max().item())


def test_longrope_compiles_with_fullgraph_through_the_operator(patch):
    """longrope's frequencies depend on the largest position: the registered operator rotates, in one graph."""
    model = hf_models.build("phi3-longrope")
    graphs = GraphRecorder()
    counter = torch._dynamo.testing.CompileCounterWithBackend(graphs)
    compiled = torch.compile(patch(hf_models.twin(model)), backend=counter, fullgraph=True,
                             dynamic=False)
    _across_the_switch(model, compiled)
    assert counter.frame_count == 1 and graphs.fastpe_operators() == {"fastpe.apply_rotary.default"}


def test_dynamic_scaling_breaks_the_graph_as_hf_does(patch):
    """HF's own update of dynamic frequencies (which the patched model keeps) branches on the largest
    position: Dynamo refuses fullgraph=True for the unpatched model as for the patched one; without it the
    patched model compiles and computes right."""
    model = hf_models.build("llama-dynamic")
    input_ids, position_ids = torch.tensor([[5, 6, 7]]), torch.arange(3)[None]
    for m in (hf_models.twin(model), patch(hf_models.twin(model))):
        with pytest.raises(torch._dynamo.exc.Unsupported, match="[Dd]ata-dependent"):
            _logits(torch.compile(m, backend="aot_eager", fullgraph=True), input_ids, position_ids)
        torch._dynamo.reset()
    _across_the_switch(model, torch.compile(patch(hf_models.twin(model)), backend="aot_eager"))
