"""``vt cogvideo train-lora`` on the tiny CogVideoX I2V pipeline and three real clips: the
loss falls, adapters load through diffusers and the generation code and change its output,
the latent cache is reused, and a run killed with SIGKILL resumes from its last checkpoint."""

from __future__ import annotations

import json
import math
import signal
import statistics
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from cogvideo_helpers import read_frames
from cogvideo_train_helpers import (
    cli_host,
    invoke,
    make_metadata,
    subprocess_env,
    vt_program,
    write_config,
)


@pytest.fixture(scope="session")
def train_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_metadata(tmp_path_factory.mktemp("train-data"))


@pytest.fixture(scope="session")
def latent_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One latent cache for the tests that do not test the cache itself."""
    return tmp_path_factory.mktemp("latent-cache")


@pytest.fixture
def host(monkeypatch: pytest.MonkeyPatch) -> Any:
    from vt.plugins import get_host, set_host

    previous = get_host()
    yield cli_host(monkeypatch)
    set_host(previous)


def _train(
    host: Any, metadata: Path, out: Path, config: Path, cache: Path, *args: Any
) -> tuple[Any, dict[str, Any]]:
    result = invoke(
        host,
        "train-lora",
        "--metadata",
        metadata,
        "-o",
        out,
        "--config",
        config,
        "--cache-dir",
        cache,
        "--json",
        *args,
    )
    assert result.exit_code == 0, result.output
    return result, json.loads(result.stdout)


def _losses(out: Path) -> list[tuple[int, float]]:
    from vt_cogvideo.training.trainer import read_metrics

    return [(int(r["step"]), r["loss"]) for r in read_metrics(out / "outputs" / "metrics.csv")]


# -- the model can fit: gradients reach the LoRA weights -------------------------------------
def test_loss_on_one_fixed_batch_falls(tiny_cogvideo: Path) -> None:
    """Fixed latents, noise and timesteps: 30 AdamW steps on the LoRA weights alone (with
    gradient checkpointing) more than halve the loss; the base weights do not move."""
    import torch
    from diffusers import CogVideoXDPMScheduler

    from vt.models import load_model
    from vt_cogvideo.loading import read_model_spec
    from vt_cogvideo.training import lora
    from vt_cogvideo.training.config import LoraSettings

    spec = read_model_spec(tiny_cogvideo)
    transformer = load_model(
        tiny_cogvideo, adapter="diffusers", subfolder="transformer", device="cpu", cache=False
    ).model
    transformer.enable_gradient_checkpointing()
    counts = lora.add_lora(transformer, LoraSettings(rank=4, alpha=4))
    assert 0 < counts.share < 0.10
    base = {n: p.detach().clone() for n, p in transformer.named_parameters() if not p.requires_grad}
    scheduler = CogVideoXDPMScheduler.from_pretrained(str(tiny_cogvideo), subfolder="scheduler")
    g = torch.Generator().manual_seed(0)
    batch = {
        "video_latent_dist": torch.randn(1, 8, 3, 2, 2, generator=g),
        "image_latent_dist": torch.randn(1, 8, 1, 2, 2, generator=g),
        "prompt_embeds": torch.randn(1, 16, 32, generator=g),
    }
    inputs = lora.sample_inputs(
        batch,
        scaling=lora.LatentScaling.from_config(spec.config["vae"]),
        num_train_timesteps=1000,
        image_dropout=0.0,
        device="cpu",
        dtype=torch.float32,
        generator=torch.Generator().manual_seed(1),
    )
    rotary = lora.rotary_embeddings(
        spec.config["transformer"],
        height=16,
        width=16,
        latent_frames=3,
        spatial_compression=8,
        device="cpu",
    )
    optimizer = torch.optim.AdamW([p for p in transformer.parameters() if p.requires_grad], lr=1e-2)
    transformer.train()
    losses = []
    for _ in range(30):
        loss = lora.training_loss(transformer, scheduler, inputs, rotary)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    assert all(math.isfinite(v) for v in losses)
    assert losses[-1] < 0.5 * losses[0], losses
    lora_b = [p for n, p in transformer.named_parameters() if "lora_B" in n]
    assert lora_b and all(float(p.detach().abs().sum()) > 0 for p in lora_b)  # B starts at zero
    for name, param in transformer.named_parameters():
        if name in base:
            assert torch.equal(param, base[name]), name


# -- a run through the command line ----------------------------------------------------------
@pytest.fixture(scope="module")
def trained(
    tiny_cogvideo: Path,
    train_data: Path,
    latent_cache: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, Any]:
    """Two epochs over the three clips (6 steps, checkpoints every 2 steps), with samples;
    alpha 8 != rank 4, so the adapter's scale must travel in the file."""
    mp = pytest.MonkeyPatch()
    try:
        from vt.plugins import get_host, set_host

        previous = get_host()
        host = cli_host(mp)
        root = tmp_path_factory.mktemp("trained")
        config = write_config(root / "lora.yaml", tiny_cogvideo, lora={"rank": 4, "alpha": 8})
        result, report = _train(host, train_data, root / "run", config, latent_cache)
        set_host(previous)
    finally:
        mp.undo()
    return {"out": root / "run", "report": report, "stderr": result.stderr, "config": config}


