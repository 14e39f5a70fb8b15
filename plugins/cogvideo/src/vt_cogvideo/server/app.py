"""The FastAPI application: generation endpoints, the job queue, artifacts and the web page.

No ``from __future__ import annotations`` here: FastAPI reads the route functions'
annotations at runtime, and some name types local to ``create_app``.
"""

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from fastapi import (
    Depends,
    FastAPI,
    File,
    Form,
    HTTPException,
    Query,
    Request,
    Response,
    Security,
    UploadFile,
)
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.security import HTTPBearer
from fastapi.staticfiles import StaticFiles

from vt.errors import ModelUnavailableError, UsageError, VtError
from vt_cogvideo.server import inputs
from vt_cogvideo.server.artifacts import ArtifactStore
from vt_cogvideo.server.auth import ArtifactSigner, TokenGuard
from vt_cogvideo.server.jobs import FINISHED, Job, JobRunner, JobStatus, QueueFull, RunnerStopped
from vt_cogvideo.server.schemas import (
    ErrorOut,
    GenerateOut,
    HealthOut,
    JobOut,
    JobsOut,
    LorasOut,
    ResultOut,
)
from vt_cogvideo.server.settings import ServerSettings

if TYPE_CHECKING:
    from vt_cogvideo.generation import GenerationResult, Generator

STATIC = Path(__file__).parent / "static"
#: room for the form's text fields and multipart framing on top of the image
FORM_OVERHEAD_BYTES = 64 * 1024
#: the page loads only its own files: no CDN, no inline script
PAGE_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' blob: "
    "data:; media-src 'self' blob:; connect-src 'self'; frame-ancestors 'none'; "
    "base-uri 'none'; form-action 'self'"
)

GeneratorFactory = Callable[[ServerSettings], "Generator"]


def default_generator(settings: ServerSettings) -> "Generator":
    from vt_cogvideo.generation import Generator
    from vt_cogvideo.loading import DEFAULT_MODEL

    return Generator(settings.model or DEFAULT_MODEL, device=settings.device)


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {code: {"model": ErrorOut} for code in codes}


