"""constraints.txt pins what the suite passed on: every dependency pinned inside pyproject's range, and the
environment running the tests is the pinned one (a fresh machine resolving newer versions fails here by
name, not somewhere deep in a model)."""

from __future__ import annotations

import tomllib
from importlib.metadata import PackageNotFoundError, version

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from support import REPO


def direct_requirements() -> list[Requirement]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    return [Requirement(text) for text in [*project["dependencies"], *project["optional-dependencies"]["dev"]]]


def pins() -> dict[str, str]:
    found = {}
    for line in (REPO / "constraints.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, sep, pinned = line.partition("==")
            assert sep and pinned, f"constraints.txt: {line!r} is not NAME==VERSION"
            found[canonicalize_name(name)] = pinned
    return found


def test_every_dependency_is_pinned_inside_its_range():
    pinned = pins()
    for requirement in direct_requirements():
        name = canonicalize_name(requirement.name)
        assert name in pinned, f"constraints.txt does not pin {requirement.name} (make constraints)"
        assert requirement.specifier.contains(Version(pinned[name]), prereleases=True), \
            f"constraints.txt pins {requirement.name}=={pinned[name]}, outside pyproject's {requirement.specifier}"


def test_the_environment_is_the_pinned_one():
    pinned = pins()
    wrong = []
    for requirement in direct_requirements():
        name = canonicalize_name(requirement.name)
        try:
            installed = version(requirement.name)
        except PackageNotFoundError:
            wrong.append(f"{requirement.name} not installed")
            continue
        if Version(installed) != Version(pinned[name]):
            wrong.append(f"{requirement.name} {installed} installed, {pinned[name]} pinned")
    assert not wrong, "not the tested versions (make install uses -c constraints.txt): " + "; ".join(wrong)
