"""``capas playground``: watch any capas network learn, in the browser.

TensorFlow Playground's page (its problems, features, layers, heatmaps, loss curves)
served by FastAPI, with every capas spec, optimizer, BackProp variant and engine behind
it; each tab trains its own network through capas's Trainer in its own thread, streamed
over a websocket. ``create_app()`` builds the app; ``capas playground`` serves it.
"""

from capas.playground.app import create_app

__all__ = ["create_app"]
