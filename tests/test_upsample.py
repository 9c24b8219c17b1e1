import torch
import torch.nn.functional as F

from nerve_core.upsample import bilinear_chunks, interpolation_matrix


def test_interpolation_matrix_rows_are_convex():
    m = interpolation_matrix(37, 8)
    assert torch.allclose(m.sum(1), torch.ones(37))
    assert (m >= 0).all()


def test_chunked_bilinear_equals_torch_interpolate():
    torch.manual_seed(0)
    scores = torch.rand(5, 7, 9)
    for size in [(23, 41), (7, 9), (3, 4), (100, 13)]:
        expected = F.interpolate(scores[None], size=size, mode="bilinear", align_corners=False)[0]
        # a tiny element budget forces many chunks
        chunks = list(bilinear_chunks(scores, size, max_elements=5 * size[1] * 2))
        assert len(chunks) == -(-size[0] // 2)
        got = torch.cat([c for _, c in chunks], dim=1)
        assert [r.start for r, _ in chunks] == list(range(0, size[0], 2))
        torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
