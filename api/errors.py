"""One error shape for every failure: {"error": {"code": "...", "message": "..."}}.

On OpenAI's route (`/v1/audio/…`) the error also carries OpenAI's `type` (and `param`), which its clients
read to raise their usual exceptions; `code` and `message` stay ours."""

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect

from tingxie.errors import TingxieError

log = logging.getLogger(__name__)


OPENAI_PATH = "/v1/audio/"
# OpenAI's error types by status; any other 4xx is an invalid request, any 5xx a server error.
OPENAI_TYPES = {
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    409: "conflict_error",
    429: "rate_limit_error",
}
# Postgres aborts one side of a deadlock (40P01) or of a serialization conflict (40001): the database is
# up, and the same request sent again normally succeeds.
CONFLICT_SQLSTATES = frozenset({"40P01", "40001"})


def error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status, headers=headers)


def openai_error_type(status: int) -> str:
    return OPENAI_TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")


def _respond(
    request: Request, status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    if not request.url.path.startswith(OPENAI_PATH):
        return error_response(status, code, message, headers)
    error = {"code": code, "message": message, "type": openai_error_type(status), "param": None}
    return JSONResponse({"error": error}, status_code=status, headers=headers)


async def _tingxie_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, TingxieError)
    return _respond(request, exc.status_code, exc.code, exc.message, exc.headers)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = "; ".join(f"{'.'.join(str(part) for part in err['loc'])}: {err['msg']}" for err in exc.errors())
    return _respond(request, 422, "invalid_request", problems)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    return _respond(request, exc.status_code, code, str(exc.detail))


def is_transaction_conflict(exc: Exception) -> bool:
    return getattr(getattr(exc, "orig", None), "sqlstate", None) in CONFLICT_SQLSTATES


async def _database_unavailable(request: Request, exc: Exception) -> JSONResponse:
    if is_transaction_conflict(exc):
        log.warning("database aborted a conflicting transaction: %s", exc)
        message = "the database aborted this request to resolve a conflict with another one; retry it"
        return _respond(request, 503, "database_busy", message, {"Retry-After": "1"})
    log.warning("database unavailable: %s", exc)
    return _respond(request, 503, "database_unavailable", "the database is unreachable; try again shortly")


async def _client_gone(request: Request, exc: Exception) -> JSONResponse:
    # Not a fault of ours: the client hung up mid-body (what it had sent is already discarded). The
    # answer goes nowhere; 499 is the status proxies log for it.
    log.info("client disconnected during %s %s", request.method, request.url.path)
    return _respond(request, 499, "client_disconnected", "the client closed the connection before its body was sent")


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error", exc_info=exc)
    return _respond(request, 500, "internal_error", "an unexpected error occurred; it has been logged")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(TingxieError, _tingxie_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(ClientDisconnect, _client_gone)
    # A connection refused, dropped or timed out (not a bad statement, which stays a 500).
    for unavailable in (OperationalError, InterfaceError, PoolTimeout):
        app.add_exception_handler(unavailable, _database_unavailable)
    app.add_exception_handler(Exception, _unexpected)
