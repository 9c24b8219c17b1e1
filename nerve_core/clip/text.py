"""Text embeddings of a vocabulary's queries: one unit vector per synonym.

Prompt ensembling as in CLIP's zero-shot ImageNet recipe, which NACLIP and NERVE use: each query
is written into every template, each prompt embedding is normalised, the mean is normalised
again. Embeddings are cached per vocabulary because a labelling job reuses one vocabulary for
every image, and encoding 80 prompts per synonym costs more than a batch of images on CPU.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from open_clip import OPENAI_IMAGENET_TEMPLATES

from nerve_core.vocab import Vocabulary


def _bare(name: str) -> str:
    return name


TEMPLATE_SETS = {
    "imagenet80": tuple(OPENAI_IMAGENET_TEMPLATES),  # the 80 templates shipped with open_clip
    "none": (_bare,),
}


class TextEmbedder:
    """Callable: vocabulary -> (Q, D) unit-norm query embeddings, in vocabulary query order."""

    def __init__(self, model, tokenizer, templates: str = "imagenet80", batch_size: int = 256):
        if templates not in TEMPLATE_SETS:
            choices = sorted(TEMPLATE_SETS)
            raise ValueError(f"unknown templates {templates!r}; choose from {choices}")
        self.model = model
        self.tokenizer = tokenizer
        self.templates = templates
        self.batch_size = batch_size
        self._cache: dict[tuple, torch.Tensor] = {}

    def __call__(self, vocab) -> torch.Tensor:
        vocab = Vocabulary.coerce(vocab)
        key = (vocab.synonyms, self.templates)
        if key not in self._cache:
            self._cache[key] = self._embed(vocab.queries()[0])
        return self._cache[key]

    @torch.inference_mode()
    def _embed(self, queries: list[str]) -> torch.Tensor:
        templates = TEMPLATE_SETS[self.templates]
        prompts = [template(query) for query in queries for template in templates]
        param = next(self.model.parameters())
        chunks = []
        for start in range(0, len(prompts), self.batch_size):
            tokens = self.tokenizer(prompts[start : start + self.batch_size]).to(param.device)
            chunks.append(F.normalize(self.model.encode_text(tokens).float(), dim=-1))
        per_prompt = torch.cat(chunks).view(len(queries), len(templates), -1)
        return F.normalize(per_prompt.mean(dim=1), dim=-1).to(param.dtype)
