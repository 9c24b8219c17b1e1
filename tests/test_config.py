"""Job configs through the CLI: presets, overrides, unknown keys named, fingerprints refused."""
import pytest

from jobs.cli import main as nerve
from jobs.config import load_config
from pipeline.config import LabelJobConfig
from pipeline.job import label_job
from pipeline.output.outputdir import OutputDir
from pipeline.run.driver import job_description
from tests.shards import make_demo_shards


@pytest.mark.parametrize("bad", ["ray.num_actorz=2", "output.colour=red", "dataset.clases=voc"])
def test_unknown_key_is_rejected_with_its_name(bad, tmp_path, capsys):
    code = nerve(["label", f"output.dir={tmp_path}", "input.shards=x.tar", bad])
    assert code == 2
    err = capsys.readouterr().err
    assert bad.split("=")[0] in err and "unknown config key" in err
    assert not (tmp_path / "config.yaml").exists()


def test_wrong_type_is_rejected(tmp_path, capsys):
    assert nerve(["label", f"output.dir={tmp_path}", "ray.num_actors=many"]) == 2
    assert "ray.num_actors" in capsys.readouterr().err


def test_presets_file_and_overrides_layer_in_order(tmp_path):
    config_file = tmp_path / "job.yaml"
    config_file.write_text("dataset: demo\nray:\n  max_retries: 5\n  num_actors: 3\n")
    cfg = load_config(LabelJobConfig, ["engine=nerve", "ray.num_actors=1", "input.shards=[a.tar,b.tar]"], str(config_file))
    assert cfg.dataset.classes == "demo" and cfg.engine.background.rule == "argmax"  # dataset preset
    assert cfg.engine.refine.name == "random_walk" and cfg.engine.refine.steps == 40  # engine preset
    assert (cfg.ray.max_retries, cfg.ray.num_actors) == (5, 1)  # file, then dotlist wins
    assert list(cfg.input.shards) == ["a.tar", "b.tar"]


def test_fingerprint_mismatch_is_refused_unless_overwrite(tmp_path, capsys):
    make_demo_shards(tmp_path / "in", 2, per_shard=2)
    out = tmp_path / "out"
    base = ["dataset=demo", f"input.shards={tmp_path / 'in'}", f"output.dir={out}", "progress=false"]
    first = label_job(load_config(LabelJobConfig, base))
    resolved, _, fingerprint = job_description(first)
    OutputDir(str(out)).prepare(resolved, fingerprint, "resume")
    (out / "shards" / "keep.stats.json").write_text("{}")

    # Throughput knobs do not change the fingerprint; what decides the labels does.
    same = label_job(load_config(LabelJobConfig, base + ["engine.batch_size=3", "engine.compile=default",
                                                        "engine.refine.batching=batch", "ray.num_actors=2"]))
    assert job_description(same)[2]["digest"] == fingerprint["digest"]
    assert nerve(["label", *base, "engine.refine.steps=7"]) == 2
    err = capsys.readouterr().err
    assert "fingerprint" in err and "output.mode=overwrite" in err
    assert (out / "shards" / "keep.stats.json").exists()
    changed = label_job(load_config(LabelJobConfig, base + ["engine.refine.steps=7"]))
    OutputDir(str(out)).prepare(*job_description(changed)[::2], "overwrite")
    assert not (out / "shards" / "keep.stats.json").exists()


def test_cpu_actors_get_the_cores_that_their_ray_reservation_leaves_idle():
    from pipeline.run.actors import cpu_threads, plan_actors

    cfg = label_job(load_config(LabelJobConfig, []))
    cluster = {"CPU": 2.0}
    plan = plan_actors(0, 0.0, "cpu", cluster)
    assert plan.num_cpus <= 1  # the reservation leaves room for Ray's own tasks...
    assert cpu_threads(cfg, plan, cluster) == 2  # ...but torch may use both cores
    assert cpu_threads(label_job(load_config(LabelJobConfig, ["ray.torch_threads=1"])), plan, cluster) == 1
    gpu_plan = plan_actors(0, 0.0, "auto", {"CPU": 16.0, "GPU": 2.0})
    assert cpu_threads(cfg, gpu_plan, {"CPU": 16.0, "GPU": 2.0}) == 0


def test_the_job_reaches_the_actor_typed_and_frozen_and_both_fingerprints_ignore_throughput(tmp_path):
    """One typed, frozen object from the command line to the actor; the engine's own fingerprint
    and the job's agree on what decides the labels (batch size and compile are left out of both)."""
    import dataclasses
    import pickle

    from nerve_core.identity import engine_identity
    from pipeline.job import ActorJob
    from pipeline.run.actors import actor_job

    def described(*overrides):
        job = label_job(load_config(LabelJobConfig, ["dataset=demo", f"output.dir={tmp_path}", *overrides]))
        _, vocab, fingerprint = job_description(job)
        return actor_job(job, vocab, fingerprint, "cpu"), fingerprint

    job, fingerprint = described("engine.batch_size=2")
    assert isinstance(job, ActorJob) and job.engine.device == "cpu" and job.config.engine.batch_size == 2
    with pytest.raises(dataclasses.FrozenInstanceError):
        job.config.engine.refine.alpha = 0.5
    assert pickle.loads(pickle.dumps(job)) == job  # what Ray ships to the actor
    bigger, bigger_fingerprint = described("engine.batch_size=16", "engine.compile=default")
    assert engine_identity(bigger.engine) == engine_identity(job.engine)
    assert bigger_fingerprint["digest"] == fingerprint["digest"]
    assert fingerprint["engine"] == engine_identity(job.config.engine)
