"""The package's layers import downward only: the loop (``data_bridge.pyloop``) loads
neither the web API nor pydantic, the web API loads nothing of the ``serve`` runtime,
and the package's public names are loaded on first use.

Each check imports in a fresh interpreter, since this test process has everything
loaded already."""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys

import pytest

import data_bridge

#: The top layers: they run an app, and may import everything below them.
TOP = ("data_bridge.serve", "data_bridge.testclient", "data_bridge.__main__")


def loaded_after(code: str) -> set[str]:
    """The modules a fresh interpreter has loaded after running ``code``."""
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout
    return set(json.loads(out.splitlines()[-1]))


def package_modules(prefix: str = "data_bridge.") -> list[str]:
    return sorted(
        info.name for info in pkgutil.walk_packages(data_bridge.__path__, prefix) if info.name
    )


def test_the_loop_loads_neither_the_web_api_nor_pydantic() -> None:
    loop_modules = [m for m in package_modules() if m.startswith("data_bridge.pyloop")]
    loaded = loaded_after("\n".join(f"import {m}" for m in loop_modules))
    ours = {m for m in loaded if m.startswith("data_bridge")}
    assert ours <= {"data_bridge", "data_bridge._native", *loop_modules}
    assert not {m for m in loaded if m.split(".")[0] in ("pydantic", "pydantic_core")}


def test_the_web_api_loads_nothing_of_the_serve_runtime() -> None:
    api = [m for m in package_modules() if not m.startswith(TOP)]
    assert "data_bridge.app" in api
    loaded = loaded_after("\n".join(f"import {m}" for m in api))
    assert not {m for m in loaded if m.startswith(TOP)}


def test_importing_the_package_loads_no_public_name() -> None:
    loaded = loaded_after("import data_bridge")
    assert {m for m in loaded if m.startswith("data_bridge")} == {
        "data_bridge",
        "data_bridge._native",
    }


@pytest.mark.parametrize("name", data_bridge.__all__)
def test_every_public_name_loads_and_is_listed(name: str) -> None:
    assert getattr(data_bridge, name) is not None
    assert name in dir(data_bridge)


def test_star_import_gives_the_public_names() -> None:
    namespace: dict[str, object] = {}
    exec("from data_bridge import *", namespace)
    assert set(data_bridge.__all__) <= set(namespace)


def test_an_unknown_name_raises_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no_such_name"):
        data_bridge.no_such_name  # noqa: B018


def test_serve_is_callable_and_a_package() -> None:
    import data_bridge.serve.cli
    from data_bridge.serve import server

    # The name is the package once one of its modules is loaded; calling it serves.
    assert callable(data_bridge.serve)
    assert data_bridge.serve.cli is sys.modules["data_bridge.serve.cli"]
    assert data_bridge.serve.serve is server.serve
    assert data_bridge.start is server.start
    assert data_bridge.stop is server.stop
