"""Make the repository importable from the tests, whatever the working directory."""
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
