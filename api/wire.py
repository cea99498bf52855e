"""The HTTP/1.1 protocol the API is served with: uvicorn's h11 protocol, its one plain-text answer made JSON.

Bytes that do not parse as HTTP never reach a route: a garbage request line, or what follows a body whose
Content-Length was shorter than what the client sent (those bytes are read as the next request). uvicorn
answers them itself, in plain text, and every error tingxie gives is JSON. `tingxie serve` and the image
start uvicorn with `--http api.wire:JsonErrorsProtocol`."""

import json

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

PROTOCOL = "api.wire:JsonErrorsProtocol"  # for uvicorn's --http


def error_body(message: str) -> bytes:
    return json.dumps({"error": {"code": "invalid_http", "message": message}}).encode()


class JsonErrorsProtocol(H11Protocol):
    def send_400_response(self, msg: str) -> None:  # uvicorn's message is logged already
        body = error_body(
            "the bytes received are not an HTTP request; after a request with a body, this means its "
            "Content-Length was shorter than the body sent"
        )
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
        ]
        response = h11.Response(status_code=400, headers=headers, reason=b"Bad Request")
        for event in (response, h11.Data(data=body), h11.EndOfMessage()):
            self.transport.write(self.conn.send(event))
        self.transport.close()
