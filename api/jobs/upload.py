"""Streaming multipart intake: the `file` part goes straight into object storage as it arrives.

Starlette's form parser would spool the whole upload to a temporary file before the handler runs; here
the size limit is enforced while bytes arrive, and nothing but one storage part is ever held in memory."""

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, MultipartState, parse_options_header
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from tingxie.errors import InvalidRequest, PayloadTooLarge
from tingxie.storage import ObjectWriter

if TYPE_CHECKING:  # defined for type checkers only
    from python_multipart.multipart import MultipartCallbacks

MAX_FIELD_BYTES = 64 * 1024  # language, webhook_url, context: text fields, never audio
MAX_FIELDS = 32  # a form has a handful; thousands would only hold memory
WRITE_BYTES = 1024 * 1024  # handed to the storage writer at once: one thread hop per MiB, not per socket read
FILE_FIELD = "file"


@dataclass
class Upload:
    fields: dict[str, str] = field(default_factory=dict)
    filename: str | None = None
    size: int = 0
    stored: bool = False


@dataclass
class _Part:
    name: str
    filename: str | None
    data: bytearray = field(default_factory=bytearray)


class _Events:
    """Collects python-multipart's synchronous callbacks so the async loop can act on them."""

    def __init__(self) -> None:
        self.queue: list[tuple[str, object]] = []
        self._headers: dict[bytes, bytes] = {}
        self._field = self._value = b""

    def callbacks(self) -> "MultipartCallbacks":
        return {
            "on_part_begin": self._headers.clear,
            "on_header_field": lambda data, start, end: self._append("_field", data[start:end]),
            "on_header_value": lambda data, start, end: self._append("_value", data[start:end]),
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": lambda data, start, end: self.queue.append(("data", bytes(data[start:end]))),
            "on_part_end": lambda: self.queue.append(("end", None)),
        }

    def _append(self, name: str, chunk: bytes) -> None:
        setattr(self, name, getattr(self, name) + chunk)

    def _header_end(self) -> None:
        self._headers[self._field.lower()] = self._value
        self._field = self._value = b""

    def _headers_finished(self) -> None:
        _, options = parse_options_header(self._headers.get(b"content-disposition", b""))
        name = options.get(b"name", b"").decode("utf-8", "replace")
        filename = options.get(b"filename")
        part = _Part(name, filename.decode("utf-8", "replace") if filename is not None else None)
        self.queue.append(("begin", part))

    def drain(self) -> list[tuple[str, object]]:
        events, self.queue = self.queue, []
        return events


def _boundary(request: Request) -> bytes:
    content_type, options = parse_options_header(request.headers.get("content-type", ""))
    if content_type != b"multipart/form-data" or b"boundary" not in options:
        raise InvalidRequest("expected a multipart/form-data body with a 'file' part", code="invalid_body")
    return options[b"boundary"]


def _check_declared_length(request: Request, max_bytes: int) -> None:
    declared = request.headers.get("content-length")
    # The multipart envelope adds a little; anything far past the limit is refused before reading.
    if declared and declared.isdigit() and int(declared) > max_bytes + MAX_FIELD_BYTES * 4:
        raise _too_large(max_bytes)


def _too_large(max_bytes: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"the upload is larger than the limit of {max_bytes} bytes")


async def receive_upload(request: Request, open_writer: Callable[[], ObjectWriter], max_bytes: int) -> Upload:
    """Parse the multipart body, streaming the `file` part into a writer from `open_writer`."""
    _check_declared_length(request, max_bytes)
    events = _Events()
    parser = MultipartParser(_boundary(request), events.callbacks())
    intake = _Intake(open_writer, max_bytes)
    try:
        async for chunk in request.stream():
            parser.write(chunk)
            await intake.handle(events.drain())
        parser.finalize()
        await intake.handle(events.drain())
        _check_complete(parser)
    except FormParserError as exc:
        await intake.abort()
        raise InvalidRequest(f"malformed multipart body: {exc}", code="invalid_body") from exc
    except BaseException:
        await intake.abort()
        raise
    return intake.result


def _check_complete(parser: MultipartParser) -> None:
    # A body cut short (a Content-Length smaller than what was sent, a proxy that gave up) parses without
    # error up to where it stops: only the missing closing boundary tells it apart from a whole form.
    if parser.state != MultipartState.END:
        raise InvalidRequest(
            "the body ended before the form's closing boundary (a Content-Length shorter than the body?)",
            code="invalid_body",
        )


class _Intake:
    def __init__(self, open_writer: Callable[[], ObjectWriter], max_bytes: int) -> None:
        self._open_writer = open_writer
        self._max_bytes = max_bytes
        self._writer: ObjectWriter | None = None
        self._pending = bytearray()
        self._part: _Part | None = None
        self.result = Upload()

    async def handle(self, events: list[tuple[str, object]]) -> None:
        for kind, payload in events:
            if kind == "begin":
                assert isinstance(payload, _Part)
                await self._begin(payload)
            elif kind == "data":
                assert isinstance(payload, bytes)
                await self._data(payload)
            else:
                await self._end()

    async def _begin(self, part: _Part) -> None:
        self._part = part
        if part.name == FILE_FIELD:
            if self._writer is not None or self.result.stored:
                raise InvalidRequest("send exactly one 'file' part", code="invalid_body")
            self.result.filename = part.filename
            self._writer = await run_in_threadpool(self._open_writer)
        elif len(self.result.fields) >= MAX_FIELDS:
            raise InvalidRequest(f"the form has more than {MAX_FIELDS} fields", code="invalid_body")

    async def _data(self, data: bytes) -> None:
        assert self._part is not None
        if self._writer is None:
            self._part.data += data
            if len(self._part.data) > MAX_FIELD_BYTES:
                raise InvalidRequest(f"form field '{self._part.name}' is too long", code="invalid_body")
            return
        self.result.size += len(data)
        if self.result.size > self._max_bytes:
            raise _too_large(self._max_bytes)
        self._pending += data
        if len(self._pending) >= WRITE_BYTES:
            await self._write_pending(self._writer)

    async def _write_pending(self, writer: ObjectWriter) -> None:
        data = bytes(self._pending)
        self._pending.clear()
        await run_in_threadpool(writer.write, data)

    async def _end(self) -> None:
        assert self._part is not None
        if self._writer is not None:
            await self._write_pending(self._writer)
            await run_in_threadpool(self._writer.close)
            self._writer, self.result.stored = None, True
        else:
            self._add_field(self._part.name, self._part.data.decode("utf-8", "replace"))
        self._part = None

    def _add_field(self, name: str, value: str) -> None:
        # A list field (`timestamp_granularities[]`, as OpenAI's clients send it) repeats its name: its
        # values are kept, comma-separated. Any other repeated field: the last one counts.
        earlier = self.result.fields.get(name)
        listed = name.endswith("[]") and earlier is not None
        self.result.fields[name] = f"{earlier},{value}" if listed else value

    async def abort(self) -> None:
        self._pending.clear()
        if self._writer is not None:
            await run_in_threadpool(self._writer.abort)
            self._writer = None
