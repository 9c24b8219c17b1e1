"""Record the per-head query and key of chosen UNet self-attention layers during one forward.

A processor of our own is installed on the named layers only. It computes the attention the way
diffusers' SDPA processor does (the UNet output is unchanged) and hands over q and k, the very
tensors the attention consumes, shaped (B, heads, N, head_dim). No N x N matrix is formed here.
Optionally the forward stops as soon as every layer has been recorded: nothing after that point
feeds into the recorded q, k, so stopping is exact and skips the rest of the UNet.
"""
from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from diffusers.models.attention_processor import Attention
from diffusers.models.transformers.transformer_2d import Transformer2DModel

from nerve_core.compiling import compile_function


@dataclass
class LayerQK:
    """Query and key of one self-attention layer; the N tokens are the row-major (h, w) grid.

    q and k are the tensors the attention consumed (per-head views, not necessarily contiguous).
    """

    name: str
    q: torch.Tensor  # (B, heads, N, head_dim)
    k: torch.Tensor  # (B, heads, N, head_dim)
    grid: tuple[int, int]


class _AllCaptured(Exception):
    """Raised inside the UNet once every layer is recorded; caught around the UNet call."""


class _CaptureProcessor:
    """Self-attention as diffusers' AttnProcessor2_0 computes it, reporting q and k on the way."""

    def __init__(self, name: str, capture: AttentionQKCapture):
        self.name = name
        self.capture = capture

    def __call__(self, attn: Attention, hidden_states, encoder_hidden_states=None, attention_mask=None, **_):
        if encoder_hidden_states is not None or attention_mask is not None:
            raise ValueError(f"{self.name}: captured layers take no encoder states and no mask (SD never passes them)")
        residual = hidden_states

        def per_head(x):  # (B, N, heads * d) -> (B, heads, N, d); the transformer flattened (h, w) to N
            return x.unflatten(-1, (attn.heads, -1)).transpose(1, 2)

        query = per_head(attn.to_q(hidden_states))
        key = per_head(attn.to_k(hidden_states))
        self.capture._record(self.name, query, key)
        value = per_head(attn.to_v(hidden_states))
        out = F.scaled_dot_product_attention(query, key, value, scale=attn.scale)
        out = out.transpose(1, 2).flatten(2).to(query.dtype)
        out = attn.to_out[1](attn.to_out[0](out))  # projection, dropout
        if attn.residual_connection:
            out = out + residual
        return out / attn.rescale_output_factor


def _check_layer(unet: torch.nn.Module, name: str) -> Attention:
    """The named module, or a ValueError that lists the closest attention-layer names."""
    attention_names = [n for n, m in unet.named_modules() if isinstance(m, Attention)]
    if name not in attention_names:
        close = difflib.get_close_matches(name, attention_names, n=5, cutoff=0.6)
        raise ValueError(f"{name!r} is not an attention layer of this UNet; closest: {close or attention_names[:5]}")
    attn = unet.get_submodule(name)
    unsupported = [
        feature
        for feature, present in [
            ("cross-attention", attn.is_cross_attention),
            ("spatial_norm", attn.spatial_norm is not None),
            ("group_norm", attn.group_norm is not None),
            ("norm_q/norm_k", attn.norm_q is not None or attn.norm_k is not None),
            ("added key/value projections", attn.added_kv_proj_dim is not None),
        ]
        if present
    ]
    if unsupported:
        raise ValueError(f"{name!r} uses {', '.join(unsupported)}: only plain self-attention layers can be captured")
    return attn


def _enclosing_transformer(unet: torch.nn.Module, name: str) -> Transformer2DModel:
    """The Transformer2DModel that flattens the (h, w) feature map this layer attends over: the
    grid is read from its input, since the layer itself only sees N flattened tokens."""
    parts = name.split(".")
    for end in range(len(parts) - 1, 0, -1):
        module = unet.get_submodule(".".join(parts[:end]))
        if isinstance(module, Transformer2DModel):
            return module
    raise ValueError(f"{name!r} is not inside a Transformer2DModel: its (h, w) grid is unknown")


