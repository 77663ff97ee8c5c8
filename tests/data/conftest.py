"""Fixtures of the downloader tests: a GSC archive server on 127.0.0.1 (gsc_server.py)."""

from __future__ import annotations

import pytest

from kws.data import download as dl
from tests.data.gsc_server import GOOD, GOOD_TEST_SET, TEST_ARCHIVE, GscServer


@pytest.fixture(autouse=True)
def no_retry_pause(monkeypatch):
    """No pause between a dropped connection and its retry in any download test."""
    monkeypatch.setattr(dl, "_RETRY_PAUSE_S", 0.0)


@pytest.fixture
def server():
    """A running GscServer with the full archive and the test-set archive."""
    srv = GscServer(GOOD, {TEST_ARCHIVE: GOOD_TEST_SET})
    yield srv
    srv.close()
