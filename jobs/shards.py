"""`nerve shards voc|coco|ade|cityscapes|coco_stuff|context|folder|demo key=value ...`: make input
shards from a dataset on disk.

    nerve shards voc root=VOCdevkit split=train|train_aug|val output=DIR
    nerve shards coco root=COCO split=train2014|val2014|train2017|val2017 output=DIR
    nerve shards ade root=ADEChallengeData2016 split=training|validation output=DIR
    nerve shards cityscapes root=CITYSCAPES split=train|val|test output=DIR
    nerve shards coco_stuff root=COCO_STUFF_164K split=train2017|val2017 output=DIR
    nerve shards context root=VOCdevkit split=train|val output=DIR
    nerve shards folder images=DIR [masks=DIR] [classes=FILE|NAME] output=DIR
    nerve shards demo output=DIR [num_samples=N seed=S]
All take per_shard=N (default 1000), prefix=NAME, progress=true|false and overwrite=true|false.
Writes DIR/{prefix}-NNNNNN.tar, DIR/manifest.json (COCO: with the category-id mapping) and
DIR/skipped.json (what was left out, and why). A DIR that already holds shards is refused unless
overwrite=true, which first removes the {prefix}-NNNNNN.tar shards written there before.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import NamedTuple

from omegaconf import MISSING

from configs import classes_path
from jobs.config import ConfigError, command, fail, load_object, parse_argv
from nerve_core.vocab import Vocabulary
from pipeline.sources.ade import ade_samples
from pipeline.sources.cityscapes import cityscapes_samples
from pipeline.sources.coco import coco_source
from pipeline.sources.coco_stuff import coco_stuff_samples
from pipeline.sources.context import context_samples
from pipeline.sources.folder import folder_samples
from pipeline.sources.shard_writer import ShardSample, write_shards
from pipeline.sources.skips import SkipLog
from pipeline.sources.voc import voc_samples
from pipeline.storage import atomic_write, filesystem, join


@dataclass
class ShardsJob:
    output: str = MISSING
    per_shard: int = 1000
    prefix: str = "shard"
    progress: bool = True
    overwrite: bool = False  # replace the {prefix}-NNNNNN.tar shards already in output (else refuse)


@dataclass
class VocShards(ShardsJob):
    root: str = MISSING  # VOCdevkit or VOCdevkit/VOC2012
    split: str = "train"  # train | val | train_aug


@dataclass
class CocoShards(ShardsJob):
    root: str = MISSING  # holds {split}/ and annotations/instances_{split}.json
    split: str = "val2017"


@dataclass
class AdeShards(ShardsJob):
    root: str = MISSING  # ADEChallengeData2016: images/{split}/ and annotations/{split}/
    split: str = "validation"  # training | validation


@dataclass
class CityscapesShards(ShardsJob):
    root: str = MISSING  # holds leftImg8bit/{split}/ and gtFine/{split}/
    split: str = "val"  # train | val | test (test GT is all ignore)


@dataclass
class CocoStuffShards(ShardsJob):
    root: str = MISSING  # COCO-Stuff 164k: images/{split}/ and annotations/{split}/ (stuffthingmaps)
    split: str = "val2017"  # train2017 | val2017


@dataclass
class ContextShards(ShardsJob):
    root: str = MISSING  # VOCdevkit or VOCdevkit/VOC2010, in mmsegmentation's PASCAL Context layout
    split: str = "val"  # train | val


@dataclass
class FolderShards(ShardsJob):
    images: str = MISSING
    masks: str = ""  # parallel folder of {stem}.png class-id masks; empty = no GT
    classes: str = ""  # class-name file or configs/classes name; checks mask ids when set
    background_id: int = 0  # left out of image-level labels; -1 = no background class
    require_masks: bool = True  # with masks set: skip images that have none (else keep, no GT)


@dataclass
class DemoShards(ShardsJob):
    num_samples: int = 16
    seed: int = 0


# Each maker returns (samples, extra manifest.json fields).
Made = tuple[Iterator[ShardSample], dict]


def _from_root(samples: Callable) -> Callable:
    """The maker of a source read from (root, split) that adds nothing to the manifest."""
    return lambda cfg, skips: (samples(cfg.root, cfg.split, skips), {})


def _coco(cfg: CocoShards, skips: SkipLog) -> Made:
    return coco_source(cfg.root, cfg.split, skips)


def _folder(cfg: FolderShards, skips: SkipLog) -> Made:
    num_classes = len(Vocabulary.from_file(classes_path(cfg.classes))) if cfg.classes else 0
    return folder_samples(cfg.images, skips, masks=cfg.masks or None, num_classes=num_classes,
                          background_id=cfg.background_id, require_masks=cfg.require_masks), {}


def _demo(cfg: DemoShards, skips: SkipLog) -> Made:
    from pipeline.sources.synthetic import demo_samples

    return demo_samples(cfg.num_samples, seed=cfg.seed), {}


class Maker(NamedTuple):
    schema: type  # its typed keys
    make: Callable  # (cfg, skips) -> Made
    about: str  # one line for `nerve shards --help`


# The one table of shard makers: the command, `--help` and the README's key lists all read it.
MAKERS: dict[str, Maker] = {
    "voc": Maker(VocShards, _from_root(voc_samples),
                 "PASCAL VOC 2012 (train, val, or train_aug with SegmentationClassAug)"),
    "coco": Maker(CocoShards, _coco, "COCO instances as semantic masks in the 81-class coco_object order"),
    "ade": Maker(AdeShards, _from_root(ade_samples),
                 "ADE20K SceneParsing (ADEChallengeData2016), 0 = other and the 150 classes, as stored"),
    "cityscapes": Maker(CityscapesShards, _from_root(cityscapes_samples),
                        "Cityscapes fine GT, label ids converted to the 19 train ids"),
    "coco_stuff": Maker(CocoStuffShards, _from_root(coco_stuff_samples),
                        "COCO-Stuff 164k stuffthingmaps converted to the 171 coco_stuff classes"),
    "context": Maker(ContextShards, _from_root(context_samples),
                     "PASCAL Context (mmsegmentation layout), 0 = background and 59 classes (pc60, pc59)"),
    "folder": Maker(FolderShards, _folder, "a folder of images, with an optional parallel folder of class-id masks"),
    "demo": Maker(DemoShards, _demo, "synthetic images of coloured shapes with ground truth"),
}
USAGE = "usage: nerve shards {" + ",".join(MAKERS) + "} output=DIR [key=value ...]"
SUBCOMMANDS = {name: (maker.schema, maker.about) for name, maker in MAKERS.items()}


@command
def main(argv: list[str]) -> int:
    args = parse_argv(argv)
    if len(args.positionals) != 1 or args.positionals[0] not in MAKERS:
        raise ConfigError(f"nerve shards needs one of {', '.join(MAKERS)}; {USAGE}")
    maker = MAKERS[args.positionals[0]]
    cfg = load_object(maker.schema, args.overrides, args.config_file)
    skips = SkipLog()
    samples, manifest_extra = maker.make(cfg, skips)
    manifest = write_shards(samples, cfg.output, prefix=cfg.prefix, per_shard=cfg.per_shard,
                            progress=cfg.progress, overwrite=cfg.overwrite, manifest_extra=manifest_extra)
    fs, root = filesystem(cfg.output)
    atomic_write(fs, join(root, "skipped.json"), skips.to_json())
    print(f"wrote {manifest['num_samples']} samples in {len(manifest['shards'])} shards to "
          f"{cfg.output} (manifest.json, skipped.json)")
    print(skips.describe())
    for entry in skips.entries[:20]:
        print(f"  - {entry['item']}: {entry['reason']}")
    if manifest["num_samples"] == 0:
        return fail("no samples were written")
    return 0