def create_app(
    settings: ServerSettings, generator_factory: GeneratorFactory = default_generator
) -> FastAPI:
    """The API over one generator. ``settings`` should have passed ``checked()``; the
    generator is built here (cheap: pipelines load on first use) and used by one worker
    thread, started and stopped with the app."""
    from vt_cogvideo.generation import MAX_SEED

    store = ArtifactStore(settings.artifact_dir)
    generator = generator_factory(settings)
    runner = JobRunner(
        generator,
        store,
        queue_size=settings.queue_size,
        keep_artifacts=settings.keep_artifacts,
        keep_jobs=settings.keep_jobs,
    )
    signer = ArtifactSigner(settings.token) if settings.token else None
    body_limit = settings.max_upload_bytes + FORM_OVERHEAD_BYTES

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        runner.start()
        try:
            yield
        finally:
            await asyncio.to_thread(runner.stop)

    app = FastAPI(
        title="vt cogvideo",
        version="0.1.0",
        lifespan=lifespan,
        description="Image-to-video generation with CogVideoX (vt-cogvideo). "
        "One generation runs at a time; see docs/api.md.",
        form_limits={"max_files": 1, "max_fields": 32, "max_part_size": 64 * 1024},
    )
    app.state.settings, app.state.runner, app.state.generator = settings, runner, generator
    if settings.token:
        app.add_middleware(TokenGuard, token=settings.token)
    # declares the scheme in the OpenAPI schema; TokenGuard does the checking
    bearer = [Security(HTTPBearer(auto_error=False))] if settings.token else []

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = jsonable_encoder(exc.errors())
        detail = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'][1:]) or 'body'}: {e['msg']}" for e in errors
        )
        return JSONResponse({"detail": detail, "errors": errors}, status_code=422)

    def artifact_url(name: str | None) -> str | None:
        if name is None:
            return None
        return f"/artifacts/{name}" + (f"?sig={signer.sign(name)}" if signer else "")

    def result_out(result: "GenerationResult") -> dict[str, Any]:
        sidecar = result.sidecar.name if result.sidecar and result.sidecar.is_file() else None
        return {
            "output": result.output.name,
            "url": artifact_url(result.output.name),
            "sidecar": sidecar,
            "sidecar_url": artifact_url(sidecar),
            "temporal_score": result.temporal_score,
            "timings": result.timings,
            "seed": result.seed,
            "frames": result.frames,
            "fps": result.fps,
            "width": result.width,
            "height": result.height,
            "peak_memory_bytes": result.peak_memory_bytes,
            "metadata": jsonable_encoder(result.metadata),
        }

    def job_out(job: Job) -> dict[str, Any]:
        done = job.status is JobStatus.DONE
        progress = 1.0 if done else (job.step / job.total_steps if job.total_steps else 0.0)
        return {
            "id": job.id,
            "status": job.status.value,
            "url": f"/jobs/{job.id}",
            "position": runner.position(job),
            "step": job.step,
            "total_steps": job.total_steps,
            "progress": min(progress, 1.0),
            "cancel_requested": job.cancel.is_set(),
            "created": job.created,
            "started": job.started,
            "finished": job.finished,
            "error": job.error,
            "request": job.summary,
            "result": result_out(job.result) if done and job.result else None,
        }

    def generation_form(
        image: Annotated[
            UploadFile,
            File(
                description="The conditioning image (PNG, JPEG, "
                "WebP, BMP, GIF, TIFF), any size: fitted to the "
                "model's."
            ),
        ],
        prompt: Annotated[str, Form(min_length=1, max_length=settings.max_prompt_chars)],
        negative_prompt: Annotated[str, Form(max_length=settings.max_prompt_chars)] = "",
        num_frames: Annotated[
            int | None,
            Form(ge=1, le=1024, description="Default: the model's own (49 for CogVideoX-5B-I2V)."),
        ] = None,
        height: Annotated[
            int | None, Form(ge=8, le=4096, description="Default: the model's.")
        ] = None,
        width: Annotated[
            int | None, Form(ge=8, le=4096, description="Default: the model's.")
        ] = None,
        num_inference_steps: Annotated[int, Form(ge=1, le=1000)] = 50,
        guidance_scale: Annotated[float, Form(ge=0, le=100, allow_inf_nan=False)] = 6.0,
        seed: Annotated[
            int | None,
            Form(ge=0, le=MAX_SEED, description="Default: random, reported in the result."),
        ] = None,
        fps: Annotated[int, Form(ge=1, le=120)] = 8,
        mode: Annotated[Literal["baseline", "optimized"], Form()] = "baseline",
        scheduler: Annotated[
            Literal["ddim", "dpm"] | None, Form(description="Default: the mode's.")
        ] = None,
        lora: Annotated[
            str | None,
            Form(
                max_length=255,
                description="A LoRA name inside the server's --lora-dir (GET /loras).",
            ),
        ] = None,
        lora_scale: Annotated[float, Form(ge=-10, le=10, allow_inf_nan=False)] = 1.0,
        fit: Annotated[Literal["crop", "pad"], Form()] = "crop",
    ) -> tuple[Any, dict[str, Any]]:
        """The request the form describes, checked against the model (422 when it cannot
        take it); runs in a worker thread of the server (it decodes the image)."""
        from vt_cogvideo.generation import GenerationRequest

        data = inputs.read_image(
            image.file,
            image.size,
            max_bytes=settings.max_upload_bytes,
            max_pixels=settings.max_image_pixels,
        )
        if not prompt.strip():
            raise HTTPException(422, "prompt: empty")
        options: dict[str, Any] = {
            "prompt": prompt,
            "negative_prompt": negative_prompt,
            "num_frames": num_frames,
            "height": height,
            "width": width,
            "num_inference_steps": num_inference_steps,
            "guidance_scale": guidance_scale,
            "seed": seed,
            "fps": fps,
            "mode": mode,
            "scheduler": scheduler,
            "lora_scale": lora_scale,
            "fit": fit,
        }
        lora_path = inputs.resolve_lora(lora, settings.lora_dir) if lora else None
        try:
            with inputs.open_image(data) as probe:
                checked = generator.validate(
                    GenerationRequest(image=probe, lora=lora_path, **options)
                )
        except UsageError as exc:
            raise HTTPException(422, str(exc)) from exc
        except ModelUnavailableError as exc:
            raise HTTPException(503, str(exc)) from exc
        except VtError as exc:
            raise HTTPException(500, str(exc)) from exc
        request = dataclasses.replace(checked, image=inputs.open_image(data))
        summary = {
            **options,
            "num_frames": checked.num_frames,
            "height": checked.height,
            "width": checked.width,
            "scheduler": checked.scheduler,
            "lora": lora,
            "image": {"filename": image.filename, "bytes": len(data)},
        }
        return request, summary

    Submission = Annotated[tuple[Any, dict[str, Any]], Depends(generation_form)]

    def submit(submission: tuple[Any, dict[str, Any]]) -> Job:
        try:
            return runner.submit(*submission)
        except QueueFull as exc:
            raise HTTPException(429, str(exc)) from exc
        except RunnerStopped as exc:
            raise HTTPException(503, str(exc)) from exc

    @app.get("/health", response_model=HealthOut, tags=["status"])
    def health() -> dict[str, Any]:
        """Liveness, the model and its loaded pipelines, and the queue (no token needed)."""
        pipeline = jsonable_encoder(generator.describe())
        return {
            "status": "ok",
            "model": str(pipeline.get("model", settings.model)),
            "pipeline": pipeline,
            "queue": runner.depth(),
            "auth": bool(settings.token),
            "loras": settings.lora_dir is not None,
            "max_upload_bytes": settings.max_upload_bytes,
            "max_image_pixels": settings.max_image_pixels,
        }

    @app.get(
        "/loras",
        response_model=LorasOut,
        tags=["status"],
        dependencies=bearer,
        responses=_errors(401),
    )
    def loras() -> dict[str, Any]:
        """The LoRA names a request may give (empty without --lora-dir)."""
        return {"loras": inputs.list_loras(settings.lora_dir)}

    @app.post(
        "/generate-video",
        response_model=GenerateOut,
        tags=["generation"],
        dependencies=bearer,
        max_body_size=body_limit,
        responses=_errors(401, 409, 413, 422, 429, 500, 503),
    )
    async def generate_video(submission: Submission) -> dict[str, Any]:
        """Generate a video and answer when it is written (queued behind running jobs).
        Long generations: use POST /jobs."""
        job = await asyncio.wrap_future(submit(submission).future)
        if job.status is JobStatus.DONE and job.result is not None:
            return {"id": job.id, **result_out(job.result)}
        if job.status is JobStatus.CANCELLED and runner.stopping:
            raise HTTPException(503, f"job {job.id} was cancelled: the server is shutting down")
        if job.status is JobStatus.CANCELLED:
            raise HTTPException(409, f"job {job.id} was cancelled ({job.error})")
        raise HTTPException(job.error_status or 500, job.error or "generation failed")

    @app.post(
        "/jobs",
        response_model=JobOut,
        status_code=202,
        tags=["jobs"],
        dependencies=bearer,
        max_body_size=body_limit,
        responses=_errors(401, 413, 422, 429, 503),
    )
    def create_job(submission: Submission, response: Response) -> dict[str, Any]:
        """Queue a generation; poll GET /jobs/{id} for progress and the result."""
        job = submit(submission)
        response.headers["Location"] = f"/jobs/{job.id}"
        return job_out(job)

    @app.get(
        "/jobs", response_model=JobsOut, tags=["jobs"], dependencies=bearer, responses=_errors(401)
    )
    def list_jobs(
        status: JobStatus | None = None, limit: Annotated[int, Query(ge=1, le=1000)] = 100
    ) -> dict[str, Any]:
        """The jobs the server remembers, newest first (optionally only those in one
        status)."""
        return {"jobs": [job_out(job) for job in runner.jobs(status)[:limit]]}

    def find_job(job_id: str) -> Job:
        job = runner.get(job_id)
        if job is None:
            raise HTTPException(404, f"no job {job_id!r}")
        return job

    @app.get(
        "/jobs/{job_id}",
        response_model=JobOut,
        tags=["jobs"],
        dependencies=bearer,
        responses=_errors(401, 404),
    )
    def get_job(job_id: str) -> dict[str, Any]:
        """A job's status, progress and, when done, its result."""
        return job_out(find_job(job_id))

    @app.delete(
        "/jobs/{job_id}",
        response_model=JobOut,
        tags=["jobs"],
        dependencies=bearer,
        responses={
            **_errors(401, 404, 409),
            202: {"model": JobOut, "description": "Running: asked to stop."},
        },
    )
    def cancel_job(job_id: str, response: Response) -> dict[str, Any]:
        """Cancel a queued job (200, status cancelled) or ask a running one to stop at the
        next denoising step (202); 409 when it has already finished."""
        job = find_job(job_id)
        if job.status in FINISHED:
            raise HTTPException(409, f"job {job_id} has already finished ({job.status.value})")
        job = runner.cancel(job_id) or job
        if job.status is JobStatus.RUNNING:
            response.status_code = 202
        return job_out(job)

    @app.get(
        "/artifacts/{filename}",
        tags=["artifacts"],
        response_class=FileResponse,
        dependencies=bearer,
        responses={
            **_errors(401, 404),
            200: {
                "content": {"video/mp4": {}, "application/json": {}},
                "description": "The file; a Range request gets 206.",
            },
        },
    )
    def artifact(filename: str, sig: str | None = None) -> FileResponse:
        """A generated MP4 (or its JSON sidecar), streamed, with Range requests. ``sig`` is
        the signature in a result's URL: it lets a <video> element, which cannot send the
        token, stream that one file."""
        del sig  # checked by TokenGuard before the request gets here
        found = store.find(filename)
        if found is None:
            raise HTTPException(404, "no such artifact")
        path, info, media_type = found
        return FileResponse(
            path,
            media_type=media_type,
            stat_result=info,
            filename=filename,
            content_disposition_type="inline",
            headers={"Cache-Control": "private, max-age=3600"},
        )

    app.head(
        "/artifacts/{filename}",
        include_in_schema=False,
        dependencies=bearer,
        response_class=FileResponse,
    )(artifact)

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(
            STATIC / "index.html",
            media_type="text/html",
            headers={
                "Content-Security-Policy": PAGE_POLICY,
                "X-Content-Type-Options": "nosniff",
                "Cache-Control": "no-cache",
            },
        )

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


__all__ = ["ResultOut", "create_app", "default_generator"]
