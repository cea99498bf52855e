"""Audio submitted by URL: fetched by the worker (never by the API), streamed into the job's source object.

Every connection passes the SSRF guard for the address actually connected to (tingxie.outbound); at
most MAX_REDIRECTS redirects are followed, each target checked again; the size limit is enforced as the
bytes arrive, so a server cannot make the worker store more than TINGXIE_MAX_UPLOAD_BYTES (the duration
limit applies to the stored source as to an upload). A failure ends the job: `fetch_failed` (the HTTP
status, or why no answer came after FETCH_ATTEMPTS tries where another can help), `url_not_allowed`,
`payload_too_large`."""

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import urljoin

import httpcore

from tingxie.errors import JobFailure
from tingxie.outbound import Guard, UrlNotAllowed, check_url, connection_pool
from tingxie.settings import Settings
from tingxie.storage import ObjectWriter

log = logging.getLogger(__name__)

MAX_REDIRECTS = 5
FETCH_ATTEMPTS = 3  # for timeouts, failed connections, 429 and 5xx answers
RETRY_DELAY_S = 2.0  # doubled after each try
TIMEOUT_S = 30.0  # to connect, and for each read
USER_AGENT = "tingxie-fetch/1"
REDIRECTS = {301, 302, 303, 307, 308}


class FetchFailed(JobFailure):
    code = "fetch_failed"


class _TryAgain(Exception):
    """A failure another try may not meet."""


@dataclass(frozen=True)
class Fetched:
    url: str  # where the audio came from, after redirects
    size: int


def fetch_into(url: str, open_writer: Callable[[], ObjectWriter], settings: Settings) -> Fetched:
    """Stream `url`'s body into a writer from `open_writer` (a fresh one for each try)."""
    delay = RETRY_DELAY_S
    for attempt in range(1, FETCH_ATTEMPTS + 1):
        try:
            return _fetch_once(url, open_writer, settings)
        except _TryAgain as exc:
            if attempt == FETCH_ATTEMPTS:
                raise FetchFailed(f"fetching {url} failed {FETCH_ATTEMPTS} times, the last: {exc}") from exc
            log.info("fetching %s failed (%s); trying again in %.0f s", url, exc, delay)
            time.sleep(delay)
            delay *= 2
    raise AssertionError("unreachable")


def _fetch_once(url: str, open_writer: Callable[[], ObjectWriter], settings: Settings) -> Fetched:
    guard = Guard.of(settings)
    timeouts = {"connect": TIMEOUT_S, "read": TIMEOUT_S, "write": TIMEOUT_S, "pool": TIMEOUT_S}
    headers = [("user-agent", USER_AGENT)]
    with connection_pool(guard) as pool:
        for _ in range(MAX_REDIRECTS + 1):
            _check(url, guard)
            with (
                _network_errors(url),
                pool.stream("GET", url, headers=headers, extensions={"timeout": timeouts}) as response,
            ):
                if response.status in REDIRECTS:
                    url = _redirect_target(url, response)
                    continue
                _check_status(url, response.status)
                return Fetched(url, _store(response, open_writer, settings.max_upload_bytes))
    raise FetchFailed(f"more than {MAX_REDIRECTS} redirects, the last to {url}")


def _check(url: str, guard: Guard) -> None:
    try:
        check_url(url, guard)
    except UrlNotAllowed as refused:
        raise JobFailure(refused.message, code=refused.code) from refused


@contextmanager
def _network_errors(url: str) -> Iterator[None]:
    try:
        yield
    except UrlNotAllowed as refused:  # the address connected to, checked by the pool
        raise JobFailure(refused.message, code=refused.code) from refused
    except (httpcore.TimeoutException, httpcore.NetworkError, httpcore.RemoteProtocolError) as exc:
        raise _TryAgain(f"{type(exc).__name__}: {exc}") from exc
    except (httpcore.UnsupportedProtocol, httpcore.LocalProtocolError) as exc:
        raise FetchFailed(f"cannot fetch {url}: {exc}") from exc


def _headers(response: httpcore.Response) -> dict[bytes, bytes]:
    return {name.lower(): value for name, value in response.headers}


def _redirect_target(url: str, response: httpcore.Response) -> str:
    location = _headers(response).get(b"location")
    if not location:
        raise FetchFailed(f"{url} answered {response.status} without a Location")
    return urljoin(url, location.decode("latin-1"))


def _check_status(url: str, status: int) -> None:
    if status == 429 or status >= 500:
        raise _TryAgain(f"{url} answered {status}")
    if status != 200:
        raise FetchFailed(f"{url} answered HTTP {status}")


def _store(response: httpcore.Response, open_writer: Callable[[], ObjectWriter], max_bytes: int) -> int:
    declared = _headers(response).get(b"content-length", b"").decode("latin-1")
    if declared.isdigit() and int(declared) > max_bytes:
        raise JobFailure(f"the audio is {declared} bytes, over the limit of {max_bytes}", code="payload_too_large")
    writer, size = open_writer(), 0
    try:
        for part in response.iter_stream():
            size += len(part)
            if size > max_bytes:
                raise JobFailure(f"the audio is larger than the limit of {max_bytes} bytes", code="payload_too_large")
            writer.write(part)
        if size == 0:
            raise FetchFailed("the audio URL answered an empty body")
    except BaseException:
        writer.abort()
        raise
    writer.close()
    return size
