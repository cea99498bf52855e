"""The FastAPI application."""

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import cache
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from sqlalchemy import text

from api.compat import router as compat_router
from api.deps import SessionDep, SettingsDep, StorageDep
from api.errors import install_error_handlers
from api.exposure import watch_startup
from api.jobs.endpoints import router as jobs_router
from api.jobs.events import router as job_events_router
from api.jobs.poll import StatusReader
from api.jobs.uploads import router as uploads_router
from api.key_cache import KeyChangeListener, key_cache
from api.metrics import metrics
from api.webhook_secret import router as webhook_secret_router
from tingxie.engines import engine_spec, speaker_encoder_weights
from tingxie.queue import get_celery
from tingxie.settings import get_settings


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings = get_settings()
    watch_startup(settings.auth_required)
    database_url = settings.resolved_database_url
    if not database_url.startswith("postgresql"):
        yield  # SQLite: no notifications to cache keys by, no second pool; every poll takes the session path
        return
    listener = KeyChangeListener(database_url, key_cache)
    reader = StatusReader(database_url)
    listener.start()
    await reader.open()
    app.state.status_reader = reader
    try:
        yield
    finally:
        del app.state.status_reader
        await reader.close()
        listener.stop()


def create_app() -> FastAPI:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = FastAPI(title="tingxie", version="0.1.0", summary="Self-hosted speech transcription", lifespan=lifespan)
    install_error_handlers(app)
    app.include_router(jobs_router)
    app.include_router(job_events_router)
    app.include_router(uploads_router)
    app.include_router(compat_router)
    app.include_router(webhook_secret_router)
    app.add_api_route("/healthz", healthz, methods=["GET"], tags=["health"])
    app.add_api_route("/readyz", readyz, methods=["GET"], tags=["health"])
    app.add_api_route("/v1/engines", engines, methods=["GET"], tags=["engines"])
    app.add_api_route("/metrics", metrics, methods=["GET"], include_in_schema=False)
    app.add_api_route("/", index, methods=["GET"], include_in_schema=False, response_class=HTMLResponse)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


def healthz() -> dict[str, str]:
    return {"status": "ok"}


def readyz(session: SessionDep, storage: StorageDep) -> object:
    checks: dict[str, str] = {}
    for name, probe in (
        ("database", lambda: session.execute(text("SELECT 1"))),
        ("broker", lambda: get_celery().connection_for_write().ensure_connection(max_retries=1)),
        ("storage", storage.check),
    ):
        try:
            probe()
            checks[name] = "ok"
        except Exception as exc:
            checks[name] = f"error: {exc}"
    if all(value == "ok" for value in checks.values()):
        return {"status": "ok", "checks": checks}
    failing = [name for name, value in checks.items() if value != "ok"]
    code = f"{failing[0]}_unavailable" if len(failing) == 1 else "not_ready"
    error = {"code": code, "message": "; ".join(f"{name}: {checks[name]}" for name in failing)}
    return JSONResponse({"status": "unavailable", "checks": checks, "error": error}, status_code=503)


def engines(settings: SettingsDep) -> dict[str, object]:
    """The engine the workers of this deployment load (they share these settings): its row of the engine
    table (tingxie/engines.py) with this deployment's settings."""
    spec = engine_spec(settings.engine)
    return {
        "engine": spec.name,
        "model": settings.model_path or spec.bundled_model,
        "device": settings.device,
        "dtype": settings.dtype,
        "batch_size": settings.batch_size,
        "chunk_seconds": settings.chunk_seconds,
        "window_seconds": settings.planned_window_seconds,
        "languages": ["auto", *sorted(spec.languages)],
        "word_timestamps": spec.gives_word_times(settings.model_path, settings.aligner_path),
        # Speaker labels: whether the workers can give them, and whether a job gets them when it does not say.
        "diarization": {
            "available": speaker_encoder_weights(settings.speaker_encoder_path) is not None,
            "default": settings.diarization,
        },
    }


STATIC = Path(__file__).parent / "static"


@cache
def index() -> str:
    """The web page (api/static): upload recordings, follow their jobs, read, play and download transcripts."""
    return (STATIC / "index.html").read_text(encoding="utf-8")


app = create_app()