def test_run_writes_adapters_samples_checkpoints_and_metrics(trained: dict[str, Any]) -> None:
    out, report = trained["out"], trained["report"]
    assert report["global_step"] == report["total_steps"] == 6
    assert 0 < report["trainable_share"] < 0.10
    assert "trainable parameters: 1,024 of" in trained["stderr"]
    assert [Path(p).name for p in report["adapters"]] == ["epoch-0001", "epoch-0002"]
    for folder in [*report["adapters"], report["final_adapter"]]:
        assert (Path(folder) / "pytorch_lora_weights.safetensors").is_file()
    assert [step for step, _ in _losses(out)] == [1, 2, 3, 4, 5, 6]
    assert all(math.isfinite(loss) for _, loss in _losses(out))
    # one sample clip per epoch, through the generation code (its sidecar names the LoRA)
    samples = sorted((out / "outputs" / "examples").glob("*.mp4"))
    assert [p.name for p in samples] == ["epoch-0001-1.mp4", "epoch-0002-1.mp4"]
    for sample in samples:
        assert read_frames(sample).shape == (9, 16, 16, 3)
        side = json.loads(sample.with_suffix(".json").read_text())
        assert "epoch-000" in json.dumps(side["metadata"].get("lora"))
    # training state: every 2 steps and at each epoch's end, the newest 3 kept
    checkpoints = sorted(int(p.name.split("-")[1]) for p in (out / "checkpoints").iterdir())
    assert checkpoints == [3, 4, 6]
    for step in checkpoints:
        folder = out / "checkpoints" / f"checkpoint-{step}"
        state = json.loads((folder / "training_state.json").read_text())
        assert state["global_step"] == step
        assert {
            "optimizer.bin",
            "scheduler.bin",
            "random_states_0.pkl",
            "pytorch_lora_weights.safetensors",
        } <= {p.name for p in folder.iterdir()}
    assert json.loads((out / "run.json").read_text())["config"]["lora"]["alpha"] == 8


def test_loss_falls_over_a_few_dozen_steps(
    host: Any, tiny_cogvideo: Path, train_data: Path, latent_cache: Path, tmp_path: Path
) -> None:
    config = write_config(tmp_path / "lora.yaml", tiny_cogvideo)
    _train(
        host,
        train_data,
        tmp_path / "run",
        config,
        latent_cache,
        "--max-steps",
        "30",
        "--no-samples",
    )
    losses = [loss for _, loss in _losses(tmp_path / "run")]
    assert len(losses) == 30 and all(math.isfinite(v) for v in losses)
    assert statistics.mean(losses[-10:]) < 0.85 * statistics.mean(losses[:10]), losses


