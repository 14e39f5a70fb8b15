"""The training configuration: the shipped defaults, and every bad value named by its key."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from vt_cogvideo.training.config import (
    ConfigError,
    TrainingConfig,
    ValidationConfig,
    check_against_model,
    describe_fields,
    load_config,
    resolve_mixed_precision,
)

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "training"


def test_shipped_yaml_holds_the_spec_defaults() -> None:
    config = load_config(CONFIGS / "lora_default.yaml")
    # the file writes out the dataclass defaults (only the prompts file is added)
    assert config == replace(
        TrainingConfig(), validation=ValidationConfig(prompts="validation_prompts.yaml")
    )
    assert config.model == "THUDM/CogVideoX-5b-I2V"
    assert (config.data.height, config.data.width, config.data.num_frames, config.data.fps) == (
        480,
        720,
        49,
        8,
    )
    assert config.optimizer.learning_rate == 1e-4
    assert config.lora.target_modules == ["to_q", "to_k", "to_v", "to_out.0"]
    assert config.training.gradient_checkpointing and config.training.checkpointing_steps == 100
    assert config.validation_prompts_path() == CONFIGS / "validation_prompts.yaml"
    # the sample prompts it names are read as train-lora reads them, images included
    from vt_cogvideo.training.metadata import TrainingClip
    from vt_cogvideo.training.trainer import read_validation_prompts

    first = TrainingClip("c", Path("c.mp4"), Path("c.png"), "a clip", 9, 8.0)
    prompts = read_validation_prompts(config, first)
    assert len(prompts) == 3 and all(p.prompt and p.image.is_file() for p in prompts)
    # every key has a description (the docs table is made from them)
    assert all(help_text for _, _, help_text in describe_fields())


def _write(tmp_path: Path, data: Any) -> Path:
    path = tmp_path / "lora.yaml"
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data))
    return path


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"lora": {"rnak": 8}}, "unknown key lora.rnak (did you mean lora.rank?)"),
        ({"epochs": 3}, "unknown key epochs"),
        ({"lora": {"rank": 0}}, "lora.rank must be a positive integer, got 0"),
        ({"lora": {"rank": 4.5}}, "lora.rank must be a positive integer"),
        ({"lora": {"rank": True}}, "lora.rank must be a positive integer, got True"),
        ({"lora": {"alpha": -1}}, "lora.alpha must be a number > 0"),
        ({"lora": {"dropout": 1.0}}, "lora.dropout must be a number in [0, 1)"),
        ({"lora": {"target_modules": ["to_q", "ff.net.0"]}}, "lora.target_modules has ff.net.0"),
        ({"lora": {"target_modules": []}}, "lora.target_modules must be a non-empty list"),
        ({"data": {"height": 470}}, "data.height must be an integer multiple of 16"),
        ({"data": {"num_frames": 48}}, "data.num_frames must be 4k+1"),
        ({"data": {"fps": 0}}, "data.fps must be a positive integer"),
        ({"data": {"image_noise_std": float("nan")}}, "data.image_noise_std must be a number >= 0"),
        ({"data": 5}, "data must be a mapping"),
        ({"optimizer": {"learning_rate": "fast"}}, "optimizer.learning_rate must be a number > 0"),
        ({"optimizer": {"lr_scheduler": "step"}}, "optimizer.lr_scheduler must be one of constant"),
        ({"optimizer": {"adam_beta2": 1}}, "optimizer.adam_beta2 must be a number in (0, 1)"),
        ({"training": {"mixed_precision": "fp8"}}, "training.mixed_precision must be one of auto"),
        (
            {"training": {"gradient_checkpointing": "yes"}},
            "training.gradient_checkpointing must be true or false",
        ),
        (
            {"training": {"checkpointing_steps": 0}},
            "training.checkpointing_steps must be a positive",
        ),
        ({"training": {"max_steps": -5}}, "training.max_steps must be a positive integer"),
        ({"training": {"report_to": 3}}, "training.report_to must be auto, none, all"),
        ({"validation": {"prompts": ""}}, "validation.prompts must be a non-empty string"),
        ({"model": None}, "model must be a non-empty string"),
        ([1, 2], "the file must be a mapping"),
    ],
)
def test_each_bad_value_is_named_by_its_key(tmp_path: Path, data: Any, message: str) -> None:
    path = _write(tmp_path, data)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert message in str(info.value)
    assert str(path) in str(info.value)
    assert "\n" not in str(info.value)


def test_file_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "none.yaml")
    with pytest.raises(ConfigError, match=r"not valid YAML at line 3"):
        load_config(_write(tmp_path, "lora:\n  rank: 4\n   alpha: 2\n"))
    assert load_config(_write(tmp_path, "")) == TrainingConfig()  # an empty file: defaults
    ints_as_floats = load_config(_write(tmp_path, {"optimizer": {"learning_rate": 1}}))
    assert ints_as_floats.optimizer.learning_rate == 1.0


def test_command_line_overrides_are_checked_like_the_file() -> None:
    config = load_config(
        None,
        {
            "rank": 8,
            "learning_rate": 3e-4,
            "epochs": 2,
            "max_steps": None,
            "model": "some/model",
            "height": 64,
            "width": 96,
            "num_frames": 17,
        },
    )
    assert (config.lora.rank, config.optimizer.learning_rate, config.training.epochs) == (
        8,
        3e-4,
        2,
    )
    assert config.training.max_steps is None and config.model == "some/model"
    assert (config.data.height, config.data.width, config.data.num_frames) == (64, 96, 17)
    with pytest.raises(ConfigError, match=r"--rank: lora.rank must be a positive integer"):
        load_config(None, {"rank": -1})
    with pytest.raises(ConfigError, match=r"--learning-rate: optimizer.learning_rate"):
        load_config(None, {"learning_rate": 0.0})


def test_model_sizes_and_precision(tiny_cogvideo: Path) -> None:
    from vt_cogvideo.loading import read_model_spec

    spec = read_model_spec(tiny_cogvideo)
    with pytest.raises(ConfigError, match=r"data.height/data.width/data.num_frames"):
        check_against_model(TrainingConfig(), spec)  # 480x720x49 on the 16x16x9 model
    check_against_model(load_config(None, {"height": 16, "width": 16, "num_frames": 9}), spec)
    assert resolve_mixed_precision("auto", "cuda") == "bf16"
    assert resolve_mixed_precision("auto", "cpu") == "no"
    with pytest.raises(ConfigError, match="needs a CUDA device"):
        resolve_mixed_precision("bf16", "cpu")


def test_registering_the_commands_imports_nothing_heavy() -> None:
    """``vt --help`` builds the group: the training commands must not pull torch & co."""
    import subprocess
    import sys

    code = (
        "import sys, typer; from vt_cogvideo.training.commands import register; "
        "register(typer.Typer()); "
        "print([m for m in ('torch', 'diffusers', 'accelerate', 'peft', 'av') "
        "if m in sys.modules])"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"
