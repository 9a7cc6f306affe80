"""Shared test set-up: no test can reach the network by mistake. (The project is installed in place by
requirements.txt, and pyproject.toml puts the repository on pytest's path.)"""
import urllib.request

import pytest
import torch

from tests.synthetic_adult import write_synthetic_adult


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


@pytest.fixture
def adult(tmp_path, monkeypatch):
    """Synthetic Adult files and temporary folders for a quick run in this process; returns the data folder."""
    for variable, name in (("P2_DATA_DIR", "data"), ("P2_CACHE_DIR", "cache"), ("P2_MODEL_DIR", "model"),
                           ("P2_RESULTS_DIR", "results")):
        monkeypatch.setenv(variable, str(tmp_path / name))
    monkeypatch.setenv("P2_VERIFY_CHECKSUMS", "0")
    write_synthetic_adult(tmp_path / "data", train_rows=1500, test_rows=700)
    return tmp_path / "data"
