"""Dense CLIP: per-patch features and per-query logits from an open_clip VisionTransformer.

CLIP is trained to describe the whole image through the CLS token; its patch tokens become
usable for segmentation once the last block stops mixing in global context. Three heads differ
only in that last block (docs/method.md, section 2):

  naclip   - neighbourhood attention (nerve_core.clip.naclip): k kᵀ/√d + Ω; no residual/MLP.
  maskclip - the value path of MaskCLIP (Zhou et al., ECCV 2022) as its public code computes it:
             out_proj(v(ln_1 x)) replaces the attention output, the block's residual and MLP stay.
             (Dropping those too is ClearCLIP's later change, not MaskCLIP's.)
  vanilla  - the unmodified block: CLIP's own patch tokens.

Every head then applies ln_post and proj to every token, drops CLS and L2-normalises.
The model is used as loaded: the head reads its weights and never changes them.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from nerve_core.clip.naclip import VALUE, gaussian_window, in_projection, neighbourhood_block
from nerve_core.clip.text import TextEmbedder
from nerve_core.compiling import compile_function
from nerve_core.config import ClipConfig
from nerve_core.models.clip_loader import preprocess_mean_std
from nerve_core.vocab import Vocabulary

HEADS = ("naclip", "maskclip", "vanilla")


class DenseClipHead:
    """Dense features and query logits for images of any size (grid = H // patch, W // patch)."""

    def __init__(self, model, tokenizer, cfg: ClipConfig, text_batch_size: int = 256):
        if cfg.head not in HEADS:
            raise ValueError(f"unknown clip head {cfg.head!r}; choose from {HEADS}")
        self.visual = _checked_visual(model, cfg.head)
        self.cfg = cfg
        param = self.visual.conv1.weight
        self.device, self.dtype = param.device, param.dtype
        mean, std = preprocess_mean_std(model)
        self.mean = torch.tensor(mean, device=self.device, dtype=self.dtype).view(1, 3, 1, 1)
        self.std = torch.tensor(std, device=self.device, dtype=self.dtype).view(1, 3, 1, 1)
        self.patch_size = tuple(self.visual.patch_size)
        self.native_grid = tuple(self.visual.grid_size)
        self.text = TextEmbedder(model, tokenizer, cfg.templates, text_batch_size)
        self._positional: dict[tuple[int, int], torch.Tensor] = {}
        self._omega: dict[tuple[int, int], torch.Tensor] = {}
        self._trunk = self._run_trunk  # its compiled form after `compile`

    def compile(self, mode: str) -> None:
        """torch.compile the blocks before the last (they run unmodified) as one graph: one call
        per batch, so CUDA graphs (reduce-overhead) never feed one replay's output to the next.
        The head's own last block and the glue around the trunk stay eager."""
        self._trunk = compile_function(self._run_trunk, mode)

    def grid(self, height: int, width: int) -> tuple[int, int]:
        return height // self.patch_size[0], width // self.patch_size[1]

    def positional_embedding(self, grid: tuple[int, int]) -> torch.Tensor:
        """(1 + h·w, width): CLS position kept, patch positions resized bicubically to `grid`."""
        if grid not in self._positional:
            self._positional[grid] = self._resize_positional(tuple(grid))
        return self._positional[grid]

    def omega(self, grid: tuple[int, int]) -> torch.Tensor:
        """NACLIP's Gaussian window for `grid`, built once per grid size."""
        if grid not in self._omega:
            self._omega[grid] = gaussian_window(
                grid, self.cfg.gaussian_sigma, device=self.device, dtype=self.dtype
            )
        return self._omega[grid]

    @torch.inference_mode()
    def patch_features(self, pixels: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) RGB in [0, 1] -> (B, D, H // patch, W // patch), unit norm along D."""
        visual = self.visual
        x = (pixels.to(self.device, self.dtype) - self.mean) / self.std
        patches = visual.conv1(x)
        batch, _, h, w = patches.shape
        tokens = patches.flatten(2).transpose(1, 2)
        cls = visual.class_embedding.to(tokens.dtype).expand(batch, 1, -1)
        x = torch.cat([cls, tokens], dim=1) + self.positional_embedding((h, w))
        x = visual.ln_pre(x)
        x = self._trunk(x)
        x = self._last_block(visual.transformer.resblocks[-1], x, (h, w))
        x = visual.ln_post(x)
        if visual.proj is not None:
            x = x @ visual.proj
        features = F.normalize(x[:, 1:], dim=-1)
        return features.transpose(1, 2).reshape(batch, -1, h, w)

    @torch.inference_mode()
    def query_logits(self, pixels: torch.Tensor, vocab) -> torch.Tensor:
        """(B, Q, h, w) = logit_scale · cos(patch feature, query embedding); Q in vocab order."""
        return self.logits_from_features(self.patch_features(pixels), vocab)

    @torch.inference_mode()
    def logits_from_features(self, features: torch.Tensor, vocab) -> torch.Tensor:
        """Query logits from features already computed (e.g. per sliding window)."""
        text = self.text(Vocabulary.coerce(vocab)).to(features.dtype)
        return self.cfg.logit_scale * torch.einsum("bdhw,qd->bqhw", features, text)

    def _run_trunk(self, x: torch.Tensor) -> torch.Tensor:
        """Every block but the last, unmodified."""
        for block in self.visual.transformer.resblocks[:-1]:
            x = _run_block(block, x)
        return x

    def _last_block(self, block: nn.Module, x: torch.Tensor, grid) -> torch.Tensor:
        if self.cfg.head == "naclip":
            return neighbourhood_block(block, x, self.omega(grid))
        if self.cfg.head == "maskclip":
            return maskclip_block(block, x)
        return _run_block(block, x)

    def _resize_positional(self, grid: tuple[int, int]) -> torch.Tensor:
        table = self.visual.positional_embedding
        if grid == self.native_grid:
            return table.detach()
        gh, gw = self.native_grid
        patches = table[1:].reshape(1, gh, gw, -1).permute(0, 3, 1, 2).float()
        patches = F.interpolate(patches, size=grid, mode="bicubic", align_corners=False)
        patches = patches.permute(0, 2, 3, 1).reshape(grid[0] * grid[1], -1).to(table.dtype)
        return torch.cat([table[:1], patches]).detach()


def maskclip_block(block: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """MaskCLIP's last block: the attention output is replaced by out_proj(v) of ln_1(x)."""
    values = in_projection(block.attn, block.ln_1(x), VALUE)
    x = x + block.ls_1(block.attn.out_proj(values))
    return x + block.ls_2(block.mlp(block.ln_2(x)))


def class_probs(query_logits: torch.Tensor, owner: Sequence[int], classes=None) -> torch.Tensor:
    """(B, Q, h, w) query logits -> (B, K', h, w) class probabilities.

    Softmax over the queries of the selected classes only (so absent classes take no mass, as
    WSSS restricts each image to its labels), then each class takes the max over its synonyms.
    `owner[q]` is the class of query q; `classes` lists class indices (default all), output in
    that order.
    """
    owner = torch.as_tensor(list(owner), dtype=torch.long, device=query_logits.device)
    if owner.numel() != query_logits.shape[1]:
        raise ValueError(f"{owner.numel()} query owners for {query_logits.shape[1]} query logits")
    num_classes = int(owner.max()) + 1
    classes = list(range(num_classes)) if classes is None else [int(c) for c in classes]
    if len(set(classes)) != len(classes) or not all(0 <= c < num_classes for c in classes):
        raise ValueError(f"classes must be distinct indices below {num_classes}: {classes}")
    slot = torch.full((num_classes,), -1, dtype=torch.long, device=owner.device)
    slot[torch.tensor(classes, dtype=torch.long, device=owner.device)] = torch.arange(
        len(classes), device=owner.device
    )
    query_slot = slot[owner]
    selected = query_slot >= 0
    probs = torch.softmax(query_logits[:, selected], dim=1)
    out = probs.new_zeros(probs.shape[0], len(classes), *probs.shape[2:])
    index = query_slot[selected].view(1, -1, 1, 1).expand_as(probs)
    return out.scatter_reduce_(1, index, probs, reduce="amax", include_self=False)


def _run_block(block: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """An unmodified open_clip block on batch-first tokens, whatever layout it expects."""
    if getattr(block.attn, "batch_first", True):
        return block(x)
    return block(x.transpose(0, 1)).transpose(0, 1)


def _checked_visual(model, head: str):
    """The model's ViT tower, refusing towers whose internals the heads do not know."""
    visual = getattr(model, "visual", model)
    needed = ("conv1", "class_embedding", "positional_embedding", "ln_pre", "transformer",
              "ln_post")
    missing = [name for name in needed if not hasattr(visual, name)]
    if missing:
        kind = type(visual).__name__
        raise ValueError(f"dense CLIP needs an open_clip VisionTransformer; {kind} lacks {missing}")
    if getattr(visual, "attn_pool", None) is not None:
        raise ValueError("dense CLIP does not support attentional pooling towers (CoCa)")
    last_attention = visual.transformer.resblocks[-1].attn
    if head != "vanilla" and not isinstance(last_attention, nn.MultiheadAttention):
        raise ValueError(f"the {head} head needs nn.MultiheadAttention in the last block")
    return visual
