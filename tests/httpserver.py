"""A real threaded HTTP server on 127.0.0.1 for tests that download: no mock of the network.

It serves a dict URL path -> bytes, honours `Range: bytes=<k>-` (206 with Content-Range, 416 past
the end), can misbehave on purpose (drop the connection after N bytes while announcing the full
Content-Length, answer 5xx, ignore Range) and can play Google Drive's confirm flows. Every request
is recorded (path with query, Range and Cookie headers) so tests can assert what the client sent.

    with FileServer({"/data/a.bin": payload}) as server:
        download(f"{server.url}/data/a.bin")
        assert server.ranges("/data/a.bin") == [None]
"""
from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Mapping
from urllib.parse import parse_qs, urlsplit

GDRIVE_PATH = "/uc"                # point genlab.data.download.GDRIVE_URL at f"{server.url}{GDRIVE_PATH}"
GDRIVE_FORM_ACTION = "/download"   # stands for https://drive.usercontent.google.com/download
GDRIVE_FLOWS = ("direct", "form", "cookie", "quota")
QUOTA_TEXT = ("Too many users have viewed or downloaded this file recently. Please try accessing the file "
              "again later.")


@dataclass(frozen=True)
class Request:
    path: str                # with the query string
    range: str | None        # the Range header as sent
    cookie: str | None       # the Cookie header as sent


@dataclass
class _Trouble:
    """Misbehaviour for the next `times` requests of one path."""

    times: int
    value: int               # bytes to send before dropping, or the HTTP status to answer


@dataclass(frozen=True)
class _DriveFile:
    data: bytes
    flow: str                # one of GDRIVE_FLOWS