def test_adapter_loads_in_diffusers_and_changes_generated_frames(
    trained: dict[str, Any], tiny_cogvideo: Path, train_data: Path, tmp_path: Path
) -> None:
    import torch
    from diffusers import CogVideoXImageToVideoPipeline
    from safetensors.torch import load_file

    from vt_cogvideo.generation import GenerationRequest, Generator

    adapter = Path(trained["report"]["final_adapter"])
    # diffusers' own loader takes it, with the trained weights and alpha 8
    pipe = CogVideoXImageToVideoPipeline.from_pretrained(str(tiny_cogvideo))
    pipe.load_lora_weights(str(adapter), adapter_name="trained")
    assert pipe.get_list_adapters() == {"transformer": ["trained"]}
    assert pipe.transformer.peft_config["trained"].lora_alpha == 8
    saved = load_file(str(adapter / "pytorch_lora_weights.safetensors"))
    key = next(k for k in saved if k.endswith("to_q.lora_B.weight"))
    module = key[len("transformer.") : -len(".lora_B.weight")]
    loaded = pipe.transformer.get_submodule(module).lora_B["trained"].weight
    assert torch.allclose(loaded.float(), saved[key].float())
    assert float(saved[key].abs().sum()) > 0

    # the generation path: same seed, with and without the adapter
    first_frame = json.loads(train_data.read_text())[0]["image_path"]
    image = train_data.parent / first_frame
    gen = Generator(tiny_cogvideo, device="cpu")
    base = {"image": image, "prompt": "a cyclist rides past", "num_inference_steps": 2, "seed": 3}
    plain = gen.generate(GenerationRequest(**base), tmp_path / "plain.mp4")
    tuned = gen.generate(GenerationRequest(**base, lora=adapter), tmp_path / "lora.mp4")
    off = gen.generate(
        GenerationRequest(**base, lora=adapter, lora_scale=0.0), tmp_path / "off.mp4"
    )
    a, b, c = (read_frames(r.output).astype(np.float64) for r in (plain, tuned, off))
    assert np.abs(a - b).mean() > 1.0  # grey levels: the adapter changes the clip
    assert np.abs(a - c).mean() < 0.5 * np.abs(a - b).mean()  # and only the adapter does


def test_validate_command_accepts_the_trained_adapter(
    host: Any, trained: dict[str, Any], tiny_cogvideo: Path, train_data: Path, tmp_path: Path
) -> None:
    image = train_data.parent / json.loads(train_data.read_text())[1]["image_path"]
    scenarios = tmp_path / "scenarios.yaml"
    scenarios.write_text(
        f"scenarios:\n  - {{name: bikes, image: '{image}', prompt: 'cyclists',"
        " seed: 1, num_inference_steps: 2}\n"
    )
    adapter = Path(trained["report"]["adapters"][-1])
    result = invoke(
        host,
        "validate",
        "--scenarios",
        scenarios,
        "--lora",
        adapter,
        "--model",
        tiny_cogvideo,
        "--device",
        "cpu",
        "-o",
        tmp_path / "report",
        "--threshold",
        "0",
        "--json",
    )
    assert result.exit_code == 0, result.output
    (scenario,) = json.loads(result.stdout)["scenarios"]
    assert scenario["status"] == "pass"
    assert scenario["lora"] == str((adapter / "pytorch_lora_weights.safetensors").resolve())


def test_validation_prompts_file_errors(tiny_cogvideo: Path, tmp_path: Path) -> None:
    from vt_cogvideo.training.config import load_config
    from vt_cogvideo.training.metadata import TrainingClip
    from vt_cogvideo.training.trainer import read_validation_prompts

    first = TrainingClip("c", tmp_path / "c.mp4", tmp_path / "c.png", "first prompt", 9, 8.0)
    prompts = tmp_path / "prompts.yaml"
    config = write_config(
        tmp_path / "lora.yaml", tiny_cogvideo, validation={"prompts": "prompts.yaml"}
    )
    for text, message in [
        ("[]", "non-empty list"),
        ("- {image: a.png}", "needs a prompt"),
        ("- {prompt: p, seed: 3}", "unknown key seed"),
        ("- {prompt: p, image: gone.png}", "gone.png not found"),
    ]:
        prompts.write_text(text)
        with pytest.raises(Exception, match=message):
            read_validation_prompts(load_config(config), first)
    prompts.write_text("- a plain prompt\n")
    (only,) = read_validation_prompts(load_config(config), first)
    assert (only.prompt, only.image) == ("a plain prompt", first.image)
    (default,) = read_validation_prompts(
        load_config(write_config(tmp_path / "none.yaml", tiny_cogvideo)), first
    )
    assert (default.prompt, default.image) == ("first prompt", first.image)


