"""Synthetic rows in the exact format of UCI Adult, with a learnable label, for end-to-end tests."""
from pathlib import Path

import numpy as np

WORKCLASS = ["Private", "Self-emp-not-inc", "State-gov", "?"]
EDUCATION = [("HS-grad", 9), ("Some-college", 10), ("Bachelors", 13), ("Masters", 14)]
MARITAL = ["Never-married", "Married-civ-spouse", "Divorced"]
OCCUPATION = ["Adm-clerical", "Exec-managerial", "Sales", "Craft-repair", "?"]
RELATIONSHIP = ["Not-in-family", "Husband", "Own-child", "Wife"]
RACE = ["White", "Black", "Asian-Pac-Islander"]
SEX = ["Male", "Female"]
COUNTRY = ["United-States", "Mexico", "?"]


def adult_lines(rows: int, seed: int, test_file: bool) -> list[str]:
    rng = np.random.default_rng(seed)
    lines = ["|1x3 Cross validator"] if test_file else []
    for _ in range(rows):
        age = int(rng.integers(17, 80))
        education, years = EDUCATION[rng.integers(len(EDUCATION))]
        hours = int(rng.integers(10, 70))
        gain = int(rng.choice([0, 0, 0, 5000, 15000]))
        rich = years + hours / 10 + gain / 3000 + rng.normal(0, 2) > 17
        label = (">50K" if rich else "<=50K") + ("." if test_file else "")
        fields = [age, WORKCLASS[rng.integers(4)], int(rng.integers(20000, 400000)), education, years,
                  MARITAL[rng.integers(3)], OCCUPATION[rng.integers(5)], RELATIONSHIP[rng.integers(4)],
                  RACE[rng.integers(3)], SEX[rng.integers(2)], gain, 0, hours, COUNTRY[rng.integers(3)], label]
        lines.append(", ".join(map(str, fields)))
    return lines


def write_synthetic_adult(data_root: Path, train_rows: int = 2000, test_rows: int = 1000) -> None:
    folder = data_root / "adult"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "adult.data").write_text("\n".join(adult_lines(train_rows, 0, False)) + "\n")
    (folder / "adult.test").write_text("\n".join(adult_lines(test_rows, 1, True)) + "\n")
