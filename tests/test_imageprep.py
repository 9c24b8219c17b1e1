import io

import numpy as np
from PIL import Image

from nerve_core.imageprep import clip_input_size, to_rgb


def test_modes_become_rgb_with_original_size():
    base = Image.fromarray(np.random.default_rng(0).integers(0, 255, (13, 29, 3), dtype=np.uint8))
    for mode in ["L", "LA", "RGBA", "CMYK", "P", "1", "I", "F"]:
        out = to_rgb(base.convert(mode))
        assert out.mode == "RGB" and out.size == (29, 13), mode
    i16 = Image.fromarray((np.arange(13 * 29).reshape(13, 29) * 100).astype(np.uint16))
    arr = np.asarray(to_rgb(i16))
    assert arr.min() == 0 and arr.max() == 255  # rescaled by its own range, not clipped


def test_exif_rotation_applied():
    img = Image.new("RGB", (40, 10))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees
    buf = io.BytesIO()
    img.save(buf, "JPEG", exif=exif)
    out = to_rgb(Image.open(io.BytesIO(buf.getvalue())))
    assert out.size == (10, 40)


def test_clip_input_size():
    assert clip_input_size((500, 375), 336, "square") == (336, 336)
    assert clip_input_size((500, 375), 336, "short_side") == (448, 336)
