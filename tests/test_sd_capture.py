"""q/k capture inside the UNet, and the image -> q, k extractor, on the tiny SD model."""
from __future__ import annotations

import dataclasses

import pytest
import torch

from nerve_core.config import SDConfig
from nerve_core.models.sd_loader import load_stable_diffusion
from nerve_core.models.tiny_sd import write_tiny_sd
from nerve_core.sd.capture import AttentionQKCapture
from nerve_core.sd.features import SDQueryKeyExtractor

CPU = torch.device("cpu")
LAYERS = SDConfig().layers  # the engine's defaults, present in the tiny UNet


@pytest.fixture(scope="module")
def sd_config(tmp_path_factory):
    return SDConfig(**write_tiny_sd(tmp_path_factory.mktemp("tiny_sd"), seed=0))


@pytest.fixture(scope="module")
def models(sd_config):
    return load_stable_diffusion(sd_config, CPU, torch.float32)


def unet_inputs(models, batch=2, size=16, seed=0):
    generator = torch.Generator().manual_seed(seed)
    latents = torch.randn(batch, 4, size, size, generator=generator)
    text = torch.randn(batch, 77, models.unet.config.cross_attention_dim, generator=generator)
    return latents, 100, text


def layer_inputs_by_hooks(unet, names, inputs):
    """Each layer's input hidden states, recorded with plain forward pre-hooks (default processors)."""
    seen = {}

    def recorder(name):
        def hook(module, args, kwargs):
            seen[name] = args[0] if args else kwargs["hidden_states"]

        return hook

    hooks = [unet.get_submodule(n).register_forward_pre_hook(recorder(n), with_kwargs=True) for n in names]
    try:
        with torch.inference_mode():
            output = unet(inputs[0], inputs[1], encoder_hidden_states=inputs[2]).sample
    finally:
        for hook in hooks:
            hook.remove()
    return seen, output


def projections(attn, hidden):
    """to_q / to_k of the layer's input, split into heads: (B, heads, N, d)."""
    batch, tokens, _ = hidden.shape
    q = attn.to_q(hidden).reshape(batch, tokens, attn.heads, -1).permute(0, 2, 1, 3)
    k = attn.to_k(hidden).reshape(batch, tokens, attn.heads, -1).permute(0, 2, 1, 3)
    return q, k


def capture(models, inputs, stop):
    with torch.inference_mode(), AttentionQKCapture(models.unet, LAYERS, stop_after_capture=stop) as cap:
        output, qk = cap.run(inputs[0], inputs[1], encoder_hidden_states=inputs[2])
    return output, qk


