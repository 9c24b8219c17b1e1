"""NERVE engine: dense CLIP head, Stable Diffusion attention capture and refiners. Pure torch."""
