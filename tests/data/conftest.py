"""Fixtures of the downloader tests: a GSC archive server on 127.0.0.1 (gsc_server.py)."""

from __future__ import annotations

import pytest

from kws.data import download as dl
from tests.data.gsc_server import GOOD, GOOD_TEST_SET, TEST_ARCHIVE, GscServer


@pytest.fixture
def server(monkeypatch):
    """A running GscServer with the full archive and the test-set archive; no pause between a
    dropped connection and its retry."""
    monkeypatch.setattr(dl, "_RETRY_PAUSE_S", 0.0)
    srv = GscServer(GOOD, {TEST_ARCHIVE: GOOD_TEST_SET})
    yield srv
    srv.close()
