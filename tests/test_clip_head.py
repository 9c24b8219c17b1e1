"""Dense CLIP head, checked against computations written independently from the weights."""
from __future__ import annotations

import math

import numpy as np
import open_clip
import pytest
import torch
import torch.nn.functional as F

from nerve_core.clip.naclip import gaussian_window, neighbourhood_block
from tests.clip_support import make_head, pixels, tiny_clip


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return tiny_clip(tmp_path_factory)


# ----- independent reference computations -----
def reference_omega(h, w, sigma):
    omega = np.zeros((h * w + 1, h * w + 1))
    for p in range(h * w):
        for q in range(h * w):
            dy, dx = p // w - q // w, p % w - q % w
            omega[p + 1, q + 1] = math.exp(-(dy * dy + dx * dx) / (2 * sigma * sigma))
    return torch.from_numpy(omega)


def split_qkv(block):
    w, b = block.attn.in_proj_weight, block.attn.in_proj_bias
    d = w.shape[1]
    return (w[:d], b[:d]), (w[d : 2 * d], b[d : 2 * d]), (w[2 * d :], b[2 * d :])


def reference_naclip_block(block, x, omega):
    heads = block.attn.num_heads
    _, (wk, bk), (wv, bv) = split_qkv(block)
    y = block.ln_1(x)
    k, v = y @ wk.T + bk, y @ wv.T + bv
    d = k.shape[-1] // heads
    outs = []
    for h in range(heads):
        kh, vh = k[..., h * d : (h + 1) * d], v[..., h * d : (h + 1) * d]
        weights = torch.softmax(kh @ kh.transpose(-1, -2) / math.sqrt(d) + omega, dim=-1)
        outs.append(weights @ vh)
    return torch.cat(outs, dim=-1) @ block.attn.out_proj.weight.T + block.attn.out_proj.bias


def reference_maskclip_block(block, x):
    _, _, (wv, bv) = split_qkv(block)
    v = block.ln_1(x) @ wv.T + bv
    x = x + v @ block.attn.out_proj.weight.T + block.attn.out_proj.bias
    return x + block.mlp(block.ln_2(x))


def input_of_last_block(visual, normalised):
    """Tokens entering the last block, from open_clip's own forward (native size only)."""
    out = visual.forward_intermediates(
        normalised, indices=[len(visual.transformer.resblocks) - 2], intermediates_only=True,
        output_fmt="NLC", output_extra_tokens=True,
    )
    return torch.cat([out["image_intermediates_prefix"][0], out["image_intermediates"][0]], dim=1)


def to_dense(visual, tokens, grid):
    feats = F.normalize(visual.ln_post(tokens)[:, 1:] @ visual.proj, dim=-1)
    return feats.transpose(1, 2).reshape(tokens.shape[0], -1, *grid)


