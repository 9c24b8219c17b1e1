"""Safety: weights never unpickle code, YAML never builds objects. (Key escapes and the pixel limit
are checked in test_bad_inputs.py, inside a real label run.)"""
import ast
import pickle
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCE_DIRS = ("nerve_core", "pipeline", "jobs", "configs")


class _Payload:
    """Unpickling this creates a file: proof that a loader ran code from a checkpoint."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def _calls(tree):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and isinstance(node.func.value, ast.Name):
            yield node, f"{node.func.value.id}.{node.func.attr}"


def test_source_loads_no_pickles_and_no_unsafe_yaml():
    problems = []
    for path in (p for d in SOURCE_DIRS for p in (ROOT / d).rglob("*.py")):
        for node, name in _calls(ast.parse(path.read_text(encoding="utf-8"))):
            where = f"{path.relative_to(ROOT)}:{node.lineno} {name}"
            if name == "torch.load":
                safe = any(k.arg == "weights_only" and isinstance(k.value, ast.Constant) and k.value.value is True
                           for k in node.keywords)
                problems += [] if safe else [where]
            elif name in ("yaml.load", "yaml.unsafe_load", "yaml.full_load", "pickle.load", "pickle.loads"):
                problems.append(where)
    assert not problems


def test_stable_diffusion_pickle_weights_cannot_run_code(tiny_models, tmp_path):
    from nerve_core.config import SDConfig
    from nerve_core.models.errors import ModelNotFoundError
    from nerve_core.models.sd_loader import load_stable_diffusion

    sd_dir = tmp_path / "sd"
    shutil.copytree(tiny_models["sd"]["model"], sd_dir)
    unet = sd_dir / "unet"
    (unet / "diffusion_pytorch_model.safetensors").unlink()
    marker = tmp_path / "code-ran"
    with open(unet / "diffusion_pytorch_model.bin", "wb") as f:
        pickle.dump({"weight": _Payload(marker)}, f)
    with pytest.raises(ModelNotFoundError, match="unet"):
        load_stable_diffusion(SDConfig(model=str(sd_dir), image_size=tiny_models["sd"]["image_size"]), "cpu", None)
    assert not marker.exists()


def test_yaml_configs_cannot_build_python_objects(tmp_path):
    from jobs.config import ConfigError, load_config
    from pipeline.config import LabelJobConfig
    from pipeline.output.outputdir import OutputDir

    marker = tmp_path / "code-ran"
    payload = f"progress: !!python/object/apply:os.system ['touch {marker}']\n"
    config = tmp_path / "job.yaml"
    config.write_text(payload)
    with pytest.raises(ConfigError):
        load_config(LabelJobConfig, [], str(config))
    (tmp_path / "config.yaml").write_text(payload)  # an output directory's record, tampered with
    import yaml

    with pytest.raises(yaml.YAMLError):
        OutputDir(str(tmp_path)).record()
    assert not marker.exists()
