"""`minitf explore --serve`: the explore page on 127.0.0.1, answering inputs you type.

The standard library's `http.server` is enough: one page and one JSON endpoint for one
learner at a time, so no web framework is needed.

    GET  /              the page (the same file `minitf explore` writes, with a text box)
    POST /api/analyze   {"text": "..."} -> the input's analysis (minitf.explore.data.analyze),
                        or {"error": "one sentence"} for input the model can't read (still
                        status 200: the request worked, and the browser's console stays
                        clean); a malformed request gets status 400

The server listens on 127.0.0.1 only (never on the network), answers only requests
addressed to that host (so another web page can't reach it through a renamed host), and
stops cleanly on Ctrl-C. Left out: HTTPS, logins, several users at once.
"""

from __future__ import annotations

import json
import threading
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from minitf.explore.data import analyze, page_data, toy_task
from minitf.explore.page import render
from minitf.model import Config, Params
from minitf.tasks import Task
from minitf.tuned_lens import TunedLens

HOST = "127.0.0.1"  # loopback only: the model is never reachable from another machine
MAX_BODY = 64 * 1024  # bytes a request may send: far more than any max_len of text


def make_server(
    params: Params,
    config: Config,
    tokenizer: Any,
    inputs: list[str] | None = None,
    *,
    task: Task | dict | None = None,
    tuned: TunedLens | None = None,
    port: int = 8000,
    title: str | None = None,
) -> ThreadingHTTPServer:
    """Build (not start) the server; port 0 picks a free one (see `server.server_port`).

    A port already in use is a ValueError that says how to pick another.
    """
    if not 0 <= port <= 65535:
        raise ValueError(f"--port must be 0..65535 (0: any free port); got {port}")
    data = page_data(params, config, tokenizer, inputs, task=task, tuned=tuned, title=title)
    data["serve"] = True
    toy = toy_task(task)
    page = render(data).encode("utf-8")
    lock = threading.Lock()  # one analysis at a time: the model is not shared work

    def answer(text: str) -> dict:
        with lock:
            return analyze(params, config, tokenizer, text, task=toy, tuned=tuned)

    class Handler(BaseHTTPRequestHandler):
        server_version = "minitf-explore"

        def log_message(self, format: str, *args) -> None:  # noqa: A002 (the base's name)
            pass  # no line per request in the learner's terminal

        def _send(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def _json(self, status: int, reply: dict) -> None:
            self._send(status, json.dumps(reply, ensure_ascii=False).encode("utf-8"),
                       "application/json; charset=utf-8")  # fmt: skip

        def _host_ok(self) -> bool:
            port = self.server.server_port
            allowed = {f"{HOST}:{port}", f"localhost:{port}"}
            if self.headers.get("Host") in allowed:
                return True
            self._json(403, {"error": f"this server answers only http://{HOST}:{port}/"})
            return False

        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            if not self._host_ok():
                return
            if self.path in ("/", "/index.html"):
                self._send(200, page, "text/html; charset=utf-8")
            elif self.path == "/favicon.ico":
                self._send(204, b"", "image/x-icon")
            else:
                self._json(404, {"error": f"nothing at {self.path}; open http://{HOST}:"
                                          f"{self.server.server_port}/"})  # fmt: skip

        def do_POST(self) -> None:  # noqa: N802
            if not self._host_ok():
                return
            if self.path != "/api/analyze":
                self._json(404, {"error": f"nothing to POST to at {self.path}"})
                return
            try:
                length = int(self.headers.get("Content-Length", "0"))
            except ValueError:
                length = -1
            if not 0 < length <= MAX_BODY:
                self._json(400, {"error": f"send a JSON body of at most {MAX_BODY} bytes"})
                return
            try:
                request = json.loads(self.rfile.read(length).decode("utf-8"))
                text = request["text"]
                if not isinstance(text, str):
                    raise TypeError
            except (ValueError, KeyError, TypeError):
                self._json(400, {"error": 'send JSON like {"text": "123+045="}'})
                return
            try:
                self._json(200, answer(text))
            except ValueError as err:  # bad input: the one sentence the library wrote
                self._json(200, {"error": str(err).splitlines()[0]})
            except Exception as err:  # a bug: one line in the page, the details in the terminal
                traceback.print_exc()
                self._json(500, {"error": f"the server failed on this input "
                                          f"({type(err).__name__}); see its terminal"})  # fmt: skip

    try:
        server = ThreadingHTTPServer((HOST, port), Handler)
    except OSError as err:
        raise ValueError(
            f"can't listen on {HOST}:{port} ({err.strerror}); pick another port with "
            "--port N, or --port 0 for any free one"
        ) from None
    server.daemon_threads = True  # Ctrl-C doesn't wait for an open browser connection
    return server


def serve(server: ThreadingHTTPServer) -> None:
    """Serve until Ctrl-C, then close the socket and say so."""
    url = f"http://{HOST}:{server.server_port}/"
    print(f"serving the explore page at {url} (only on this computer)", flush=True)
    print("open it in your browser; press Ctrl-C here to stop", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    print("stopped the explore server", flush=True)
