"""The playground's web app: the page, its static files, the export and one websocket per tab.

Protocol (JSON text messages). The page sends ``{"type": "settings", "settings": {...}}``
(rebuilds the network), ``play``, ``pause``, ``step``, ``reset``, ``{"type": "upload",
"name", "text"}`` (a CSV as text: parsed in memory, never stored), ``{"type": "layer",
"name"}`` (the hidden-representation panel) and ``export`` (answered with the ``capas
train`` command and the address of the zipped run directory, ``GET /api/sessions/<id>/export``,
which writes it then). The
server sends ``hello`` (the session id, limits), ``state`` (network and data after each
rebuild), ``frame`` (losses, heatmaps, weights, gradient bars, hidden points; at most
``fps`` a second), ``status``, ``export``, ``error`` and ``limit`` messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from pathlib import Path
from typing import Any

from fastapi import FastAPI, HTTPException, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles

from capas import defaults
from capas.data.playground import CLASSIFICATION, FEATURES, REGRESSION
from capas.playground.session import Session
from capas.playground.settings import LIMITS, Settings

STATIC = Path(__file__).parent / "static"
BACKLOG = 3  # frames waiting for a slow page beyond this are dropped (the next one is newer)
COMMANDS = ("settings", "play", "pause", "step", "reset", "upload", "layer", "export")


class RateLimit:
    """At most ``per_second`` messages in any one-second window."""

    def __init__(self, per_second: int) -> None:
        self.per_second = per_second
        self.window = 0.0
        self.count = 0

    def allow(self) -> bool:
        now = time.monotonic()
        if now - self.window >= 1.0:
            self.window, self.count = now, 0
        self.count += 1
        return self.count <= self.per_second


def options() -> dict[str, Any]:
    """The page's choices and limits (so its menus list what this capas has)."""
    return {
        "problems": {"classification": list(CLASSIFICATION), "regression": list(REGRESSION)},
        "features": list(FEATURES),
        "activations": [a for a in defaults.ACTIVATIONS if a != "softmax"],
        "optimizers": list(defaults.OPTIMIZERS),
        "losses": list(defaults.LOSSES),
        "engines": list(defaults.ENGINES),
        "limits": LIMITS,
        "defaults": Settings().model_dump(),
    }


def create_app() -> FastAPI:
    """A new app; its tabs' channels live in ``app.state.sessions`` (no module-level state)."""
    app = FastAPI(title="capas playground", docs_url=None, redoc_url=None)
    app.state.sessions = {}
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/")
    def index() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-store"})

    @app.get("/api/options")
    def api_options() -> JSONResponse:
        return JSONResponse(options())

    @app.get("/api/sessions/{session_id}/export")
    async def export(session_id: str) -> Response:
        session = _channel(app, session_id).session
        try:
            result = await asyncio.wrap_future(session.submit("export"))
        except Exception as err:
            raise HTTPException(409, str(err)) from None
        return Response(
            result["zip"],
            media_type="application/zip",
            headers={"Content-Disposition": f'attachment; filename="{result["name"]}.zip"'},
        )

    @app.websocket("/ws")
    async def socket(websocket: WebSocket) -> None:
        await websocket.accept()
        channel = Channel(app)
        pump = asyncio.create_task(_pump(websocket, channel.outbox))
        try:
            while True:
                channel.receive(await websocket.receive_text())
        except WebSocketDisconnect:
            pass
        finally:
            pump.cancel()
            await channel.close()

    # The same protocol without a websocket library in the server (uvicorn needs websockets
    # or wsproto for /ws): the page opens a session, reads its messages as server-sent
    # events and posts its own; it falls back to this when the websocket cannot open.
    @app.post("/api/sessions")
    async def open_session() -> JSONResponse:
        channel = Channel(app)
        return JSONResponse({"session": channel.session.id})

    @app.get("/api/sessions/{session_id}/events")
    async def events(session_id: str, request: Request) -> StreamingResponse:
        channel = _channel(app, session_id)

        async def stream() -> Any:
            try:
                while not await request.is_disconnected():
                    try:
                        message = await asyncio.wait_for(channel.outbox.get(), 1.0)
                    except asyncio.TimeoutError:
                        yield ": keep-alive\n\n"
                        continue
                    yield f"data: {json.dumps(message)}\n\n"
            finally:
                await channel.close()

        return StreamingResponse(stream(), media_type="text/event-stream", headers={"Cache-Control": "no-store"})

    @app.post("/api/sessions/{session_id}/messages")
    async def post_message(session_id: str, request: Request) -> JSONResponse:
        channel = _channel(app, session_id)
        body = await request.body()
        if len(body) > LIMITS["max_upload_bytes"] + 4096:
            raise HTTPException(413, f"a message of at most {LIMITS['max_upload_bytes']:,} bytes")
        channel.receive(body.decode("utf-8", errors="replace"))
        return JSONResponse({"ok": True})

    return app


