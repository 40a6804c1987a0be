"""Check the GPU image's pinned CUDA set against the registry's metadata, downloading no wheel.

``python -m scripts.gpu_pins`` reads the pins from docker/worker-gpu.Dockerfile (its ARGs) and
the pyannote.audio pin from pyproject.toml, asks pip for the metadata of each pinned package
(``pip install --dry-run --no-deps --report``: PyPI serves the metadata on its own, so no
wheel is fetched) and checks that every requirement one of them has on another is met by the
other's pin. It also reports what PyPI's own torch wheel of that version asks for (its
``nvidia-*`` packages say which CUDA it was built for), which is why the image takes torch
from PyTorch's cu128 index instead. Needs a registry; prints a table, exits 1 on a conflict.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path
from typing import Any

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[1]
DOCKERFILE = REPO / "docker" / "worker-gpu.Dockerfile"
PYPI = "https://pypi.org/simple"
_ARG = re.compile(r"^ARG (?P<name>\w+)_VERSION=(?P<version>\S+)$", re.MULTILINE)


def pinned_set() -> dict[str, str]:
    """{package: version}: the Dockerfile's ARG ..._VERSION pins (torch, torchaudio,
    torchcodec, ctranslate2) and pyproject's pyannote.audio."""
    pins = {m["name"].lower(): m["version"] for m in _ARG.finditer(DOCKERFILE.read_text())}
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    (pyannote,) = (Requirement(r) for r in extras["pyannote"])
    (pin,) = pyannote.specifier
    pins[canonicalize_name(pyannote.name)] = pin.version
    return pins


def metadata(pins: dict[str, str]) -> dict[str, dict[str, Any]]:
    """Each pinned package's core metadata as pip reports it (Linux x86-64, CPython 3.11)."""
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        command = [sys.executable, "-m", "pip", "install", "--dry-run", "--no-deps"]
        command += ["--disable-pip-version-check"]
        command += ["--ignore-installed", "--quiet", "--report", str(report)]
        command += ["--index-url", PYPI, "--only-binary=:all:", "--python-version", "3.11"]
        command += ["--platform", "manylinux_2_28_x86_64", "--target", str(Path(tmp) / "t")]
        command += [f"{name}=={version}" for name, version in pins.items()]
        # PyPI itself: no local indexes, constraints or find-links of this machine's config
        environment = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
        environment |= {"PIP_CONFIG_FILE": os.devnull, "PIP_CERT": os.environ.get("PIP_CERT", "")}
        subprocess.run(command, check=True, env={k: v for k, v in environment.items() if v})
        installs = json.loads(report.read_text())["install"]
    return {canonicalize_name(i["metadata"]["name"]): i["metadata"] for i in installs}


def conflicts(pins: dict[str, str], found: dict[str, dict[str, Any]]) -> list[str]:
    """Requirements of one pinned package on another that the other's pin does not meet."""
    environment = {"extra": "", "python_version": "3.11", "sys_platform": "linux"}
    problems = []
    for name, meta in found.items():
        for line in meta.get("requires_dist", []):
            requirement = Requirement(line)
            target = canonicalize_name(requirement.name)
            if target not in pins or (
                requirement.marker and not requirement.marker.evaluate(environment)
            ):
                continue
            if not requirement.specifier.contains(pins[target], prereleases=True):
                problems.append(f"{name} {pins[name]} needs {line}; pinned {pins[target]}")
    return problems


def cuda_of_pypi_torch(meta: dict[str, Any]) -> set[str]:
    """The CUDA generations (cu12, cu13) PyPI's torch wheel depends on."""
    lines = meta.get("requires_dist", [])
    return {m for line in lines for m in re.findall(r"nvidia-[\w-]+-(cu\d+)", line)}


def main() -> int:
    pins = pinned_set()
    found = metadata(pins)
    for name, version in pins.items():
        requires = [r for r in found[name].get("requires_dist", []) if "extra ==" not in r]
        shown = [r for r in requires if canonicalize_name(Requirement(r).name) in pins]
        print(f"{name}=={version}: {', '.join(shown) or '(nothing on the others)'}")
    print(f"PyPI's torch {pins['torch']} wheel is built for {cuda_of_pypi_torch(found['torch'])}")
    problems = conflicts(pins, found)
    for problem in problems:
        print(f"CONFLICT: {problem}")
    print("consistent" if not problems else f"{len(problems)} conflict(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
