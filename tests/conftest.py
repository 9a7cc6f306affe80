"""Shared test set-up: no test can reach the network by mistake. (The project is installed in place by
requirements.txt, and pyproject.toml puts the repository on pytest's path.)"""
import urllib.request

import pytest
import torch


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    """Only file:// URLs open, so a test can never reach the network by mistake."""
    real = urllib.request.urlopen

    def urlopen(url, *args, **kwargs):
        if not str(url).startswith("file:"):
            raise OSError(f"network disabled in tests: {url}")
        return real(url, *args, **kwargs)

    monkeypatch.setattr(urllib.request, "urlopen", urlopen)


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models run faster on one thread, and a shared 2-core machine is not oversubscribed (for the rest of
    the module, once a test asks)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
