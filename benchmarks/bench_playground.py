"""Playground speed: a 2-8-8-2 network on 500 spiral points, trained by one session of the
app (the real server path: websocket protocol, frames built between epochs) while frames
stream to the client. Prints epochs/s and frames/s, per engine.

    .venv/bin/python benchmarks/bench_playground.py [--seconds 8]
"""

from __future__ import annotations

import argparse
import time

import torch
from fastapi.testclient import TestClient

from capas.playground import create_app


def measure(engine: str, seconds: float) -> tuple[float, float]:
    settings = {"problem": "spiral", "n": 500, "ratio": 0.9, "hidden": [8, 8], "engine": engine, "fps": 15}
    with TestClient(create_app()) as client, client.websocket_connect("/ws") as ws:
        ws.receive_json()
        ws.send_json({"type": "settings", "settings": settings})
        ws.send_json({"type": "play"})
        frames, first_epoch, started = 0, None, None
        while True:
            message = ws.receive_json()
            if message["type"] != "frame" or message["epoch"] < 20:  # warm-up (numba compiles)
                continue
            if started is None:
                started, first_epoch = time.perf_counter(), message["epoch"]
                continue
            frames += 1
            elapsed = time.perf_counter() - started
            if elapsed >= seconds:
                ws.send_json({"type": "pause"})
                return (message["epoch"] - first_epoch) / elapsed, frames / elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=8.0)
    args = parser.parse_args()
    torch.set_num_threads(1)  # as `capas playground` runs: one thread per session
    print("2-8-8-2, 500 spiral points (400 train after the 20% test split, 90% of them for training), batch 10, sgd")
    for engine in ("auto", "backprop", "autograd"):
        epochs, frames = measure(engine, args.seconds)
        print(f"engine {engine:9s} {epochs:7.1f} epochs/s  {frames:5.1f} frames/s")


if __name__ == "__main__":
    main()
