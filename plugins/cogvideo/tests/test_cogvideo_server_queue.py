"""The job queue over HTTP with a generator that blocks on an event: one generation at a time,
429 when the queue is full, cancelling queued and running jobs, failures, pruning, LoRA names.
(The generation itself is tested end to end with the tiny model in test_cogvideo_server.py.)"""

from __future__ import annotations

import concurrent.futures
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

from cogvideo_server_support import BlockingGenerator, Client, png_bytes, serving

FIELDS = {"num_inference_steps": 2}


def start(tmp_path: Path, generator: BlockingGenerator, **options: Any) -> Any:
    from vt_cogvideo.server.app import create_app
    from vt_cogvideo.server.settings import ServerSettings

    settings = ServerSettings(
        model="fake", artifact_dir=tmp_path / "artifacts", **options
    ).checked()
    return serving(create_app(settings, generator_factory=lambda _: generator))


@pytest.fixture
def fake() -> Iterator[BlockingGenerator]:
    generator = BlockingGenerator()
    yield generator
    generator.release.set()  # never leave the worker blocked


def submit(api: Client, prompt: str, **fields: Any) -> dict[str, Any]:
    reply = api.post_form("/jobs", {"prompt": prompt, **FIELDS, **fields}, png_bytes())
    assert reply.status == 202, reply.body
    return reply.json()


def wait_status(api: Client, job_id: str, status: str) -> dict[str, Any]:
    return api.wait_job(job_id, until=(status,), timeout=30)


def test_one_generation_at_a_time_and_429_when_the_queue_is_full(
    tmp_path: Path, fake: BlockingGenerator
) -> None:
    with start(tmp_path, fake, queue_size=2) as base:
        api = Client(base)
        first = submit(api, "first")
        running = wait_status(api, first["id"], "running")
        assert running["step"] == 1 and running["progress"] == 0.5
        second, third = submit(api, "second"), submit(api, "third")
        assert (second["position"], third["position"]) == (1, 2)
        assert api.get("/health").json()["queue"] == {
            "waiting": 2,
            "running": True,
            "capacity": 2,
            "completed": 0,
        }
        for endpoint in ("/jobs", "/generate-video"):
            full = api.post_form(endpoint, {"prompt": "fourth", **FIELDS}, png_bytes())
            assert full.status == 429, full.body
            assert "queue is full" in full.json()["detail"]
        fake.release.set()
        for job in (first, second, third):
            assert api.wait_job(job["id"])["status"] == "done"
        assert fake.started == ["first", "second", "third"]  # in order, none refused ran
        assert fake.max_active == 1
        assert api.get("/health").json()["queue"]["waiting"] == 0
        # room again
        assert (
            api.post_form("/generate-video", {"prompt": "fifth", **FIELDS}, png_bytes()).status
            == 200
        )


def test_cancel_a_queued_job_and_a_running_one(tmp_path: Path, fake: BlockingGenerator) -> None:
    with start(tmp_path, fake, queue_size=4) as base:
        api = Client(base)
        running = submit(api, "running")
        wait_status(api, running["id"], "running")
        queued = submit(api, "queued")
        reply = api.request("DELETE", f"/jobs/{queued['id']}")
        assert reply.status == 200 and reply.json()["status"] == "cancelled"
        assert api.get(f"/jobs/{queued['id']}").json()["status"] == "cancelled"
        reply = api.request("DELETE", f"/jobs/{running['id']}")
        assert reply.status == 202 and reply.json()["cancel_requested"] is True
        done = api.wait_job(running["id"])
        assert done["status"] == "cancelled" and "step 2" in done["error"]
        assert fake.started == ["running"]  # the queued job never reached the generator
        assert api.request("DELETE", f"/jobs/{running['id']}").status == 409
        assert not list((tmp_path / "artifacts").glob("cogvideo-*"))
        # the worker goes on with the next job
        fake.release.set()
        assert api.wait_job(submit(api, "after")["id"])["status"] == "done"


def test_a_sync_request_whose_job_is_cancelled_gets_409(
    tmp_path: Path, fake: BlockingGenerator
) -> None:
    with start(tmp_path, fake) as base:
        api = Client(base)
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            pending = pool.submit(
                api.post_form, "/generate-video", {"prompt": "sync", **FIELDS}, png_bytes()
            )
            deadline = time.monotonic() + 30
            while not fake.started:
                assert time.monotonic() < deadline
                time.sleep(0.01)
            running = api.get("/jobs?status=running").json()["jobs"]
            assert len(running) == 1 and running[0]["request"]["prompt"] == "sync"
            assert api.request("DELETE", f"/jobs/{running[0]['id']}").status == 202
            reply = pending.result(30)
        assert reply.status == 409 and "cancelled" in reply.json()["detail"]