class Channel:
    """One tab's connection: its session, the outbox of messages for the page, the rate limit."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app
        self.loop = asyncio.get_running_loop()
        self.outbox: asyncio.Queue = asyncio.Queue()
        self.limit = RateLimit(LIMITS["max_messages_per_second"])
        self.warned = 0.0
        self.session = Session(self.send)
        app.state.sessions[self.session.id] = self
        self.session.start()
        self.send({"type": "hello", "session": self.session.id, "limits": LIMITS})

    def _offer(self, message: dict[str, Any]) -> None:
        if message.get("type") == "frame" and self.outbox.qsize() >= BACKLOG:
            return  # the page is behind: the next frame is newer anyway
        self.outbox.put_nowait(message)

    def send(self, message: dict[str, Any]) -> None:
        """Queue ``message`` for the page (called from the session's thread too)."""
        with contextlib.suppress(RuntimeError):  # the loop is closing: the tab is gone
            self.loop.call_soon_threadsafe(self._offer, message)

    def receive(self, text: str) -> None:
        """A message from the page, unless it is over the rate limit (then said once a second)."""
        if not self.limit.allow():
            if time.monotonic() - self.warned > 1.0:
                self.warned = time.monotonic()
                self.send(
                    {"type": "limit", "message": f"more than {self.limit.per_second} messages a second; slow down"}
                )
            return
        _receive(self.session, text, self.send)

    async def close(self) -> None:
        """The tab closed: stop its training and forget it."""
        if self.app.state.sessions.pop(self.session.id, None) is not None:
            self.session.stop()  # before the await: a handler cancelled there must not leave the thread running
            await asyncio.to_thread(self.session.close)


def _channel(app: FastAPI, session_id: str) -> Channel:
    channel = app.state.sessions.get(session_id)
    if channel is None:
        raise HTTPException(404, "no such session: it ended when its tab closed")
    return channel


def _receive(session: Session, text: str, send: Any) -> None:
    """One message from the page, checked and queued for the session's thread."""
    try:
        message = json.loads(text)
        kind = message["type"]
    except (ValueError, KeyError, TypeError):
        send({"type": "error", "message": "a message must be JSON with a 'type'"})
        return
    if kind not in COMMANDS:
        send({"type": "error", "message": f"unknown message type {kind!r}; known: {', '.join(COMMANDS)}"})
        return
    if kind == "settings":
        session.submit(kind, message.get("settings"))
    elif kind == "upload":
        session.submit(kind, {"name": message.get("name"), "text": message.get("text")})
    elif kind == "layer":
        session.submit(kind, message.get("name"))
    elif kind == "export":
        future = session.submit("command")
        future.add_done_callback(lambda done: _exported(done, session, send))
    else:
        session.submit(kind)


def _exported(future: Any, session: Session, send: Any) -> None:
    if future.exception() is None:
        result = future.result()
        url = f"/api/sessions/{session.id}/export"
        send({"type": "export", "command": result["command"], "url": url})


async def _pump(websocket: WebSocket, outbox: asyncio.Queue) -> None:
    """Send the outbox's messages in order until the socket closes."""
    with contextlib.suppress(Exception):
        while True:
            await websocket.send_text(json.dumps(await outbox.get()))
