"""Device/dtype resolution, the tiny SD writer, and loading it through the real loader."""
from __future__ import annotations

import json

import pytest
import torch

from nerve_core.config import SDConfig
from nerve_core.devices import resolve_device, resolve_dtype
from nerve_core.models.errors import ModelNotFoundError
from nerve_core.models.sd_loader import load_stable_diffusion
from nerve_core.models.tiny_sd import write_tiny_sd

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def tiny_sd(tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny_sd")
    overrides = write_tiny_sd(path, seed=0)
    return path, overrides


@pytest.fixture(scope="module")
def loaded(tiny_sd):
    _, overrides = tiny_sd
    return load_stable_diffusion(SDConfig(**overrides), CPU, torch.float32)


def test_resolve_device_auto_and_cpu():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    assert resolve_device("cpu") == CPU


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on a machine without CUDA")
def test_resolve_device_cuda_unavailable_is_a_clear_error():
    with pytest.raises(ValueError, match="CUDA is not available"):
        resolve_device("cuda:0")


def test_resolve_device_rejects_unknown_names():
    with pytest.raises(ValueError, match="not a device name"):
        resolve_device("gpu0")


def test_resolve_dtype():
    assert resolve_dtype("auto", CPU) == torch.float32
    assert resolve_dtype("auto", torch.device("cuda")) == torch.float16
    assert resolve_dtype("bfloat16", CPU) == torch.bfloat16
    assert resolve_dtype("float16", torch.device("cuda")) == torch.float16
    assert resolve_dtype("float16", CPU) == torch.float16  # slow, but the GPU's precision can be checked
    with pytest.raises(ValueError, match="unknown dtype"):
        resolve_dtype("fp8", CPU)


def test_tiny_sd_is_a_diffusers_directory(tiny_sd):
    path, overrides = tiny_sd
    assert overrides["model"] == str(path)
    index = json.loads((path / "model_index.json").read_text())
    assert index["_class_name"] == "StableDiffusionPipeline"
    for component in ("vae", "unet"):
        assert (path / component / "diffusion_pytorch_model.safetensors").is_file()
    assert (path / "text_encoder" / "model.safetensors").is_file()
    assert {"vocab.json", "merges.txt"} <= {p.name for p in (path / "tokenizer").iterdir()}
    assert index["scheduler"] == ["diffusers", "PNDMScheduler"]


def test_tiny_sd_is_deterministic_from_seed(tiny_sd, tmp_path):
    from safetensors.torch import load_file

    path, _ = tiny_sd
    write_tiny_sd(tmp_path / "same", seed=0)
    write_tiny_sd(tmp_path / "other", seed=1)
    weights = "unet/diffusion_pytorch_model.safetensors"
    reference = load_file(path / weights)
    same = load_file(tmp_path / "same" / weights)
    other = load_file(tmp_path / "other" / weights)
    assert all(torch.equal(reference[name], same[name]) for name in reference)
    assert not all(torch.equal(reference[name], other[name]) for name in reference)


def test_load_tiny_sd(loaded):
    from diffusers.models.attention_processor import AttnProcessor2_0

    for module in (loaded.vae, loaded.unet, loaded.text_encoder):
        assert not module.training
        assert all(not p.requires_grad for p in module.parameters())
        assert all(p.dtype == torch.float32 and p.device == CPU for p in module.parameters())
    assert all(isinstance(p, AttnProcessor2_0) for p in loaded.unet.attn_processors.values())
    assert loaded.text_encoder.config._attn_implementation == "sdpa"
    assert hasattr(loaded.scheduler, "add_noise")
    assert loaded.tokenizer.model_max_length == 77


def test_only_the_vae_encoder_is_kept(loaded):
    """The engine never decodes latents: the decoder half is freed at load, encoding still works."""
    assert loaded.vae.decoder is None and loaded.vae.post_quant_conv is None
    with torch.inference_mode():
        latents = loaded.vae.encode(torch.zeros(1, 3, 64, 64)).latent_dist.mean
    assert latents.shape == (1, 4, 8, 8)


def test_load_in_bfloat16(tiny_sd):
    _, overrides = tiny_sd
    models = load_stable_diffusion(SDConfig(**overrides), CPU, torch.bfloat16)
    for module in (models.vae, models.unet, models.text_encoder):
        assert {p.dtype for p in module.parameters()} == {torch.bfloat16}


def test_default_capture_layers_exist_in_tiny_unet(loaded):
    """SD2.1's block structure is kept: the engine's default layers are there, at full resolution."""
    unet = loaded.unet
    for name in SDConfig().layers:
        attn = unet.get_submodule(name)
        assert not attn.is_cross_attention
        assert attn.heads == 2
    assert [type(b).__name__ for b in unet.up_blocks] == [
        "UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"
    ]
    assert 2 ** (len(loaded.vae.config.block_out_channels) - 1) == 8


@pytest.mark.parametrize(
    "text", ["a photo of a dog.", "Two CATS sitting on a sofa", "tv monitor, television; 1984", "naïve café"]
)
def test_tokenizer_ids_match_open_clip(loaded, text):
    from open_clip.tokenizer import SimpleTokenizer

    reference = SimpleTokenizer()
    expected = [reference.sot_token_id, *reference.encode(text), reference.eot_token_id]
    assert loaded.tokenizer(text).input_ids == expected


def test_empty_prompt_pads_with_exclamation_mark_like_open_clip(loaded):
    from open_clip.tokenizer import SimpleTokenizer

    expected = SimpleTokenizer()("")[0].tolist()  # open_clip pads with id 0, the "!" token
    assert loaded.tokenizer("", padding="max_length", max_length=77).input_ids == expected


def test_missing_directory_is_model_not_found(tmp_path):
    missing = tmp_path / "no_such_model"
    with pytest.raises(ModelNotFoundError) as info:
        load_stable_diffusion(SDConfig(model=str(missing)), CPU, torch.float32)
    assert str(missing) in str(info.value)


def test_missing_component_is_model_not_found_naming_it(tiny_sd, tmp_path):
    import shutil

    path, _ = tiny_sd
    broken = tmp_path / "broken"
    shutil.copytree(path, broken)
    (broken / "unet" / "diffusion_pytorch_model.safetensors").unlink()
    with pytest.raises(ModelNotFoundError) as info:
        load_stable_diffusion(SDConfig(model=str(broken)), CPU, torch.float32)
    assert f"{broken} (unet)" in str(info.value)


def test_uncached_hub_id_is_model_not_found():
    """conftest sets HF_HUB_OFFLINE=1: only the cache is consulted, and this id is not in it."""
    with pytest.raises(ModelNotFoundError) as info:
        load_stable_diffusion(SDConfig(model="nerve-tests/no-such-model"), CPU, torch.float32)
    assert "nerve-tests/no-such-model" in str(info.value)


@pytest.mark.slow
def test_full_size_architecture_matches_sd21_base():
    """The full-size configs reproduce SD2.1-base: parameter counts and 5 heads x 64 dims at 64x64."""
    from nerve_core.models.tiny_sd import random_sd_models

    models = random_sd_models(full_size=True)
    assert sum(p.numel() for p in models.unet.parameters()) == 865_910_724
    assert sum(p.numel() for p in models.vae.parameters()) == 83_653_863
    for name in SDConfig().layers:
        attn = models.unet.get_submodule(name)
        assert attn.heads == 5 and attn.to_q.out_features == 5 * 64