class AttentionQKCapture:
    """Capture processors on `layers`, installed once and kept until `close` (originals restored).

        with AttentionQKCapture(unet, layers, stop_after_capture=True) as capture:
            output, qk = capture.run(latents, t, encoder_hidden_states=text)  # output None if stopped

    or `capture = AttentionQKCapture(...).install()` for many runs, then `capture.close()`.
    Installing once matters under torch.compile: swapping processors or hooks per call would
    change what the compiled UNet's guards check and recompile it every time.
    """

    def __init__(self, unet: torch.nn.Module, layers: Sequence[str], stop_after_capture: bool = False):
        if not layers:
            raise ValueError("no layers to capture")
        self.unet = unet
        self.layers = list(layers)
        self.stop_after_capture = stop_after_capture
        self._attention = {name: _check_layer(unet, name) for name in self.layers}
        self._transformers = {name: _enclosing_transformer(unet, name) for name in self.layers}
        self._originals: dict[str, object] = {}
        self._hooks = []
        self._grids: dict[str, tuple[int, int]] = {}
        self._captured: dict[str, LayerQK] = {}
        self._forward = self._forward_until_captured

    def install(self) -> AttentionQKCapture:
        """Put the capture processors and grid hooks in place (once; a second call does nothing)."""
        if self._originals:
            return self
        taken = [name for name, attn in self._attention.items() if isinstance(attn.processor, _CaptureProcessor)]
        if taken:
            raise RuntimeError(f"{taken} are already captured by another AttentionQKCapture: close that one first")
        for name, attn in self._attention.items():
            self._originals[name] = attn.processor
            attn.set_processor(_CaptureProcessor(name, self))
            hook = self._transformers[name].register_forward_pre_hook(self._grid_hook(name), with_kwargs=True)
            self._hooks.append(hook)
        return self

    def __enter__(self) -> AttentionQKCapture:
        return self.install()

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Put the original processors back and drop the grid hooks."""
        for name, processor in self._originals.items():
            self._attention[name].set_processor(processor)
        self._originals.clear()
        for hook in self._hooks:
            hook.remove()
        self._hooks.clear()

    def compile(self, mode: str) -> None:
        """torch.compile the UNet forward with the early stop inside it: the compiled graph then ends
        at the last captured layer, where a stop raised out of the UNet would break the graph."""
        self._forward = compile_function(self._forward_until_captured, mode)

    def _grid_hook(self, name: str):
        def hook(module, args, kwargs):
            hidden = args[0] if args else kwargs["hidden_states"]
            self._grids[name] = tuple(hidden.shape[-2:])  # (B, C, h, w) before flattening

        return hook

    def _record(self, name: str, query: torch.Tensor, key: torch.Tensor) -> None:
        grid = self._grids.get(name)
        if grid is None or grid[0] * grid[1] != query.shape[2]:
            raise RuntimeError(f"cannot tell the (h, w) grid of {name!r} for {query.shape[2]} tokens")
        self._captured[name] = LayerQK(name=name, q=query, k=key, grid=grid)
        if self.stop_after_capture and len(self._captured) == len(self.layers):
            raise _AllCaptured

    def _forward_until_captured(self, *args, **kwargs):
        """The UNet forward; None when it stopped after the last captured layer."""
        try:
            return self.unet(*args, **kwargs)
        except _AllCaptured:
            return None

    def run(self, *args, **kwargs) -> tuple[object | None, list[LayerQK]]:
        """One UNet forward; returns (UNet output or None when stopped early, q/k per layer in order)."""
        if not self._originals:
            raise RuntimeError("AttentionQKCapture.run before install() or outside its `with` block")
        self._captured.clear()
        self._grids.clear()
        output = self._forward(*args, **kwargs)
        missing = [name for name in self.layers if name not in self._captured]
        if missing:
            raise RuntimeError(f"layers not reached during the forward: {missing}")
        captured = [self._captured[name] for name in self.layers]
        self._captured.clear()
        return output, captured
