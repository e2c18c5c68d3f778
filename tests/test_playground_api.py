"""The playground's HTTP API and websocket protocol (FastAPI's test client, no browser)."""

from __future__ import annotations

import io
import json
import shlex
import time
import zipfile

import pytest
import torch
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from capas.playground import create_app

SPIRAL = {"problem": "spiral", "hidden": [6], "n": 200, "ratio": 0.5, "optimizer": "adam", "lr": 0.03}


@pytest.fixture()
def client():
    with TestClient(create_app()) as client:
        yield client


def receive(ws, kind, limit=400):
    """The next message of type ``kind`` (skipping others)."""
    for _ in range(limit):
        message = ws.receive_json()
        if message["type"] == kind:
            return message
    raise AssertionError(f"no {kind} message")


def start(ws, settings=SPIRAL):
    assert ws.receive_json()["type"] == "hello"
    ws.send_json({"type": "settings", "settings": settings})
    return receive(ws, "state"), receive(ws, "frame")


def test_page_static_files_and_options(client):
    page = client.get("/")
    assert page.status_code == 200 and "playground.js" in page.text
    assert "cdn" not in page.text.lower() and "https://" not in page.text
    assert client.get("/static/playground.js").status_code == 200
    options = client.get("/api/options").json()
    assert options["problems"] == {
        "classification": ["circle", "xor", "gaussians", "spiral"],
        "regression": ["plane", "gauss"],
    }
    assert "sgd" in options["optimizers"] and "adam" in options["optimizers"] and "backprop" in options["engines"]
    assert options["features"] == ["x1", "x2", "x1sq", "x2sq", "x1x2", "sinx1", "sinx2"]


def test_settings_state_frames_step_and_training(client):
    with client.websocket_connect("/ws") as ws:
        state, frame = start(ws)
        assert state["spec"] == "2-6-2" and state["task"] == "classification"
        assert [c["units"] for c in state["layers"]] == [2, 6, 2]
        assert len(state["data"]["train"]) == 80 and len(state["data"]["test"]) == 80  # 200 - 20% test, then 50/50
        assert frame["epoch"] == 0 and len(frame["units"]["dense1"]) == 6
        grid = state["grid"]
        assert len(__import__("base64").b64decode(frame["units"]["dense1"][0])) == grid * grid
        assert len(frame["weights"]["dense1"]) == 6 and len(frame["weights"]["dense1"][0]) == 2
        ws.send_json({"type": "step"})
        first = receive(ws, "frame")
        assert first["epoch"] == 1 and set(first["gradients"]) == {"dense1", "dense2"}
        ws.send_json({"type": "play"})
        deadline, losses = time.monotonic() + 60, [first["losses"][0][1]]
        while time.monotonic() < deadline:
            frame = receive(ws, "frame")
            losses += [point[1] for point in frame["losses"]]
            if frame["epoch"] >= 60:
                break
        ws.send_json({"type": "pause"})
        assert frame["epoch"] >= 60 and min(losses[-5:]) < 0.8 * losses[0]
        assert frame["output"]["kind"] == "classes" and len(frame["hidden"]["points"]) == 80


def test_malformed_spec_and_csv_keep_the_last_good_state_and_limits_are_messages(client):
    with client.websocket_connect("/ws") as ws:
        state, _ = start(ws)
        ws.send_json({"type": "settings", "settings": {**SPIRAL, "spec": "2-8-q-2"}})
        error = receive(ws, "error")
        assert "q" in error["message"]
        ws.send_json({"type": "upload", "name": "bad.csv", "text": "x1,x2,label\n1,2\n"})
        assert "bad.csv row 1 has 2 columns" in receive(ws, "error")["message"]
        ws.send_json({"type": "settings", "settings": {**SPIRAL, "hidden": [65]}})
        assert "64 units" in receive(ws, "limit")["message"]
        ws.send_json({"type": "settings", "settings": {**SPIRAL, "n": 5000}})
        assert "2000 points" in receive(ws, "limit")["message"]
        ws.send_json({"type": "upload", "name": "big.csv", "text": "1,2,0\n" * 60000})
        assert "limited to" in receive(ws, "limit")["message"]
        ws.send_json({"type": "step"})  # the first network still trains
        frame = receive(ws, "frame")
        assert frame["epoch"] == 1 and len(frame["units"]["dense1"]) == 6
        ws.send_json({"type": "nonsense"})
        assert "unknown message type" in receive(ws, "error")["message"]


