"""Fixtures shared by several test modules."""

from __future__ import annotations

import pytest
from forkserver import ForkServer


@pytest.fixture(scope="session")
def fork_server(tmp_path_factory):
    """One fork server (tests/forkserver.py) for every test that kills or races processes."""
    server = ForkServer(tmp_path_factory.mktemp("fork-server") / "stderr.log")
    yield server
    server.close()
