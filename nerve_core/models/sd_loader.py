"""Load the Stable Diffusion components the engine needs, one by one, from a hub id or a directory.

Only the VAE encoder, the UNet, the text encoder (for the empty prompt) and the scheduler's
`add_noise` are used, so no pipeline object is built and the VAE's decoder is dropped at load. A hub id is read from the Hugging Face
cache (set HF_HUB_OFFLINE=1 on machines without network); a path is read as a diffusers directory.
"""
from __future__ import annotations

from dataclasses import dataclass

import diffusers
import torch
from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
from diffusers.models.attention_processor import AttnProcessor2_0
from diffusers.schedulers.scheduling_utils import SchedulerMixin
from diffusers.utils import is_accelerate_available
from transformers import CLIPTextModel, CLIPTokenizer

from nerve_core.config import SDConfig
from nerve_core.models.errors import ModelNotFoundError


@dataclass
class SDModels:
    vae: AutoencoderKL
    unet: UNet2DConditionModel
    text_encoder: CLIPTextModel | None  # None once the empty prompt is encoded (SDQueryKeyExtractor)
    tokenizer: CLIPTokenizer
    scheduler: SchedulerMixin  # the class the model ships; only `add_noise` is used


def _load(what: str, cfg: SDConfig, loader):
    """Run one component loader; any failure means the model is missing or unloadable."""
    try:
        return loader()
    except Exception as err:  # noqa: BLE001 - every loading failure gets the same actionable error
        raise ModelNotFoundError("Stable Diffusion", f"{cfg.model} ({what})", err) from err


def _scheduler(cfg: SDConfig) -> SchedulerMixin:
    """Instantiate the scheduler class named in the model's scheduler config."""
    config = DDPMScheduler.load_config(cfg.model, subfolder="scheduler")  # any scheduler class reads it
    cls = getattr(diffusers, config["_class_name"])
    if not hasattr(cls, "add_noise"):
        raise TypeError(f"scheduler {cls.__name__} has no add_noise")
    return cls.from_config(config)


def _prepare(module: torch.nn.Module, device) -> torch.nn.Module:
    """Inference only: eval mode, no gradients, on the target device (loaded in its dtype already:
    a later `.to(dtype)` would bypass diffusers' keep-in-fp32 rules)."""
    return module.eval().requires_grad_(False).to(device=device)


def drop_vae_decoder(vae: AutoencoderKL) -> None:
    """Free the VAE's decoder half (SD2.1: 49M parameters): the engine only ever encodes."""
    vae.decoder = None
    vae.post_quant_conv = None


def load_stable_diffusion(cfg: SDConfig, device, dtype) -> SDModels:
    """Load VAE, UNet, text encoder, tokenizer and scheduler from `cfg.model`.

    Weights: safetensors when present (diffusers' and transformers' default preference), else
    .bin through their weights-only loading. Attention: PyTorch SDPA everywhere.
    Raises ModelNotFoundError naming the model and the component that failed.
    """
    # Without accelerate, diffusers falls back to a normal load anyway; say so instead of warning.
    options = dict(torch_dtype=dtype, low_cpu_mem_usage=is_accelerate_available())
    vae = _load("vae", cfg, lambda: AutoencoderKL.from_pretrained(cfg.model, subfolder="vae", **options))
    unet = _load("unet", cfg, lambda: UNet2DConditionModel.from_pretrained(cfg.model, subfolder="unet", **options))
    text_encoder = _load(
        "text_encoder",
        cfg,
        lambda: CLIPTextModel.from_pretrained(
            cfg.model, subfolder="text_encoder", dtype=dtype, attn_implementation="sdpa"
        ),
    )
    tokenizer = _load("tokenizer", cfg, lambda: CLIPTokenizer.from_pretrained(cfg.model, subfolder="tokenizer"))
    scheduler = _load("scheduler", cfg, lambda: _scheduler(cfg))
    vae.set_attn_processor(AttnProcessor2_0())
    unet.set_attn_processor(AttnProcessor2_0())
    drop_vae_decoder(vae)
    return SDModels(
        vae=_prepare(vae, device),
        unet=_prepare(unet, device),
        text_encoder=_prepare(text_encoder, device),
        tokenizer=tokenizer,
        scheduler=scheduler,
    )