def test_message_rate_limit(client):
    with client.websocket_connect("/ws") as ws:
        start(ws)
        for _ in range(60):
            ws.send_text(json.dumps({"type": "layer", "name": "dense1"}))
        assert "messages a second" in receive(ws, "limit", limit=2000)["message"]


def test_csv_upload_regression_and_more_classes(client):
    rows = "\n".join(f"{i % 7 - 3},{i % 5 - 2},{(i % 7 - 3) * 0.25 + 0.1}" for i in range(120))
    with client.websocket_connect("/ws") as ws:
        start(ws)
        ws.send_json({"type": "upload", "name": "mine.csv", "text": "a,b,y\n" + rows})
        state = receive(ws, "state")
        assert state["task"] == "regression" and state["upload"] == "mine.csv" and state["spec"] == "2-6-1"
        assert receive(ws, "frame")["output"]["kind"] == "regression"
        ws.send_json({"type": "settings", "settings": {**SPIRAL, "classes": 4, "features": ["x1", "x2", "sinx1"]}})
        state = receive(ws, "state")
        assert state["spec"] == "3-6-4" and state["data"]["classes"] == 4
        ws.send_json({"type": "settings", "settings": {**SPIRAL, "problem": "gauss", "variant": "online"}})
        assert receive(ws, "state")["task"] == "regression"


def test_export_is_a_run_capas_evaluate_reads_and_its_command_trains_the_same_weights(client, tmp_path):
    settings = {**SPIRAL, "features": ["x1", "x2", "x1x2"], "variant": "mini-batch", "batch_size": 16}
    with client.websocket_connect("/ws") as ws:
        state, _ = start(ws, settings)
        for _ in range(3):
            ws.send_json({"type": "step"})
            receive(ws, "frame")
        ws.send_json({"type": "export"})
        exported = receive(ws, "export")
        archive = client.get(exported["url"])
    assert archive.status_code == 200 and archive.headers["content-type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(archive.content)) as zipped:
        zipped.extractall(tmp_path)
    run = next(tmp_path.iterdir())
    assert {"model.json", "config.json", "weights.safetensors", "history.json", "metrics.json"} <= {
        p.name for p in run.iterdir()
    }
    from capas.api.evaluate import evaluate
    from capas.train.rundir import load_run

    assert evaluate(run).metrics["test_accuracy"] >= 0.0
    words = shlex.split(exported["command"])
    assert words[:2] == ["capas", "train"] and "--epochs" in words and words[words.index("--epochs") + 1] == "3"
    from capas.cli import _register, app

    _register()
    out = tmp_path / "again"
    result = CliRunner().invoke(app, [*words[1:], "--out", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    mine, again = load_run(run).build_model(), load_run(out).build_model()
    for a, b in zip(mine.state_dict().values(), again.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)


def test_two_sessions_train_independently_and_a_closed_tab_stops(client):
    app = client.app
    with client.websocket_connect("/ws") as one, client.websocket_connect("/ws") as two:
        start(one)
        start(two, {**SPIRAL, "seed": 1})
        assert len(app.state.sessions) == 2
        for ws in (one, two):
            ws.send_json({"type": "step"})
        a, b = receive(one, "frame"), receive(two, "frame")
        assert a["weights"]["dense1"] != b["weights"]["dense1"]  # seeds 0 and 1
        sessions = list(app.state.sessions.values())
    deadline = time.monotonic() + 20
    while app.state.sessions and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not app.state.sessions
    for channel in sessions:
        channel.session.thread.join(10)
        assert not channel.session.thread.is_alive()


def test_events_fallback_and_export_of_unknown_session(client):
    assert client.get("/api/sessions/nope/export").status_code == 404
    session = client.post("/api/sessions").json()["session"]
    response = client.post(
        f"/api/sessions/{session}/messages", content=json.dumps({"type": "settings", "settings": SPIRAL})
    )
    assert response.json() == {"ok": True}
    channel = client.app.state.sessions[session]
    deadline = time.monotonic() + 20
    kinds = []
    while "frame" not in kinds and time.monotonic() < deadline:
        try:
            kinds.append(channel.outbox.get_nowait()["type"])
        except Exception:
            time.sleep(0.05)
    assert kinds[:3] == ["hello", "state", "frame"]
