"""The CLIP head's text side and class scores, checked against computations written independently
from the weights: template embeddings, the text cache, query logits, the class softmax over synonyms."""

import numpy as np
import open_clip
import pytest
import torch
import torch.nn.functional as F

from nerve_core.clip.dense_head import class_probs
from nerve_core.clip.text import TextEmbedder
from nerve_core.vocab import Vocabulary
from tests.clip_support import VOCAB, make_head, pixels, tiny_clip


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return tiny_clip(tmp_path_factory)


def test_text_embedding_is_the_normalised_mean_of_normalised_template_embeddings(tiny):
    _, model, tokenizer = tiny
    assert len(open_clip.OPENAI_IMAGENET_TEMPLATES) == 80
    embeddings = TextEmbedder(model, tokenizer, "imagenet80", batch_size=37)(VOCAB)
    assert embeddings.shape == (6, 32)
    with torch.no_grad():
        for index, name in [(2, "wall"), (5, "puppy")]:
            each = [F.normalize(model.encode_text(tokenizer([t(name)]))[0], dim=0)
                    for t in open_clip.OPENAI_IMAGENET_TEMPLATES]
            expected = F.normalize(torch.stack(each).mean(0), dim=0)
            torch.testing.assert_close(embeddings[index], expected, rtol=1e-5, atol=1e-6)


def test_bare_names_without_templates(tiny):
    _, model, tokenizer = tiny
    embeddings = TextEmbedder(model, tokenizer, "none")(VOCAB)
    with torch.no_grad():
        expected = F.normalize(model.encode_text(tokenizer(VOCAB.queries()[0])), dim=-1)
    torch.testing.assert_close(embeddings, expected, rtol=1e-5, atol=1e-6)


def test_text_cache_returns_the_same_tensor_without_re_encoding(tiny, monkeypatch):
    import nerve_core.clip.text as text

    _, model, tokenizer = tiny
    calls = []
    encode = text.encode_text_trimmed

    def counting(model, tokens):
        calls.append(len(tokens))
        return encode(model, tokens)

    monkeypatch.setattr(text, "encode_text_trimmed", counting)
    embedder = TextEmbedder(model, tokenizer, "imagenet80", batch_size=200)
    first = embedder(VOCAB)
    assert calls == [200, 200, 80]  # 6 queries x 80 templates, batched
    assert embedder(Vocabulary.from_lines(["background, sky, wall", "cat", "dog, puppy"])) is first
    assert len(calls) == 3
    embedder(Vocabulary.from_lines(["cat"]))
    assert len(calls) == 4


def test_query_logits_are_scaled_cosines_in_query_order(tiny):
    head = make_head(tiny, logit_scale=40.0)
    x = pixels(2, 56, 40)
    logits = head.query_logits(x, VOCAB)
    features, text = head.patch_features(x), head.text(VOCAB)
    assert logits.shape == (2, 6, 7, 5)
    for q in range(6):
        cos = F.cosine_similarity(features, text[q].view(1, -1, 1, 1), dim=1)
        torch.testing.assert_close(logits[:, q], 40.0 * cos, rtol=1e-5, atol=1e-5)


def reference_class_probs(logits, owner, classes):
    logits = logits.double().numpy()
    out = np.zeros((logits.shape[0], len(classes), *logits.shape[2:]))
    queries = [q for q, k in enumerate(owner) if k in classes]
    for b in range(logits.shape[0]):
        for i in range(logits.shape[2]):
            for j in range(logits.shape[3]):
                z = logits[b, queries, i, j]
                p = np.exp(z - z.max()) / np.exp(z - z.max()).sum()
                for slot, k in enumerate(classes):
                    out[b, slot, i, j] = max(p[n] for n, q in enumerate(queries) if owner[q] == k)
    return torch.from_numpy(out)


@pytest.mark.parametrize("classes", [None, [2, 0], [1], [3, 1, 2]])
def test_class_probs_softmax_over_selected_queries_then_max_over_synonyms(classes):
    owner = [0, 0, 0, 1, 2, 2, 3]
    logits = 5 * torch.randn(2, 7, 3, 4, generator=torch.Generator().manual_seed(0))
    probs = class_probs(logits, owner, classes)
    chosen = list(range(4)) if classes is None else classes
    torch.testing.assert_close(probs.double(), reference_class_probs(logits, owner, chosen),
                               rtol=1e-5, atol=1e-6)


def test_class_probs_rejects_bad_class_lists():
    logits = torch.zeros(1, 3, 2, 2)
    with pytest.raises(ValueError):
        class_probs(logits, [0, 1, 1], [1, 1])
    with pytest.raises(ValueError):
        class_probs(logits, [0, 1, 1], [2])
    with pytest.raises(ValueError):
        class_probs(logits, [0, 1], None)


def test_unknown_head_or_templates_are_refused(tiny):
    with pytest.raises(ValueError, match="head"):
        make_head(tiny, head="segformer")
    with pytest.raises(ValueError, match="templates"):
        make_head(tiny, templates="imagenet7")


def test_trimmed_text_encoding_equals_open_clips_full_context(tiny):
    from nerve_core.clip.text import encode_text_trimmed

    _, model, tokenizer = tiny
    tokens = tokenizer(["a photo of a cat.", "a", "a bad photo of the television monitor in the scene."])
    assert int((tokens != 0).sum(1).max()) < tokens.shape[1]  # there is padding to trim
    with torch.inference_mode():
        torch.testing.assert_close(encode_text_trimmed(model, tokens), model.encode_text(tokens), atol=1e-5, rtol=1e-5)
