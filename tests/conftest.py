"""Shared test set-up: the repository is importable whatever the working directory, and no test
can reach the network by mistake."""
import pathlib
import sys
import urllib.request

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    """Only file:// URLs open, so a test can never reach the network by mistake."""
    real = urllib.request.urlopen

    def urlopen(url, *args, **kwargs):
        if not str(url).startswith("file:"):
            raise OSError(f"network disabled in tests: {url}")
        return real(url, *args, **kwargs)

    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
