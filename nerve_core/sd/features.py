"""Images -> per-head q, k of Stable Diffusion's self-attention (docs/method.md, section 3).

Image in [0, 1] -> [-1, 1] -> VAE posterior mean x scaling factor -> optional fixed-seed noise at
the configured timestep -> one UNet forward with the empty-prompt embedding (no guidance) ->
q, k of the configured layers. The noise is drawn once from `cfg.seed` and shared by every image
and every call, so an image's features never depend on its batch or its position in it.
"""
from __future__ import annotations

from contextlib import nullcontext
from dataclasses import replace

import torch
import torch.nn.functional as F

from nerve_core.compiling import compile_module
from nerve_core.config import SDConfig
from nerve_core.models.sd_loader import SDModels
from nerve_core.sd.capture import AttentionQKCapture, LayerQK

__all__ = ["LayerQK", "SDQueryKeyExtractor"]


class SDQueryKeyExtractor:
    """Callable: pixels (B, 3, S, S) in [0, 1] -> one LayerQK per configured layer, batch kept.

    With cfg.channels_last the VAE and UNet are switched to channels_last in place (faster
    convolutions on GPU); their weights are unchanged. The capture processors on the UNet's
    configured layers are installed at construction and stay until `close` (see
    AttentionQKCapture: per-call swapping would recompile a compiled UNet on every call).
    """

    def __init__(self, models: SDModels, cfg: SDConfig, device, dtype):
        self.models = models
        self.cfg = cfg
        self.device = torch.device(device)
        self.dtype = dtype
        self.memory_format = torch.channels_last if cfg.channels_last else torch.contiguous_format
        if cfg.channels_last:
            models.vae.to(memory_format=torch.channels_last)
            models.unet.to(memory_format=torch.channels_last)
        self.text_embedding = self._empty_prompt_embedding()  # (1, 77, D), once per extractor
        # The text encoder (SD2.1: 340M parameters, 0.7 GB in fp16) has done its only job: let it go.
        self.models = replace(models, text_encoder=None)
        self.capture = AttentionQKCapture(models.unet, cfg.layers, cfg.stop_after_capture).install()
        self._noise: dict[tuple[int, ...], torch.Tensor] = {}
        # Optional StageTimer (benchmarks): splits the engine's "sd" time into "vae" and "unet".
        self.timer = None

    def compile(self, mode: str) -> None:
        """torch.compile the VAE encoder and the UNet forward (see nerve_core.compiling)."""
        compile_module(self.models.vae.encoder, mode)
        self.capture.compile(mode)

    def close(self) -> None:
        """Give the UNet its own attention processors back."""
        self.capture.close()

    @torch.inference_mode()
    def _empty_prompt_embedding(self) -> torch.Tensor:
        tokenizer = self.models.tokenizer
        ids = tokenizer(
            "", padding="max_length", max_length=tokenizer.model_max_length, truncation=True, return_tensors="pt"
        ).input_ids
        return self.models.text_encoder(ids.to(self.device)).last_hidden_state.to(self.dtype)

    def noise(self, latent_shape: tuple[int, ...]) -> torch.Tensor:
        """The fixed noise for one latent (C, h, w): drawn on the CPU in float32 from `cfg.seed`, so
        it is the same on every device and in every call."""
        latent_shape = tuple(latent_shape)
        if latent_shape not in self._noise:
            generator = torch.Generator("cpu").manual_seed(self.cfg.seed)
            noise = torch.randn(latent_shape, generator=generator, dtype=torch.float32)
            self._noise[latent_shape] = noise.to(self.device, self.dtype)
        return self._noise[latent_shape]

    @torch.inference_mode()
    def encode(self, pixels: torch.Tensor) -> torch.Tensor:
        """Pixels in [0, 1] -> scaled VAE posterior mean, plus the fixed noise at the timestep."""
        size = self.cfg.image_size
        pixels = pixels.to(self.device, self.dtype)
        if pixels.shape[-2:] != (size, size):
            pixels = F.interpolate(pixels, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        pixels = (pixels * 2 - 1).contiguous(memory_format=self.memory_format)
        vae = self.models.vae
        latents = vae.encode(pixels).latent_dist.mean * vae.config.scaling_factor
        if self.cfg.noise:
            noise = self.noise(latents.shape[1:]).expand_as(latents)
            timesteps = torch.full((latents.shape[0],), self.cfg.timestep, device=self.device, dtype=torch.long)
            latents = self.models.scheduler.add_noise(latents, noise, timesteps)
        return latents

    @torch.inference_mode()
    def __call__(self, pixels: torch.Tensor) -> list[LayerQK]:
        with self._stage("vae"):
            latents = self.encode(pixels).contiguous(memory_format=self.memory_format)
        batch = latents.shape[0]
        with self._stage("unet"):
            _, captured = self.capture.run(
                latents,
                self.cfg.timestep,
                encoder_hidden_states=self.text_embedding.expand(batch, -1, -1),
                return_dict=False,
            )
        return captured

    def _stage(self, name: str):
        return self.timer.stage(name) if self.timer is not None else nullcontext()
