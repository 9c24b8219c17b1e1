"""Plain JPEGs decoded by libjpeg-turbo straight into arrays: PIL's pixels exactly, and PIL wherever
that cannot be promised (CMYK, EXIF rotation, damaged files)."""
import io

import numpy as np
import pytest
from PIL import Image

from nerve_core.imageprep import prepare_image, rgb_array, to_rgb
from pipeline.bench.photos import bench_photo, jpeg
from pipeline.output.pngcodec import encode_index_png
from pipeline.read.reader import decode_image, decode_sample


def _jpeg(image: Image.Image, **options) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="JPEG", **options)
    return buf.getvalue()


def _pil_rgb(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as img:
        img.load()
        return np.asarray(to_rgb(img))


PHOTO = bench_photo(0, 0, 5)[0]
PLAIN = {
    "4:4:4": _jpeg(PHOTO, subsampling=0, quality=95),
    "4:2:2": _jpeg(PHOTO, subsampling=1),
    "4:2:0": _jpeg(PHOTO, subsampling=2),
    "progressive": _jpeg(PHOTO, progressive=True),
    "optimized q50": _jpeg(PHOTO, optimize=True, quality=50),
    "odd size": _jpeg(PHOTO.crop((3, 5, 260, 198))),
    "greyscale": _jpeg(PHOTO.convert("L")),
    "bench photo": jpeg(PHOTO),
}


@pytest.mark.parametrize("kind", list(PLAIN))
def test_plain_jpegs_become_arrays_with_pils_pixels(kind):
    data = PLAIN[kind]
    pixels = decode_image(data)
    assert isinstance(pixels, np.ndarray) and pixels.dtype == np.uint8 and pixels.shape[2] == 3
    np.testing.assert_array_equal(pixels, _pil_rgb(data))


def test_what_only_pil_decodes_right_goes_through_pil():
    cmyk = _jpeg(PHOTO.convert("CMYK"))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated 90° clockwise for display
    rotated = _jpeg(PHOTO, exif=exif.tobytes())
    for data in cmyk, rotated:
        image = decode_image(data)
        assert isinstance(image, Image.Image) and image.mode == "RGB"
        np.testing.assert_array_equal(np.asarray(image), _pil_rgb(data))
    assert decode_image(rotated).size == (PHOTO.height, PHOTO.width)
    whole = PLAIN["4:2:0"]
    cut = decode_sample({"__key__": "cut", "jpg": whole[: len(whole) // 2]})
    assert cut.error == "decode_image: OSError: " + _pil_error(whole[: len(whole) // 2])  # PIL's own words


def _pil_error(data: bytes) -> str:
    with pytest.raises(OSError) as raised:
        _pil_rgb(data)
    return str(raised.value)


def test_a_decoded_array_is_checked_and_prepared_as_pil_would_be():
    data = PLAIN["4:2:0"]
    pixels, image = decode_image(data), Image.open(io.BytesIO(data)).convert("RGB")
    for on_device in True, False:
        for guided in True, False:
            ours = prepare_image(pixels, 336, "square", 512, guided, on_device)
            theirs = prepare_image(image, 336, "square", 512, guided, on_device)
            assert ours.size == theirs.size == pixels.shape[:2] and ours.clip_size == theirs.clip_size
            for name in "clip", "sd", "guide":
                np.testing.assert_array_equal(getattr(ours, name), getattr(theirs, name))
            if on_device:
                np.testing.assert_array_equal(ours.pixels, theirs.pixels[..., :3])
    sample = decode_sample({"__key__": "k", "jpg": data, "seg.png": encode_index_png(np.zeros((3, 3), np.uint8))})
    assert sample.error == f"seg_size: seg.png is 3x3, image {PHOTO.width}x{PHOTO.height}"
    for bad in np.zeros((4, 4, 4), np.uint8), np.zeros((4, 4, 3), np.float32), np.zeros((0, 4, 3), np.uint8):
        with pytest.raises(ValueError, match="expected an \\(H, W, 3\\) uint8 RGB array"):
            rgb_array(bad)