def test_captured_qk_are_the_layer_projections(models):
    inputs = unet_inputs(models)
    hidden, _ = layer_inputs_by_hooks(models.unet, LAYERS, inputs)
    _, captured = capture(models, inputs, stop=False)
    assert [c.name for c in captured] == LAYERS
    for layer in captured:
        attn = models.unet.get_submodule(layer.name)
        q, k = projections(attn, hidden[layer.name])
        assert layer.q.shape == (2, attn.heads, 16 * 16, attn.to_q.out_features // attn.heads)
        torch.testing.assert_close(layer.q, q, rtol=0, atol=0)
        torch.testing.assert_close(layer.k, k, rtol=0, atol=0)
        assert layer.grid == (16, 16)


def test_unet_output_unchanged_by_capture(models):
    inputs = unet_inputs(models)
    _, reference = layer_inputs_by_hooks(models.unet, [], inputs)
    output, _ = capture(models, inputs, stop=False)
    torch.testing.assert_close(output.sample, reference, rtol=1e-6, atol=1e-6)


def test_stop_after_capture_gives_identical_qk(models):
    inputs = unet_inputs(models)
    full_output, full = capture(models, inputs, stop=False)
    stopped_output, stopped = capture(models, inputs, stop=True)
    assert full_output is not None and stopped_output is None
    for a, b in zip(full, stopped):
        assert a.name == b.name and a.grid == b.grid
        assert torch.equal(a.q, b.q) and torch.equal(a.k, b.k)


def test_original_processors_restored(models):
    before = dict(models.unet.attn_processors)
    with AttentionQKCapture(models.unet, LAYERS) as cap:
        during = models.unet.attn_processors
        changed = {name for name in before if during[name] is not before[name]}
        assert changed == {f"{name}.processor" for name in LAYERS}  # only the configured layers
        with pytest.raises(RuntimeError):  # a forward that fails: text states of the wrong width
            cap.run(torch.zeros(1, 4, 16, 16), 100, encoder_hidden_states=torch.zeros(1, 77, 31))
    after = models.unet.attn_processors
    assert all(after[name] is before[name] for name in before)


def test_one_capture_of_a_layer_at_a_time(models):
    with AttentionQKCapture(models.unet, LAYERS[1:]):
        with pytest.raises(RuntimeError, match="already captured"):
            AttentionQKCapture(models.unet, LAYERS).install()
    with AttentionQKCapture(models.unet, LAYERS):  # free again once the first is closed
        pass


def test_installed_capture_serves_many_runs(models):
    inputs = unet_inputs(models)
    capture = AttentionQKCapture(models.unet, LAYERS, stop_after_capture=True).install()
    try:
        installed = dict(models.unet.attn_processors)
        with torch.inference_mode():
            runs = [capture.run(inputs[0], inputs[1], encoder_hidden_states=inputs[2])[1] for _ in range(2)]
        assert all(models.unet.attn_processors[name] is p for name, p in installed.items())
    finally:
        capture.close()
    for first, second in zip(*runs):
        assert torch.equal(first.q, second.q) and torch.equal(first.k, second.k)
    with pytest.raises(RuntimeError, match="before install"):
        capture.run(*inputs)


def test_grid_is_recorded_row_major_for_non_square_latents(models):
    latents = torch.randn(1, 4, 16, 8)
    text = torch.zeros(1, 77, 32)
    with torch.inference_mode(), AttentionQKCapture(models.unet, LAYERS, stop_after_capture=True) as cap:
        _, captured = cap.run(latents, 100, encoder_hidden_states=text)
    assert [c.grid for c in captured] == [(16, 8), (16, 8)]
    assert captured[0].q.shape[2] == 16 * 8


def test_unknown_layer_lists_close_matches(models):
    with pytest.raises(ValueError, match=r"up_blocks\.3\.attentions\.1\.transformer_blocks\.0\.attn1"):
        AttentionQKCapture(models.unet, ["up_blocks.3.attentions.1.transformer_blocks.0.atn1"])


def test_cross_attention_layer_is_refused(models):
    with pytest.raises(ValueError, match="cross-attention"):
        AttentionQKCapture(models.unet, ["up_blocks.3.attentions.1.transformer_blocks.0.attn2"])


# --- the extractor -------------------------------------------------------------------------------


@pytest.fixture
def extractor(models, sd_config):
    """Makes extractors on the shared tiny models and closes them after the test: each one holds
    the capture of the UNet's layers until it is closed."""
    made = []

    def make(**changes):
        made.append(SDQueryKeyExtractor(models, dataclasses.replace(sd_config, **changes), CPU, torch.float32))
        return made[-1]

    yield make
    for run in made:
        run.close()


def images(batch, size=128, seed=0):
    return torch.rand(batch, 3, size, size, generator=torch.Generator().manual_seed(seed))


def clean_latents(models, pixels):
    with torch.inference_mode():
        return models.vae.encode(pixels * 2 - 1).latent_dist.mean * models.vae.config.scaling_factor


def test_noise_is_the_seeded_draw_for_every_image_and_call(models, sd_config, extractor):
    """Recover the noise from x_t = sqrt(abar) x_0 + sqrt(1 - abar) eps, with abar computed from
    SD's scaled-linear beta schedule directly (not from the scheduler)."""
    betas = torch.linspace(0.00085**0.5, 0.012**0.5, 1000, dtype=torch.float64) ** 2
    abar = torch.cumprod(1 - betas, 0)[sd_config.timestep]
    pixels = images(2)
    first = extractor()
    noisy = first.encode(pixels)
    first.close()  # one capture of a UNet's layers at a time
    noisy_again = extractor().encode(pixels[1:])  # another extractor, another call
    clean = clean_latents(models, pixels)
    eps = (noisy.double() - abar.sqrt() * clean.double()) / (1 - abar).sqrt()
    eps_again = (noisy_again.double() - abar.sqrt() * clean[1:].double()) / (1 - abar).sqrt()
    expected = torch.randn(4, 16, 16, generator=torch.Generator().manual_seed(sd_config.seed)).double()
    for recovered in (eps[0], eps[1], eps_again[0]):
        torch.testing.assert_close(recovered, expected, rtol=0, atol=1e-4)


def test_no_noise_gives_the_clean_latent(models, extractor):
    pixels = images(1)
    torch.testing.assert_close(extractor(noise=False).encode(pixels), clean_latents(models, pixels))


def test_extractor_matches_an_independent_pipeline(models, sd_config, extractor):
    pixels = images(2)
    run = extractor()
    captured = run(pixels)
    latents = run.encode(pixels)
    run.close()  # the reference below runs the UNet with its own processors
    tokenizer = models.tokenizer
    ids = tokenizer([""] * 2, padding="max_length", max_length=77, return_tensors="pt").input_ids
    with torch.inference_mode():
        text = models.text_encoder(ids).last_hidden_state
    hidden, _ = layer_inputs_by_hooks(models.unet, LAYERS, (latents, sd_config.timestep, text))
    for layer in captured:
        q, k = projections(models.unet.get_submodule(layer.name), hidden[layer.name])
        torch.testing.assert_close(layer.q, q, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(layer.k, k, rtol=1e-5, atol=1e-5)
        assert layer.grid == (16, 16)


def test_batch_of_two_equals_two_batches_of_one(extractor):
    run = extractor()
    pixels = images(2)
    together = run(pixels)
    apart = [run(pixels[i : i + 1]) for i in range(2)]
    for index, layer in enumerate(together):
        for i in range(2):
            torch.testing.assert_close(layer.q[i : i + 1], apart[i][index].q, rtol=1e-5, atol=1e-5)
            torch.testing.assert_close(layer.k[i : i + 1], apart[i][index].k, rtol=1e-5, atol=1e-5)


def test_extractor_captures_until_closed(models, extractor):
    before = dict(models.unet.attn_processors)
    run = extractor()
    during = dict(models.unet.attn_processors)
    run(images(1))
    assert models.unet.attn_processors == during  # the same processors for every call
    assert {name for name in before if during[name] is not before[name]} == {f"{n}.processor" for n in LAYERS}
    run.close()
    assert models.unet.attn_processors == before


def test_empty_prompt_is_encoded_once(models, extractor):
    calls = []
    hook = models.text_encoder.register_forward_hook(lambda *args: calls.append(1))
    try:
        run = extractor()
        run(images(1))
        run(images(1, seed=1))
    finally:
        hook.remove()
    assert len(calls) == 1


def test_extractor_lets_the_text_encoder_go(models, extractor):
    """After the one empty-prompt encoding the extractor holds no text encoder (0.7 GB in SD2.1 fp16)."""
    run = extractor()
    assert run.models.text_encoder is None and models.text_encoder is not None
    assert run(images(1))[0].q.shape[0] == 1


def test_other_sizes_are_resized_to_the_configured_size(extractor):
    run = extractor(noise=False)
    small = images(1, size=96)
    resized = torch.nn.functional.interpolate(small, size=(128, 128), mode="bilinear", antialias=True)
    torch.testing.assert_close(run.encode(small), run.encode(resized))
    assert [layer.grid for layer in run(small)] == [(16, 16), (16, 16)]
