"""Experiment constants: read from the UPPER_CASE names of a per-dataset script, checked, and named in
every error exactly as the user wrote them.

A settings class is a frozen dataclass whose fields are the lower-case names of its script's
constants: field `shadow_lr` is constant `SHADOW_LR`, nothing is renamed on the way. Fields have no
defaults: every value comes from the script. Each field's annotation is checked when the object is
built (an int where a float is wanted is fine, a string or a bool is not), then the class's own
`check()` tests ranges. `load()` imports a script, reads its constants and adds the script's path
to any error; an UPPER_CASE name that no setting reads is refused as a likely typo.

The quick preset of a stage is its class's QUICK table: constant -> cap (numbers are lowered to the
cap, a None meaning "unbounded" becomes the cap) or a function of the value.
"""
import difflib
import importlib
import types
import typing
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, ClassVar

from toolkit.errors import P2Error
from toolkit.paths import REPO_ROOT


class SettingError(P2Error):
    """A constant whose value cannot be used; the loader adds the script it came from."""

    def __init__(self, constant: str, value: Any, message: str):
        self.constant, self.value, self.message = constant, value, message
        super().__init__(f"{constant} = {value!r}: {message}")

    def in_script(self, script: str) -> P2Error:
        return P2Error(f"{self.constant} = {self.value!r} in {script}: {self.message}")


def require(condition: bool, constant: str, value: Any, message: str) -> None:
    """Raise a SettingError for `constant` unless `condition` holds."""
    if not condition:
        raise SettingError(constant, value, message)


def _describe(annotation) -> str:
    origin = typing.get_origin(annotation)
    if origin in (types.UnionType, typing.Union):
        return " or ".join(_describe(arg) for arg in typing.get_args(annotation))
    if origin is tuple:
        item = _describe(typing.get_args(annotation)[0]).removeprefix("an ").removeprefix("a ")
        return f"a tuple of {item}s"
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(arg) for arg in typing.get_args(annotation))
    return {int: "an integer", float: "a number", str: "a string", bool: "True or False", dict: "a dict",
            type(None): "None"}.get(annotation, str(annotation))


def _coerce(value, annotation):
    """`value` converted to `annotation` where that is lossless (int -> float, list -> tuple); raises
    TypeError when it does not fit."""
    origin = typing.get_origin(annotation)
    if origin in (types.UnionType, typing.Union):
        for option in typing.get_args(annotation):
            try:
                return _coerce(value, option)
            except TypeError:
                continue
        raise TypeError
    if origin is typing.Literal:
        if value in typing.get_args(annotation) and type(value) is not bool:
            return value
        raise TypeError
    if origin is tuple:
        if not isinstance(value, (tuple, list)):
            raise TypeError
        return tuple(_coerce(item, typing.get_args(annotation)[0]) for item in value)
    if annotation is type(None):
        if value is None:
            return None
        raise TypeError
    if annotation is bool:
        if isinstance(value, bool):
            return value
        raise TypeError
    if annotation is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise TypeError
    if annotation is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise TypeError
    if isinstance(value, annotation):
        return value
    raise TypeError


def _capped(value, cap):
    if callable(cap):
        return cap(value)
    if value is None:
        return cap
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return min(value, cap)
    return cap


@dataclass(frozen=True)
class Settings:
    """Base of every settings class: type checks from the annotations, then `check()`."""

    QUICK: ClassVar[dict] = {}

    def __post_init__(self):
        hints = typing.get_type_hints(type(self))
        for field in fields(self):
            value = getattr(self, field.name)
            try:
                object.__setattr__(self, field.name, _coerce(value, hints[field.name]))
            except TypeError:
                raise SettingError(field.name.upper(), value, f"must be {_describe(hints[field.name])}") from None
        self.check()

    def check(self) -> None:
        """Range and consistency checks of the subclass (raise through `require`)."""

    def quick(self):
        """These settings under the quick preset (QUICK: constant -> cap or function)."""
        return replace(self, **{name.lower(): _capped(getattr(self, name.lower()), cap)
                                for name, cap in self.QUICK.items()})

    def constants(self) -> dict:
        """{CONSTANT: value}, as the script spells them (for summaries and stage manifests)."""
        return {field.name.upper(): getattr(self, field.name) for field in fields(self)}

    @classmethod
    def constant_names(cls) -> set[str]:
        return {field.name.upper() for field in fields(cls)}


def script_path(module_name: str) -> str:
    """`defend.defend_adult` -> `defend/defend_adult.py` (how users know the file)."""
    return module_name.replace(".", "/") + ".py"


def import_script(module_name: str) -> types.ModuleType:
    """Import a per-dataset script; a missing file or a script that does not run is one clear error."""
    path = script_path(module_name)
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if error.name != module_name:
            raise
        raise P2Error(f"{path} does not exist: write it (copy the adult version) or leave its stage out") from None
    except SyntaxError as error:
        raise P2Error(f"{path} line {error.lineno}: {error.msg}") from None
    except Exception as error:  # a script holds constants only; anything else that breaks is the user's edit
        raise P2Error(f"{path} does not run: {type(error).__name__}: {error}") from None


def load(settings_class: type, module_name: str):
    """The settings `settings_class` reads from the script `module_name`."""
    module = import_script(module_name)
    path = script_path(module_name)
    names = [field.name for field in fields(settings_class)]
    missing = [name.upper() for name in names if not hasattr(module, name.upper())]
    if missing:
        raise P2Error(f"{path} lacks {', '.join(missing)}: every constant of this stage must be set there")
    try:
        return settings_class(**{name: getattr(module, name.upper()) for name in names})
    except SettingError as error:
        raise error.in_script(path) from None


def check_no_unread_constants(module_name: str, settings_classes: list[type]) -> None:
    """Refuse an UPPER_CASE constant that none of these classes reads: most likely a misspelt name."""
    module = import_script(module_name)
    known = set().union(*(cls.constant_names() for cls in settings_classes))
    unread = sorted(name for name in vars(module) if name.isupper() and not name.startswith("_") and name not in known)
    if unread:
        name = unread[0]
        close = difflib.get_close_matches(name, sorted(known), n=1)
        hint = f" (did you mean {close[0]}?)" if close else f"; the constants read are {', '.join(sorted(known))}"
        raise P2Error(f"{script_path(module_name)} sets {name}, which no setting reads{hint}")


def repository_file(module_name: str) -> Path:
    return REPO_ROOT / script_path(module_name)
