"""Optional experiment tracking through accelerate's trackers (TensorBoard, W&B, MLflow…):
``--track NAME`` on benchmark, validate and batch logs each clip's figures when that tracker
is installed; nothing is imported or written without it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vt.errors import UsageError

PROJECT = "vt-cogvideo"


class Tracker:
    """``log(values, step)`` to the trackers named (``all``: every installed one), or to
    nothing when ``name`` is None. ``name`` may also be an accelerate ``GeneralTracker``."""

    def __init__(
        self, name: Any, *, logging_dir: Path, run: str, config: dict[str, Any] | None = None
    ) -> None:
        self.accelerator: Any = None
        self.notes: list[str] = []
        if name is None or name == "":
            return
        try:
            from accelerate import Accelerator
            from accelerate.tracking import GeneralTracker, get_available_trackers
        except ImportError:
            raise UsageError("--track needs accelerate (pip install accelerate)") from None
        available = [str(t) for t in get_available_trackers()]
        if not isinstance(name, GeneralTracker):
            if name == "all":
                if not available:
                    self.notes.append(
                        "--track all: no tracker is installed (tensorboard, "
                        "wandb, mlflow, ...): nothing is logged"
                    )
                    return
            elif name not in available:
                raise UsageError(
                    f"--track {name}: not installed here (installed: "
                    f"{', '.join(available) or 'none'}; e.g. pip install {name})"
                )
        logging_dir.mkdir(parents=True, exist_ok=True)
        self.accelerator = Accelerator(log_with=name, project_dir=str(logging_dir))
        flat = {k: v for k, v in (config or {}).items() if isinstance(v, (str, int, float, bool))}
        self.accelerator.init_trackers(PROJECT, config=flat, init_kwargs={"wandb": {"name": run}})

    @property
    def active(self) -> bool:
        return self.accelerator is not None

    def log(self, values: dict[str, Any], step: int) -> None:
        if self.accelerator is None:
            return
        numbers = {
            k: float(v)
            for k, v in values.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool)
        }
        self.accelerator.log(numbers, step=step)

    def close(self) -> None:
        if self.accelerator is not None:
            self.accelerator.end_training()
            self.accelerator = None