class FileServer:
    """Serves `files` (URL path -> bytes) on a random port of 127.0.0.1 until `close()`."""

    def __init__(self, files: Mapping[str, bytes] | None = None):
        self.files: dict[str, bytes] = dict(files or {})
        self.requests: list[Request] = []
        self.ignore_range = False    # answer 200 with the whole file even to a Range request
        self._drops: dict[str, _Trouble] = {}
        self._errors: dict[str, _Trouble] = {}
        self._drive: dict[str, _DriveFile] = {}
        self._issued: set[str] = set()  # uuids / tokens handed out by Drive's confirm pages
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._httpd.state = self  # type: ignore[attr-defined]
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)
        self._thread.start()

    def __enter__(self) -> FileServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop serving and free the port (later connections are refused); safe to call twice."""
        if self._thread.is_alive():
            self._httpd.shutdown()
            self._thread.join()
        self._httpd.server_close()

    # ----------------------------------------------------------------- what to serve, and how badly
    def drop(self, path: str, after: int, times: int = 1) -> None:
        """For the next `times` requests of `path`: announce the full length, send `after` bytes, close."""
        self._drops[path] = _Trouble(times, after)

    def fail(self, path: str, times: int = 1, status: int = 500) -> None:
        """Answer the next `times` requests of `path` with `status`."""
        self._errors[path] = _Trouble(times, status)

    def serve_gdrive(self, file_id: str, data: bytes, flow: str) -> None:
        """Serve `data` as Drive file `file_id` at GDRIVE_PATH?export=download&id=<file_id>.

        direct: the file at once (small files); form: first the virus-scan page whose
        `download-form` points at GDRIVE_FORM_ACTION with hidden id/export/confirm/uuid inputs;
        cookie: first a page setting `download_warning_<id>=<token>`, then the file for
        `&confirm=<token>` only if that cookie is sent back; quota: always the quota page.
        """
        if flow not in GDRIVE_FLOWS:
            raise ValueError(f"flow must be one of {GDRIVE_FLOWS}, got {flow!r}")
        self._drive[file_id] = _DriveFile(data, flow)

    # ----------------------------------------------------------------- what was asked
    def paths(self) -> list[str]:
        return [r.path for r in self.requests]

    def ranges(self, path: str) -> list[str | None]:
        """The Range header of each request of `path` (query ignored), in order."""
        return [r.range for r in self.requests if urlsplit(r.path).path == path]

    # ----------------------------------------------------------------- used by the handler
    def _take(self, troubles: dict[str, _Trouble], path: str) -> int | None:
        with self._lock:
            trouble = troubles.get(path)
            if trouble is None or trouble.times <= 0:
                return None
            trouble.times -= 1
            return trouble.value

    def _issue(self) -> str:
        token = uuid.uuid4().hex
        with self._lock:
            self._issued.add(token)
        return token


class _Handler(BaseHTTPRequestHandler):
    server: ThreadingHTTPServer

    @property
    def state(self) -> FileServer:
        return self.server.state  # type: ignore[attr-defined]

    def do_GET(self) -> None:
        state = self.state
        with state._lock:
            state.requests.append(Request(self.path, self.headers.get("Range"), self.headers.get("Cookie")))
        url = urlsplit(self.path)
        status = state._take(state._errors, url.path)
        if status is not None:
            self.send_error(status)
        elif url.path == GDRIVE_PATH:
            self._drive_page({k: v[0] for k, v in parse_qs(url.query).items()})
        elif url.path == GDRIVE_FORM_ACTION:
            self._drive_form_target({k: v[0] for k, v in parse_qs(url.query).items()})
        elif url.path in state.files:
            self._send_file(url.path, state.files[url.path])
        else:
            self.send_error(404)

    def log_message(self, *args: object) -> None:
        pass

    def _send_file(self, path: str, body: bytes) -> None:
        header = self.headers.get("Range", "")
        start = 0
        if header.startswith("bytes=") and header.endswith("-") and not self.state.ignore_range:
            start = int(header[len("bytes="):-1])
            if start >= len(body):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(body)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body) - start))
        self.end_headers()
        cut = self.state._take(self.state._drops, path)
        self.wfile.write(body[start:] if cut is None else body[start:start + cut])
        self.close_connection = True

    def _send_html(self, html: str, cookie: str | None = None) -> None:
        data = html.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        if cookie:
            self.send_header("Set-Cookie", f"{cookie}; Path=/")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _drive_page(self, query: dict[str, str]) -> None:
        file = self.state._drive.get(query.get("id", ""))
        if file is None:
            self.send_error(404)
        elif file.flow == "quota":
            self._send_html(_page("Quota exceeded", f'<p class="uc-error-subcaption">{QUOTA_TEXT}</p>'))
        elif file.flow == "direct" or (file.flow == "cookie" and self._cookie_confirmed(query)):
            self._send_file(GDRIVE_PATH, file.data)
        elif file.flow == "cookie":
            token = self.state._issue()
            self._send_html(_page("Virus scan warning", "<p>Google Drive can't scan this file for viruses.</p>"),
                            cookie=f"download_warning_13058_{query['id']}={token}")
        else:
            self._send_html(_download_form(f"http://{self.headers['Host']}{GDRIVE_FORM_ACTION}",
                                           query["id"], self.state._issue()))

    def _cookie_confirmed(self, query: dict[str, str]) -> bool:
        token = query.get("confirm")
        return token in self.state._issued and f"={token}" in (self.headers.get("Cookie") or "")

    def _drive_form_target(self, query: dict[str, str]) -> None:
        file = self.state._drive.get(query.get("id", ""))
        if file is None or query.get("uuid") not in self.state._issued or query.get("confirm") != "t":
            self.send_error(403)
        else:
            self._send_file(GDRIVE_FORM_ACTION, file.data)


def _page(title: str, body: str) -> str:
    return (f"<!DOCTYPE html><html><head><title>Google Drive - {title}</title></head>"
            f"<body><div class=\"uc-main\">{body}</div></body></html>")


def _download_form(action: str, file_id: str, token: str) -> str:
    """The shape of Drive's 2024 virus-scan page: a GET form whose hidden inputs confirm the download."""
    hidden = {"id": file_id, "export": "download", "confirm": "t", "uuid": token}
    inputs = "".join(f'<input type="hidden" name="{k}" value="{v}">' for k, v in hidden.items())
    return _page("Virus scan warning",
                 "<p class=\"uc-warning-caption\">Google Drive can't scan this file for viruses.</p>"
                 f'<form id="download-form" action="{action}" method="get">'
                 '<input type="submit" id="uc-download-link" value="Download anyway">'
                 f"{inputs}</form>")
