"""Loads the app named on the command line (``module:attribute``), turning every way
that can fail into an :class:`AppLoadError` whose message is one line an operator can
act on."""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any

from data_bridge.app import App

__all__ = ["AppLoadError", "load_app", "split_target"]


class AppLoadError(Exception):
    """The app could not be loaded; ``str()`` is a one-line reason."""


def split_target(target: str) -> tuple[str, str]:
    """``"pkg.mod:obj.app"`` -> ``("pkg.mod", "obj.app")``; ``ValueError`` if malformed."""
    module, sep, attrs = target.partition(":")
    parts = attrs.split(".")
    if not sep or not module or not all(p.isidentifier() for p in parts):
        raise ValueError(f"APP must look like 'module:attribute', got {target!r}")
    if not all(p.isidentifier() for p in module.split(".")):
        raise ValueError(f"APP must look like 'module:attribute', got {target!r}")
    return module, attrs


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def _import(module_name: str) -> Any:
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        # Only a missing module named by APP (or one of its parents) is "not found";
        # a module that fails to import one of *its* dependencies is an import error.
        missing = exc.name or ""
        if module_name == missing or module_name.startswith(missing + "."):
            raise AppLoadError(
                f"could not import module {module_name!r}: no module named {missing!r}"
            ) from exc
        raise AppLoadError(f"error importing module {module_name!r}: {_describe(exc)}") from exc
    except (Exception, SystemExit) as exc:
        raise AppLoadError(f"error importing module {module_name!r}: {_describe(exc)}") from exc


def load_app(target: str, *, factory: bool = False) -> App:
    """Imports ``target`` (``module:attribute``, attribute may be dotted) and returns the
    :class:`App` it names, or, with ``factory``, the App that calling it returns.

    The current directory is importable, as when running ``python -m``."""
    try:
        module_name, attrs = split_target(target)
    except ValueError as exc:
        raise AppLoadError(str(exc)) from None
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.insert(0, cwd)
    obj: Any = _import(module_name)
    for part in attrs.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise AppLoadError(f"attribute {attrs!r} not found in module {module_name!r}") from None
    if factory:
        if not callable(obj):
            raise AppLoadError(f"{target} is not callable, so it cannot be an app factory")
        try:
            obj = obj()
        except Exception as exc:
            raise AppLoadError(f"app factory {target} raised {_describe(exc)}") from exc
    if not isinstance(obj, App):
        hint = (
            "; it is callable: pass --factory if it returns the app"
            if callable(obj) and not factory
            else ""
        )
        what = "the app factory returned" if factory else f"{target} is"
        raise AppLoadError(f"{what} a {type(obj).__name__}, not a data_bridge.App{hint}")
    return obj