def normalise(model, x):
    mean = torch.tensor(open_clip.OPENAI_DATASET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(open_clip.OPENAI_DATASET_STD).view(1, 3, 1, 1)
    return (x - mean) / std


def keys_cubic_resize(table, out_size):
    """Separable cubic convolution (Keys, a = -0.75), half-pixel centres, edge clamp."""
    def weights(n_in, n_out):
        a, m = -0.75, np.zeros((n_out, n_in))
        for o in range(n_out):
            src = (o + 0.5) * n_in / n_out - 0.5
            base = math.floor(src)
            for tap in range(-1, 3):
                t = abs(src - (base + tap))
                if t <= 1:
                    c = ((a + 2) * t - (a + 3)) * t * t + 1
                else:
                    c = ((a * t - 5 * a) * t + 8 * a) * t - 4 * a
                m[o, min(max(base + tap, 0), n_in - 1)] += c
        return m
    rows, cols = weights(table.shape[0], out_size[0]), weights(table.shape[1], out_size[1])
    return np.einsum("ai,bj,ijc->abc", rows, cols, table)


# ----- NACLIP's Gaussian window -----

def test_omega_is_the_gaussian_on_a_non_square_grid_with_zero_cls_row_and_column():
    omega = gaussian_window((3, 5), sigma=5.0, dtype=torch.float64)
    assert omega.shape == (16, 16)
    torch.testing.assert_close(omega, reference_omega(3, 5, 5.0), rtol=1e-14, atol=0)
    assert torch.all(omega[0] == 0) and torch.all(omega[:, 0] == 0)
    tall = gaussian_window((4, 2), 1.5, dtype=torch.float64)
    torch.testing.assert_close(tall, reference_omega(4, 2, 1.5), rtol=1e-14, atol=0)


def test_omega_and_positions_are_built_once_per_grid(tiny):
    head = make_head(tiny)
    assert head.omega((3, 5)) is head.omega((3, 5))
    assert head.omega((5, 3)).shape == (16, 16) and head.omega((5, 3)) is not head.omega((3, 5))
    assert head.positional_embedding((3, 5)) is head.positional_embedding((3, 5))


# ----- last blocks against hand computations -----

def test_naclip_block_equals_hand_computed_neighbourhood_attention(tiny):
    _, model, _ = tiny
    block = model.visual.transformer.resblocks[-1]
    x = torch.randn(2, 1 + 15, block.attn.embed_dim, generator=torch.Generator().manual_seed(0))
    omega = gaussian_window((3, 5), 5.0)
    with torch.no_grad():
        torch.testing.assert_close(neighbourhood_block(block, x, omega),
                                   reference_naclip_block(block, x, omega.double().float()),
                                   rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("head_name", ["naclip", "maskclip", "vanilla"])
def test_heads_equal_a_forward_built_from_open_clips_own_blocks(tiny, head_name):
    _, model, _ = tiny
    visual = model.visual
    x = pixels(2, 64, 64)
    with torch.no_grad():
        entering = input_of_last_block(visual, normalise(model, x))
        last = visual.transformer.resblocks[-1]
        if head_name == "naclip":
            tokens = reference_naclip_block(last, entering, reference_omega(8, 8, 5.0).float())
        elif head_name == "maskclip":
            tokens = reference_maskclip_block(last, entering)
        else:
            tokens = last(entering)
        expected = to_dense(visual, tokens, (8, 8))
    torch.testing.assert_close(make_head(tiny, head=head_name).patch_features(x), expected,
                               rtol=1e-5, atol=1e-5)


def test_vanilla_head_equals_open_clips_forward_on_patch_tokens(tiny):
    _, model, _ = tiny
    visual, x = model.visual, pixels(3, 64, 64, seed=2)
    visual.output_tokens = True
    try:
        with torch.no_grad():
            _, tokens = visual(normalise(model, x))  # ln_post applied by open_clip
    finally:
        visual.output_tokens = False
    expected = F.normalize(tokens @ visual.proj, dim=-1).transpose(1, 2).reshape(3, -1, 8, 8)
    torch.testing.assert_close(make_head(tiny, head="vanilla").patch_features(x), expected,
                               rtol=1e-5, atol=1e-5)


# ----- positions, sizes, batching -----

def test_positional_interpolation_is_the_identity_at_the_native_grid(tiny):
    head = make_head(tiny)
    assert torch.equal(head.positional_embedding((8, 8)), head.visual.positional_embedding)


def test_positional_interpolation_is_bicubic_for_non_square_grids(tiny):
    head = make_head(tiny)
    table = head.visual.positional_embedding.detach()
    resized = head.positional_embedding((5, 11))
    assert torch.equal(resized[0], table[0])
    expected = keys_cubic_resize(table[1:].reshape(8, 8, -1).double().numpy(), (5, 11))
    got = resized[1:].reshape(5, 11, -1).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("head_name", ["naclip", "maskclip", "vanilla"])
@pytest.mark.parametrize(
    "size, grid", [((40, 72), (5, 9)), ((70, 45), (8, 5)), ((96, 24), (12, 3))]
)
def test_non_square_images_give_unit_features_on_their_grid(tiny, head_name, size, grid):
    features = make_head(tiny, head=head_name).patch_features(pixels(2, *size))
    assert features.shape == (2, 32, *grid)
    torch.testing.assert_close(features.norm(dim=1), torch.ones(2, *grid))


def test_one_vision_forward_per_batch_and_images_do_not_interact(tiny):
    head = make_head(tiny)
    calls = []
    hook = head.visual.conv1.register_forward_hook(lambda *_: calls.append(1))
    try:
        batch = pixels(3, 48, 80)
        together = head.patch_features(batch)
    finally:
        hook.remove()
    assert len(calls) == 1
    torch.testing.assert_close(together[1:2], head.patch_features(batch[1:2]), rtol=1e-5, atol=1e-6)


# ----- text embeddings -----


# ----- logits and class probabilities -----


