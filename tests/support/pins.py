"""The release of a dependency whose internals telehub touches is the one they were checked on.

An internals test checks names and shapes; a release can keep those and still
change what they do. So each such test also asserts that the installed
release is in the minor series it was written for, and that pyproject.toml's
pin admits no other: an upgrade is a deliberate step that revisits the module
named in the failure.
"""

from __future__ import annotations

import importlib.metadata
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.version import Version

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


def assert_pinned(distribution: str, series: str, *, revisit: str) -> None:
    """``series`` is the minor release checked ("0.8"); ``revisit`` the telehub module(s)
    to read again before changing the pin."""
    installed = Version(importlib.metadata.version(distribution))
    checked = Version(series)
    advice = f"telehub's use of its internals was checked on {distribution} {series}.x: revisit "
    assert installed.release[:2] == checked.release[:2], (
        f"{distribution} {installed} is installed; {advice}{revisit}, then this test"
    )
    pin = _pin(distribution)
    following = f"{checked.major}.{checked.minor + 1}.0"
    assert str(installed) in pin.specifier, f"{distribution} {installed} is not within {pin}"
    assert following not in pin.specifier, (
        f"pyproject.toml's {pin} admits more than {series}.x; {advice}{revisit} first"
    )


def _pin(distribution: str) -> Requirement:
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    for line in project["dependencies"]:
        requirement = Requirement(line)
        if requirement.name == distribution:
            return requirement
    raise AssertionError(f"{distribution} is not a dependency in pyproject.toml")
