"""The API's response bodies (FastAPI builds the OpenAPI schema from these)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field


class ErrorOut(BaseModel):
    detail: str = Field(description="What was wrong, in one line.")
    errors: list[dict[str, Any]] | None = Field(
        None, description="For a 422 from form validation: one entry per bad field."
    )


class ResultOut(BaseModel):
    output: str = Field(description="The MP4's file name in the artifact folder.")
    url: str = Field(description="Where to GET the MP4 (signed when the server has a token).")
    sidecar: str | None = Field(description="The JSON sidecar's file name.")
    sidecar_url: str | None
    temporal_score: float = Field(description="Temporal consistency in [0, 1] (>= 0.6 stable).")
    timings: dict[str, float] = Field(
        description="Seconds: load_s, generate_s, encode_s, score_s, total_s."
    )
    seed: int
    frames: int
    fps: int
    width: int
    height: int
    peak_memory_bytes: int = Field(description="Peak VRAM on CUDA, peak RSS on CPU.")
    metadata: dict[str, Any]


class GenerateOut(ResultOut):
    id: str = Field(description="The job that made it (also at GET /jobs/{id}).")


class JobOut(BaseModel):
    id: str
    status: Literal["queued", "running", "done", "failed", "cancelled"]
    url: str = Field(description="This job's status URL.")
    position: int | None = Field(description="Jobs ahead of this one while queued (0: next).")
    step: int = Field(description="Denoising steps done.")
    total_steps: int | None
    progress: float = Field(description="0 to 1.")
    cancel_requested: bool
    created: float = Field(description="Unix time.")
    started: float | None
    finished: float | None
    error: str | None
    request: dict[str, Any] = Field(description="The options the job runs with.")
    result: ResultOut | None


class JobsOut(BaseModel):
    jobs: list[JobOut] = Field(description="Newest first.")


class QueueOut(BaseModel):
    waiting: int
    running: bool
    capacity: int = Field(description="Jobs that may wait; one more is a 429.")
    completed: int


class HealthOut(BaseModel):
    status: Literal["ok"]
    model: str
    pipeline: dict[str, Any] = Field(
        description="The generator's description: model, device, dtype, loaded pipelines."
    )
    queue: QueueOut
    auth: bool = Field(description="Whether endpoints other than /health need a token.")
    loras: bool = Field(description="Whether requests may name a LoRA (--lora-dir given).")
    max_upload_bytes: int
    max_image_pixels: int


class LorasOut(BaseModel):
    loras: list[str] = Field(description="Names a request's lora field accepts.")
