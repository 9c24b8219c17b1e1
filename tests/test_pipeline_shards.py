"""Shard writing and the synthetic demo set: the inputs every other pipeline test is built on."""
import io
import json
import tarfile

import numpy as np
import pytest
from PIL import Image

from configs import classes_path
from nerve_core.vocab import Vocabulary
from pipeline.sources.shard_writer import ShardSample, write_shards
from pipeline.sources.synthetic import SHAPES, demo_samples


def _members(path):
    with tarfile.open(path) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers()}


def test_write_shards_splits_and_lists_samples(tmp_path):
    manifest = write_shards(demo_samples(7), tmp_path, prefix="part", per_shard=3, progress=False)
    assert [s["name"] for s in manifest["shards"]] == ["part-000000", "part-000001", "part-000002"]
    assert [s["samples"] for s in manifest["shards"]] == [3, 3, 1]
    assert json.loads((tmp_path / "manifest.json").read_text()) == manifest
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "manifest.json", "part-000000.tar", "part-000001.tar", "part-000002.tar"]
    members = _members(tmp_path / "part-000000.tar")
    assert sorted(members) == sorted(
        f"demo{i:06d}.{ext}" for i, e in enumerate(["jpg", "png", "jpg"]) for ext in (e, "seg.png", "json"))


def test_demo_samples_are_deterministic_with_consistent_ground_truth():
    first, again = list(demo_samples(4, seed=3)), list(demo_samples(6, seed=3))[:4]
    assert [s.image for s in first] == [s.image for s in again]
    assert list(demo_samples(1, seed=4))[0].image != first[0].image
    num_classes = len(Vocabulary.from_file(classes_path("demo")))
    assert num_classes == 1 + len(SHAPES)
    sizes = set()
    for s in first:
        seg_img = Image.open(io.BytesIO(s.seg_png))
        image = Image.open(io.BytesIO(s.image))
        assert seg_img.mode == "L" and seg_img.size == image.size
        sizes.add(image.size)
        seg = np.asarray(seg_img)
        present = sorted(int(c) for c in np.unique(seg) if c != 255)
        assert s.meta["labels"] == present and max(present) < num_classes
        assert (seg == 255).any() and len(present) >= 2
    assert len(sizes) == 4


def test_bad_keys_and_duplicates_are_refused(tmp_path):
    good = next(demo_samples(1))
    for key in ("a.b", "a/b", ""):
        with pytest.raises(ValueError, match="invalid sample key"):
            write_shards([ShardSample(key, good.image, "jpg")], tmp_path / "bad", progress=False)
    with pytest.raises(ValueError, match="duplicate"):
        write_shards([good, good], tmp_path / "dup", progress=False)
    assert not any(p.name.startswith("shard-") for p in (tmp_path / "dup").iterdir())


def test_a_directory_holding_shards_is_refused_unless_overwrite(tmp_path, capsys):
    from jobs import shards
    from pipeline.read.shardlist import expand_shards

    out = tmp_path / "set"
    assert shards.main(["demo", f"output={out}", "num_samples=5", "per_shard=2", "progress=false"]) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    # A second, smaller set into the same directory would leave shard-000002.tar behind: refused.
    assert shards.main(["demo", f"output={out}", "num_samples=3", "per_shard=2", "progress=false"]) == 2
    err = capsys.readouterr().err
    assert str(out) in err and "overwrite=true" in err and err.count("\n") == 1
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # nothing touched
    assert shards.main(["demo", f"output={out}", "num_samples=3", "per_shard=2", "progress=false",
                        "overwrite=true"]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    present = sorted(p.name for p in out.glob("*.tar"))
    assert present == sorted(s["file"] for s in manifest["shards"]) == ["shard-000000.tar", "shard-000001.tar"]
    assert manifest["num_samples"] == 3 and len(expand_shards(str(out))) == 2


def test_overwrite_never_removes_shards_of_another_prefix(tmp_path):
    from pipeline.sources.shard_writer import ShardsExist

    write_shards(demo_samples(2), tmp_path, prefix="other", per_shard=1, progress=False)
    with pytest.raises(ShardsExist, match="other-000000.tar"):
        write_shards(demo_samples(2), tmp_path, per_shard=1, progress=False, overwrite=True)
    assert sorted(p.name for p in tmp_path.glob("*.tar")) == ["other-000000.tar", "other-000001.tar"]
    # Files that are not shards never count as shards, and overwrite leaves them alone.
    write_shards(demo_samples(1), tmp_path / "fresh", progress=False)
    (tmp_path / "fresh" / "notes.txt").write_text("x")
    write_shards(demo_samples(1), tmp_path / "fresh", progress=False, overwrite=True)
    assert sorted(p.name for p in (tmp_path / "fresh").iterdir()) == ["manifest.json", "notes.txt", "shard-000000.tar"]