def test_a_failing_generation_is_reported_and_the_worker_goes_on(tmp_path: Path) -> None:
    fake = BlockingGenerator(auto_release=True)
    with start(tmp_path, fake) as base:
        api = Client(base)
        reply = api.post_form("/generate-video", {"prompt": "fail please", **FIELDS}, png_bytes())
        assert reply.status == 500
        assert reply.json()["detail"] == "RuntimeError: the pipeline broke"
        failed = api.wait_job(submit(api, "fail again")["id"])
        assert failed["status"] == "failed" and "pipeline broke" in failed["error"]
        assert failed["result"] is None
        assert (
            api.post_form("/generate-video", {"prompt": "fine", **FIELDS}, png_bytes()).status
            == 200
        )
        assert api.get("/health").json()["queue"]["completed"] == 3


def test_model_refusals_from_validate_are_422(tmp_path: Path) -> None:
    fake = BlockingGenerator(auto_release=True)
    with start(tmp_path, fake) as base:
        reply = Client(base).post_form(
            "/jobs", {"prompt": "x", "width": 999, **FIELDS}, png_bytes()
        )
        assert reply.status == 422 and "width 999" in reply.json()["detail"]
        assert fake.started == []


def test_old_artifacts_are_pruned_but_nothing_else(tmp_path: Path) -> None:
    fake = BlockingGenerator(auto_release=True)
    artifacts = tmp_path / "artifacts"
    artifacts.mkdir()
    mine = {
        "notes.mp4": b"user file",
        "cogvideo-old.mp4": b"not ours by name",
        "cogvideo-0123.json": b"{}",
    }
    for name, data in mine.items():
        (artifacts / name).write_bytes(data)
    os.utime(artifacts / "notes.mp4", (0, 0))  # the oldest file of all
    with start(tmp_path, fake, keep_artifacts=2) as base:
        api = Client(base)
        outputs = []
        for index in range(4):
            reply = api.post_form(
                "/generate-video", {"prompt": f"clip {index}", **FIELDS}, png_bytes()
            )
            assert reply.status == 200
            outputs.append(reply.json())
            time.sleep(0.02)  # distinct modification times
        kept = {p.name for p in artifacts.iterdir()}
        newest = {o["output"] for o in outputs[2:]} | {o["sidecar"] for o in outputs[2:]}
        assert kept == newest | set(mine)
        assert api.get(outputs[0]["url"]).status == 404
        assert api.get(outputs[3]["url"]).status == 200
        for name, data in mine.items():
            assert (artifacts / name).read_bytes() == data


def test_lora_names_resolve_only_inside_the_lora_folder(tmp_path: Path) -> None:
    fake = BlockingGenerator(auto_release=True)
    loras = tmp_path / "loras"
    (loras / "press" / "epoch-1").mkdir(parents=True)
    (loras / "press" / "epoch-1" / "pytorch_lora_weights.safetensors").write_bytes(b"x")
    (loras / "single.safetensors").write_bytes(b"x")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "pytorch_lora_weights.safetensors").write_bytes(b"x")
    (loras / "escape").symlink_to(outside)
    (loras / "empty").mkdir()
    with start(tmp_path, fake, lora_dir=loras) as base:
        api = Client(base)
        assert api.get("/loras").json() == {"loras": ["press/epoch-1", "single.safetensors"]}
        assert api.get("/health").json()["loras"] is True
        reply = api.post_form(
            "/generate-video", {"prompt": "p", "lora": "press/epoch-1", **FIELDS}, png_bytes()
        )
        assert reply.status == 200, reply.body
        assert reply.json()["metadata"]["lora"].startswith(str(loras.resolve()))
        assert api.get(f"/jobs/{reply.json()['id']}").json()["request"]["lora"] == "press/epoch-1"
        for name in (
            "escape",
            "../outside",
            "press/../../outside",
            str(outside),
            "empty",
            "missing",
            "press/epoch-1/../../../outside",
            "%2e%2e/outside",
            "",
            "press\\epoch-1",
        ):
            reply = api.post_form("/jobs", {"prompt": "p", "lora": name, **FIELDS}, png_bytes())
            if name == "":  # an empty field means no LoRA
                assert reply.status == 202
                continue
            assert reply.status == 422, (name, reply.body)
            assert "lora" in reply.json()["detail"]


def test_finished_jobs_let_go_of_their_image(tmp_path: Path) -> None:
    from vt_cogvideo.generation import GenerationRequest
    from vt_cogvideo.server.artifacts import ArtifactStore
    from vt_cogvideo.server.inputs import open_image
    from vt_cogvideo.server.jobs import JobRunner, JobStatus

    runner = JobRunner(
        BlockingGenerator(auto_release=True), ArtifactStore(tmp_path), queue_size=2, keep_jobs=3
    )
    runner.start()
    try:
        jobs = [
            runner.submit(GenerationRequest(image=open_image(png_bytes()), prompt=f"p{i}"))
            for i in range(2)
        ]
        for job in jobs:
            assert job.future.result(30).status is JobStatus.DONE
            assert job.request is None and job.result is not None
        for i in range(2, 6):  # records beyond keep_jobs are forgotten, oldest first
            jobs.append(
                runner.submit(GenerationRequest(image=open_image(png_bytes()), prompt=f"p{i}"))
            )
            jobs[-1].future.result(30)
        assert [job.id for job in runner.jobs()] == [job.id for job in jobs[:2:-1]]
        assert runner.get(jobs[0].id) is None
    finally:
        runner.stop()