def test_losses_go_to_accelerate_trackers(
    host: Any,
    tiny_cogvideo: Path,
    train_data: Path,
    latent_cache: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Whatever tracker accelerate is given gets the run's config and every step's loss (a
    recording tracker stands in for TensorBoard/W&B, which are not installed here)."""
    from accelerate.tracking import GeneralTracker

    from vt_cogvideo.training import trainer

    logged: list[tuple[int, dict[str, float]]] = []
    configs: list[dict[str, Any]] = []

    class Recorder(GeneralTracker):
        name = "recorder"
        requires_logging_directory = False

        def __init__(self) -> None:
            super().__init__()

        @property
        def tracker(self) -> Any:
            return self

        def store_init_configuration(self, values: dict[str, Any]) -> None:
            configs.append(values)

        def log(self, values: dict[str, Any], step: int | None = None, **_: Any) -> None:
            logged.append((int(step or 0), dict(values)))

    monkeypatch.setattr(trainer, "_trackers", lambda setting: [Recorder()])
    config = write_config(tmp_path / "lora.yaml", tiny_cogvideo)
    _train(
        host, train_data, tmp_path / "run", config, latent_cache, "--max-steps", "4", "--no-samples"
    )
    assert [step for step, _ in logged] == [1, 2, 3, 4]
    assert [values["loss"] for _, values in logged] == pytest.approx(
        [loss for _, loss in _losses(tmp_path / "run")], rel=1e-5
    )
    assert configs and configs[0]["lora.rank"] == 4


def test_a_tracker_that_is_not_installed_is_a_usage_error(
    host: Any, tiny_cogvideo: Path, train_data: Path, latent_cache: Path, tmp_path: Path
) -> None:
    config = write_config(
        tmp_path / "lora.yaml", tiny_cogvideo, training={"report_to": ["no-such-tracker"]}
    )
    result = invoke(
        host,
        "train-lora",
        "--metadata",
        train_data,
        "-o",
        tmp_path / "out",
        "--config",
        config,
        "--cache-dir",
        latent_cache,
    )
    assert result.exit_code == 2
    assert "training.report_to: no-such-tracker is not installed" in result.stderr


def test_latent_cache_is_reused_and_a_damaged_entry_recomputed(
    host: Any, tiny_cogvideo: Path, train_data: Path, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    config = write_config(tmp_path / "lora.yaml", tiny_cogvideo)
    _, first = _train(
        host, train_data, tmp_path / "a", config, cache, "--max-steps", "1", "--no-samples"
    )
    assert first["precompute"]["video_encoded"] == 3 and first["precompute"]["prompt_encoded"] == 3
    entries = sorted((cache / "video").rglob("*.safetensors"))
    assert len(entries) == 3 and not list(cache.rglob("*vt-tmp*"))
    entries[0].write_bytes(entries[0].read_bytes()[:100])  # a torn write / bad disk
    _, second = _train(
        host, train_data, tmp_path / "b", config, cache, "--max-steps", "1", "--no-samples"
    )
    pre = second["precompute"]
    assert (pre["video_hits"], pre["video_encoded"], pre["prompt_hits"]) == (2, 1, 3)
    # a different training size is another key: nothing reused
    _, third = _train(
        host,
        train_data,
        tmp_path / "c",
        write_config(tmp_path / "five.yaml", tiny_cogvideo, data={"num_frames": 9, "fps": 4}),
        cache,
        "--max-steps",
        "1",
        "--no-samples",
    )
    assert third["precompute"]["video_encoded"] == 3


def test_output_dir_of_a_previous_run_needs_resume(
    host: Any,
    trained: dict[str, Any],
    train_data: Path,
    latent_cache: Path,
    tiny_cogvideo: Path,
    tmp_path: Path,
) -> None:
    out = trained["out"]
    result = invoke(
        host,
        "train-lora",
        "--metadata",
        train_data,
        "-o",
        out,
        "--config",
        trained["config"],
        "--cache-dir",
        latent_cache,
    )
    assert result.exit_code == 2 and "--resume" in result.stderr
    assert result.stderr.count("\n") == 1
    result = invoke(
        host,
        "train-lora",
        "--metadata",
        train_data,
        "-o",
        out,
        "--config",
        trained["config"],
        "--cache-dir",
        latent_cache,
        "--resume",
        "--rank",
        "8",
    )
    assert result.exit_code == 2 and "lora differs" in result.stderr
    # resuming a finished run trains nothing more
    result, report = _train(
        host, train_data, out, trained["config"], latent_cache, "--resume", "--no-samples"
    )
    assert report["resumed_from"] == 6 and report["global_step"] == 6
    assert [s for s, _ in _losses(out)] == [1, 2, 3, 4, 5, 6]


def test_training_errors_are_one_line(
    host: Any, tiny_cogvideo: Path, train_data: Path, latent_cache: Path, tmp_path: Path
) -> None:
    config = write_config(tmp_path / "lora.yaml", tiny_cogvideo)
    cases = [
        (["--metadata", tmp_path / "missing.json"], 2, "metadata file not found"),
        (["--metadata", train_data, "--height", "480", "--width", "720"], 2, "data.height"),
        (["--metadata", train_data, "--rank", "0"], 2, "--rank: lora.rank must be a positive"),
        (["--metadata", train_data, "--num-frames", "10"], 2, "data.num_frames must be 4k+1"),
        (["--metadata", train_data, "--model", tmp_path / "nowhere"], 2, "not found"),
    ]
    for args, code, text in cases:
        result = invoke(
            host,
            "train-lora",
            "-o",
            tmp_path / "out",
            "--config",
            config,
            "--cache-dir",
            latent_cache,
            *args,
        )
        assert result.exit_code == code, (args, result.output)
        assert text in result.stderr, (args, result.stderr)
        assert result.stderr.count("\n") == 1 and "Traceback" not in result.output
    assert not (tmp_path / "out").exists()  # nothing written before the checks


# -- SIGKILL and --resume --------------------------------------------------------------------
def test_resume_after_sigkill_repeats_at_most_n_steps_and_matches_an_unbroken_run(
    host: Any, tiny_cogvideo: Path, train_data: Path, latent_cache: Path, tmp_path: Path
) -> None:
    from vt_cogvideo.training.trainer import list_checkpoints

    every, total = 5, 40
    config = write_config(
        tmp_path / "lora.yaml",
        tiny_cogvideo,
        training={"checkpointing_steps": every, "epochs": 100, "checkpoints_total_limit": None},
    )
    out = tmp_path / "killed"
    args = [
        "cogvideo",
        "train-lora",
        "--metadata",
        train_data,
        "-o",
        out,
        "--config",
        config,
        "--cache-dir",
        latent_cache,
        "--max-steps",
        str(total),
        "--no-samples",
        "--cpu",
    ]
    proc = subprocess.Popen(
        [vt_program(), *[str(a) for a in args]],
        env=subprocess_env(tmp_path / "vt-cache"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    metrics = out / "outputs" / "metrics.csv"
    deadline = time.monotonic() + 240
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if metrics.is_file() and len(metrics.read_text().splitlines()) > 2 * every + 2:
                break  # past the second checkpoint
            time.sleep(0.01)
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:] if proc.stderr else ""
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    done_before = [s for s, _ in _losses(out)]
    checkpoints = list_checkpoints(out)
    newest = checkpoints[-1][0]
    # a checkpoint every `every` steps and one at each epoch's end: never more than `every` apart
    assert newest >= 2 * every
    assert max(done_before) - newest <= every  # what the resumed run will repeat
    for folder in (out / "checkpoints").iterdir():  # no half-written checkpoint under its name
        assert folder.name.startswith(".") or (folder / "training_state.json").is_file()

    _, resumed = _train(
        host,
        train_data,
        out,
        config,
        latent_cache,
        "--max-steps",
        str(total),
        "--no-samples",
        "--resume",
    )
    assert resumed["resumed_from"] == newest and resumed["global_step"] == total
    steps = [s for s, _ in _losses(out)]
    assert steps == list(range(1, total + 1))

    # the same run without a break: same data order, noise and timesteps, same losses
    _train(
        host,
        train_data,
        tmp_path / "unbroken",
        config,
        latent_cache,
        "--max-steps",
        str(total),
        "--no-samples",
    )
    expected = dict(_losses(tmp_path / "unbroken"))
    for step, loss in _losses(out):
        assert loss == pytest.approx(expected[step], rel=1e-4, abs=1e-6), step


@pytest.mark.slow
def test_accelerate_launch_runs_the_same_command(
    tiny_cogvideo: Path, train_data: Path, latent_cache: Path, tmp_path: Path
) -> None:
    import shutil
    import sys

    accelerate = shutil.which("accelerate", path=str(Path(sys.executable).parent))
    assert accelerate
    config = write_config(tmp_path / "lora.yaml", tiny_cogvideo)
    proc = subprocess.run(
        [
            accelerate,
            "launch",
            "--cpu",
            "--num_processes",
            "1",
            "--num_machines",
            "1",
            "--mixed_precision",
            "no",
            "--dynamo_backend",
            "no",
            "-m",
            "vt_cogvideo.training",
            "train-lora",
            "--metadata",
            str(train_data),
            "-o",
            str(tmp_path / "run"),
            "--config",
            str(config),
            "--cache-dir",
            str(latent_cache),
            "--max-steps",
            "2",
            "--no-samples",
            "--json",
        ],
        env=subprocess_env(tmp_path / "vt-cache"),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(proc.stdout)
    assert report["global_step"] == 2
    assert (tmp_path / "run" / "adapter_final" / "pytorch_lora_weights.safetensors").is_file()
