"""Random-weight Stable Diffusion 2.1-base models, tiny (tests, demo) or full size (timing).

Both keep SD2.1-base's block structure, so the layer names the engine captures
(`up_blocks.3.attentions.{1,2}.transformer_blocks.0.attn1`) exist unchanged; the tiny one only
shrinks channels, heads and the text encoder. The tiny one is written in the real diffusers
directory format and loads through `load_stable_diffusion`, the same code path as real weights.
"""
from __future__ import annotations

import gzip
import json
import shutil
import tempfile
from pathlib import Path

import torch
from diffusers import AutoencoderKL, PNDMScheduler, StableDiffusionPipeline, UNet2DConditionModel
from open_clip.tokenizer import bytes_to_unicode, default_bpe
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

from nerve_core.models.random_weights import mark_sd_directory
from nerve_core.models.sd_loader import SDModels

# Public config values of SD2.1-base (unet/, vae/, text_encoder/, scheduler/ config.json).
SD21_BASE_UNET = dict(
    sample_size=64,
    in_channels=4,
    out_channels=4,
    down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
    block_out_channels=(320, 640, 1280, 1280),
    layers_per_block=2,
    attention_head_dim=(5, 10, 20, 20),  # diffusers' name; the values are head COUNTS (64 dims each)
    cross_attention_dim=1024,
    use_linear_projection=True,
    upcast_attention=False,
    norm_num_groups=32,
    norm_eps=1e-5,
    act_fn="silu",
    flip_sin_to_cos=True,
    freq_shift=0,
    downsample_padding=1,
    mid_block_scale_factor=1,
    center_input_sample=False,
)
SD21_BASE_VAE = dict(
    sample_size=512,
    in_channels=3,
    out_channels=3,
    down_block_types=("DownEncoderBlock2D",) * 4,
    up_block_types=("UpDecoderBlock2D",) * 4,
    block_out_channels=(128, 256, 512, 512),
    layers_per_block=2,
    latent_channels=4,
    norm_num_groups=32,
    act_fn="silu",
    scaling_factor=0.18215,
)
SD21_BASE_TEXT = dict(
    vocab_size=49408,
    hidden_size=1024,
    intermediate_size=4096,
    num_hidden_layers=23,  # OpenCLIP ViT-H/14 text tower minus its last layer
    num_attention_heads=16,
    max_position_embeddings=77,
    projection_dim=512,
    hidden_act="gelu",
    layer_norm_eps=1e-5,
    bos_token_id=0,
    eos_token_id=2,
    pad_token_id=1,
)
SD21_BASE_SCHEDULER = dict(
    num_train_timesteps=1000,
    beta_start=0.00085,
    beta_end=0.012,
    beta_schedule="scaled_linear",
    prediction_type="epsilon",
    set_alpha_to_one=False,
    skip_prk_steps=True,
    steps_offset=1,
)

# What the tiny model shrinks. 2 heads of 16/32 dims; VAE keeps 4 blocks so the factor stays 8.
_TINY_UNET = dict(
    sample_size=16, block_out_channels=(32, 32, 64, 64), attention_head_dim=2, norm_num_groups=8,
    cross_attention_dim=32,
)
_TINY_VAE = dict(sample_size=128, block_out_channels=(8, 8, 16, 16), layers_per_block=1, norm_num_groups=4)
_TINY_TEXT = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, projection_dim=32)
TINY_IMAGE_SIZE = 128  # latent 16x16: a 256-node grid at the captured layers


def clip_bpe_vocab_and_merges() -> tuple[dict[str, int], list[str]]:
    """CLIP's vocabulary and merge list, built from open_clip's BPE file as CLIP defines them:
    256 byte symbols, the same with the end-of-word mark, one token per merge (the first
    49152 - 256 - 2 merges), then the two special tokens (ids 49406, 49407)."""
    lines = gzip.open(default_bpe()).read().decode("utf-8").split("\n")
    merges = lines[1 : 49152 - 256 - 2 + 1]
    symbols = list(bytes_to_unicode().values())
    tokens = symbols + [s + "</w>" for s in symbols] + ["".join(m.split()) for m in merges]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    return {token: i for i, token in enumerate(tokens)}, merges


def write_sd2_tokenizer(directory) -> None:
    """Write SD2's tokenizer files as the released model ships them (vocab.json, merges.txt and the
    two JSON configs): CLIP BPE, 77 tokens, padded with "!" (id 0) as OpenCLIP pads."""
    vocab, merges = clip_bpe_vocab_and_merges()
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    (directory / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")
    special = {
        "bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>", "unk_token": "<|endoftext|>", "pad_token": "!"
    }
    (directory / "special_tokens_map.json").write_text(json.dumps(special))
    config = {**special, "tokenizer_class": "CLIPTokenizer", "model_max_length": 77, "do_lower_case": True}
    (directory / "tokenizer_config.json").write_text(json.dumps(config))


def random_sd_models(seed: int = 0, full_size: bool = False) -> SDModels:
    """SD2.1-base architecture with random weights, deterministic from `seed` (global RNG untouched).

    full_size=True builds the real sizes: it costs exactly what the real model costs to run.
    """
    unet_cfg = SD21_BASE_UNET if full_size else {**SD21_BASE_UNET, **_TINY_UNET}
    vae_cfg = SD21_BASE_VAE if full_size else {**SD21_BASE_VAE, **_TINY_VAE}
    text_cfg = SD21_BASE_TEXT if full_size else {**SD21_BASE_TEXT, **_TINY_TEXT}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        unet = UNet2DConditionModel(**unet_cfg)
        vae = AutoencoderKL(**vae_cfg)
        text_encoder = CLIPTextModel(CLIPTextConfig(**text_cfg))
    return SDModels(
        vae=vae.eval(),
        unet=unet.eval(),
        text_encoder=text_encoder.eval(),
        tokenizer=_sd2_tokenizer(),
        scheduler=PNDMScheduler(**SD21_BASE_SCHEDULER),
    )


def _sd2_tokenizer() -> CLIPTokenizer:
    with tempfile.TemporaryDirectory() as tmp:
        write_sd2_tokenizer(tmp)
        return CLIPTokenizer.from_pretrained(tmp)


def save_sd_directory(models, path) -> None:
    """Write SD components as a diffusers directory (safetensors), as released models are laid out."""
    pipeline = StableDiffusionPipeline(
        vae=models.vae,
        text_encoder=models.text_encoder,
        tokenizer=models.tokenizer,
        unet=models.unet,
        scheduler=models.scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipeline.save_pretrained(str(path), safe_serialization=True)
    # save_pretrained writes the tokenizer in transformers' own format; ship the released one.
    shutil.rmtree(Path(path) / "tokenizer")
    write_sd2_tokenizer(Path(path) / "tokenizer")


def write_tiny_sd(path, seed: int = 0) -> dict:
    """Write a tiny random SD2.1-base-structured model as a diffusers directory (safetensors).

    Returns the `SDConfig` overrides that load it: {"model": str(path), "image_size": 128}.
    """
    save_sd_directory(random_sd_models(seed=seed), path)
    mark_sd_directory(path, {"architecture": "nerve-tiny-sd", "seed": int(seed)})
    return {"model": str(path), "image_size": TINY_IMAGE_SIZE}
