"""UCI Adult: the comma-separated adult.data and adult.test, pooled and encoded as in the original.

adult.test differs from adult.data in two ways the original code missed: a first line
`|1x3 Cross validator`, and labels with a trailing dot (`>50K.`).

One deliberate change: the original fed the category codes unscaled (up to 41) to the MLP, and with
them its FedAvg recipe learns only the majority class (docs/NOTES.md §7.1).
Here the codes are min-max scaled to [0, 1] like the numeric columns; order and values are otherwise
the original's.
"""
import logging
from pathlib import Path

import numpy as np

from data_sources import download
from data_sources.dataset import Dataset
from toolkit.errors import P2Error

log = logging.getLogger(__name__)

FILES = ("adult.data", "adult.test")  # adult.names is documentation only
COLUMNS = (
    "age", "workclass", "fnlwgt", "education", "education-num", "marital-status", "occupation",
    "relationship", "race", "sex", "capital-gain", "capital-loss", "hours-per-week", "native-country",
)
NUMERIC = frozenset({"age", "fnlwgt", "education-num", "capital-gain", "capital-loss", "hours-per-week"})
LABELS = {"<=50K": 0, ">50K": 1}
# The categories adult.names lists for each column, plus "?" (missing) where the files use it.
CATEGORIES = {
    "workclass": {"?", "Federal-gov", "Local-gov", "Never-worked", "Private", "Self-emp-inc", "Self-emp-not-inc",
                  "State-gov", "Without-pay"},
    "education": {"10th", "11th", "12th", "1st-4th", "5th-6th", "7th-8th", "9th", "Assoc-acdm", "Assoc-voc",
                  "Bachelors", "Doctorate", "HS-grad", "Masters", "Preschool", "Prof-school", "Some-college"},
    "marital-status": {"Divorced", "Married-AF-spouse", "Married-civ-spouse", "Married-spouse-absent",
                       "Never-married", "Separated", "Widowed"},
    "occupation": {"?", "Adm-clerical", "Armed-Forces", "Craft-repair", "Exec-managerial", "Farming-fishing",
                   "Handlers-cleaners", "Machine-op-inspct", "Other-service", "Priv-house-serv", "Prof-specialty",
                   "Protective-serv", "Sales", "Tech-support", "Transport-moving"},
    "relationship": {"Husband", "Not-in-family", "Other-relative", "Own-child", "Unmarried", "Wife"},
    "race": {"Amer-Indian-Eskimo", "Asian-Pac-Islander", "Black", "Other", "White"},
    "sex": {"Female", "Male"},
    "native-country": {"?", "Cambodia", "Canada", "China", "Columbia", "Cuba", "Dominican-Republic", "Ecuador",
                       "El-Salvador", "England", "France", "Germany", "Greece", "Guatemala", "Haiti",
                       "Holand-Netherlands", "Honduras", "Hong", "Hungary", "India", "Iran", "Ireland", "Italy",
                       "Jamaica", "Japan", "Laos", "Mexico", "Nicaragua", "Outlying-US(Guam-USVI-etc)", "Peru",
                       "Philippines", "Poland", "Portugal", "Puerto-Rico", "Scotland", "South", "Taiwan",
                       "Thailand", "Trinadad&Tobago", "United-States", "Vietnam", "Yugoslavia"},
}


def locate(folder: Path) -> list[Path]:
    """The two data files, downloaded first (with adult.names) if either is missing."""
    missing = [name for name in download.ADULT_MD5 if not (folder / name).is_file()]
    if any(name in missing for name in FILES):
        download.fetch_adult(folder, missing)
    return [folder / name for name in FILES]


def read(paths: list[Path]) -> Dataset:
    """Pool both files: 14 features (sorted category codes and numbers, all min-max scaled), >50K = 1."""
    rows: list[list[str]] = []
    labels: list[int] = []
    for path in paths:
        download.verify_md5(path, download.ADULT_MD5[path.name])
        before = len(rows)
        _parse(path, rows, labels)
        if len(rows) == before:
            raise P2Error(f"{path} holds no Adult rows: delete it so it is downloaded again")
    table = np.array(rows, dtype=object)
    features = np.empty((len(rows), len(COLUMNS)), dtype=np.float32)
    for index, column in enumerate(COLUMNS):
        values = table[:, index] if column in NUMERIC else _codes(table[:, index])
        features[:, index] = _scaled(values)
    return Dataset("adult", features, np.array(labels, dtype=np.int64), num_classes=2)


def _parse(path: Path, rows: list[list[str]], labels: list[int]) -> None:
    try:
        lines = path.read_bytes().decode("ascii").splitlines()
    except UnicodeDecodeError as error:
        line = path.read_bytes()[:error.start].count(b"\n") + 1
        raise P2Error(f"{path} line {line}: byte {error.object[error.start]:#x} is not ASCII text; "
                      f"delete the file so it is downloaded again") from None
    for number, line in enumerate(lines, start=1):
        if not line.strip() or line.startswith("|"):
            continue
        fields = [field.strip() for field in line.split(",")]
        if len(fields) != len(COLUMNS) + 1:
            raise P2Error(f"{path} line {number} has {len(fields)} fields, Adult has {len(COLUMNS) + 1}")
        label = fields.pop().rstrip(".")
        if label not in LABELS:
            raise P2Error(f"{path} line {number}: label {label!r} is neither <=50K nor >50K")
        for column, value in zip(COLUMNS, fields):
            if column in NUMERIC and not value.lstrip("-").isdigit():
                raise P2Error(f"{path} line {number}: {column} is {value!r}, not an integer")
            if column in CATEGORIES and value not in CATEGORIES[column]:
                raise P2Error(f"{path} line {number}: {column} is {value!r}, not a category adult.names lists")
        rows.append(fields)
        labels.append(LABELS[label])


def _codes(column: np.ndarray) -> np.ndarray:
    """Integer codes in sorted order of the strings; "?" is one more category."""
    return np.unique(column.astype(str), return_inverse=True)[1].astype(np.float32)


def _scaled(column: np.ndarray) -> np.ndarray:
    """Min-max to [0, 1]; a constant column becomes 0."""
    values = column.astype(np.float64)
    span = values.max() - values.min()
    return ((values - values.min()) / span if span else np.zeros_like(values)).astype(np.float32)
