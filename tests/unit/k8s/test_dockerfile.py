"""The images install hearby the way `make setup` does, on paper: Dockerfile vs Makefile.

The pins are read from pyproject.toml and the Makefile, so a pin changed in one place and
not in the Dockerfiles fails here.
"""

from __future__ import annotations

import re
import shlex
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
PYTHON_SERVICES = ("control", "vectorstore", "ranker", "catalog", "feedback", "ingest")


def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Dockerfile, continuation lines joined, comments dropped."""
    result: list[tuple[str, str]] = []
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        pending = f"{pending} {line[:-1].strip()}" if line.endswith("\\") else f"{pending} {line}"
        if not line.endswith("\\"):
            keyword, _, rest = pending.strip().partition(" ")
            result.append((keyword.upper(), rest.strip()))
            pending = ""
    return result


def makefile_setup_recipe() -> list[str]:
    """The shell lines of the Makefile's Python-environment recipe ($(STAMP_PY))."""
    lines = (ROOT / "Makefile").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("$(STAMP_PY):"))
    recipe = []
    for line in lines[start + 1 :]:
        if not line.startswith("\t"):
            break
        recipe.append(line.strip())
    return recipe


def pinned(requirement_prefix: str) -> str:
    """The full requirement string pyproject.toml gives for a package, e.g. ``torch==2.13.0``."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return next(r for r in project["dependencies"] if re.match(rf"{requirement_prefix}\b", r))


@pytest.fixture(scope="module")
def base_runs() -> list[str]:
    """The RUN commands of the Dockerfile's base stage, in order."""
    runs, stage = [], ""
    for keyword, arguments in instructions(ROOT / "Dockerfile"):
        if keyword == "FROM":
            stage = arguments.split(" AS ")[-1].strip() if " AS " in arguments else ""
        elif keyword == "RUN" and stage == "base":
            runs.append(arguments)
    return runs


def _index(commands: list[str], needle: str) -> int:
    matches = [i for i, command in enumerate(commands) if needle in command]
    assert matches, f"no command contains {needle!r}"
    return matches[0]


def test_torch_is_installed_first_at_the_version_pyproject_pins(base_runs):
    torch = pinned("torch")  # torch==2.13.0
    setup = makefile_setup_recipe()
    assert f"install -q {torch}" in " ".join(setup)  # the Makefile installs this exact pin
    torch_step = _index(base_runs, f" {torch}")
    project_step = _index(base_runs, "-c requirements.lock")
    assert torch_step < project_step
    assert shlex.split(base_runs[torch_step])[:2] == ["pip", "install"]


def test_the_project_is_installed_with_the_lock_as_constraints_like_make_setup(base_runs):
    setup = " ".join(makefile_setup_recipe())
    assert "install -q -c requirements.lock -e '.[dev]'" in setup
    project = shlex.split(base_runs[_index(base_runs, "-c requirements.lock")])
    assert project == ["pip", "install", "-c", "requirements.lock", "-e", "."]


def test_torchaudio_is_installed_alone_without_deps_at_the_makefiles_version(base_runs):
    setup = " ".join(makefile_setup_recipe())
    (version,) = re.findall(r"--no-deps torchaudio==(\S+)", setup)
    step = _index(base_runs, "torchaudio==")
    assert f"pip install --no-deps torchaudio=={version}" in base_runs[step]
    assert step > _index(base_runs, "-c requirements.lock")


def test_cpu_builds_remove_torchaudios_cuda_extension_libraries_as_make_setup_does(base_runs):
    setup = " ".join(makefile_setup_recipe())
    condition = "torch.version.cuda is None"
    assert condition in setup
    assert "rm -f $(SITE)/torchaudio/lib/*.so" in setup
    step = base_runs[_index(base_runs, "torchaudio/lib/*.so")]
    assert condition in step
    assert "rm -f /opt/venv/lib/python3.11/site-packages/torchaudio/lib/*.so" in step


def test_the_image_runs_the_same_import_check_as_make_setup(base_runs):
    (imports,) = re.findall(r'-c "(import [^"]+)"', " ".join(makefile_setup_recipe()))
    assert any(f'python -c "{imports}"' in run for run in base_runs)


def test_the_python_matches_the_makefiles_and_the_torch_index_defaults_to_cpu():
    makefile = (ROOT / "Makefile").read_text()
    (python,) = re.findall(r"^PYTHON \?= python(\d+\.\d+)$", makefile, re.M)
    args = dict(
        arguments.split("=", 1)
        for keyword, arguments in instructions(ROOT / "Dockerfile")
        if keyword == "ARG" and "=" in arguments
    )
    assert args["PYTHON_IMAGE"].startswith(f"python:{python}-")
    assert args["TORCH_INDEX_URL"] == "https://download.pytorch.org/whl/cpu"


def test_every_python_service_has_a_target_that_runs_its_module_as_a_non_root_user():
    text = (ROOT / "Dockerfile").read_text()
    users = [a for k, a in instructions(ROOT / "Dockerfile") if k == "USER"]
    assert users == ["10001:10001"]
    for service in PYTHON_SERVICES:
        assert (ROOT / "services" / service / "__main__.py").exists()
        target = re.search(rf"^FROM base AS {service}\n(.*?)(?=^FROM |\Z)", text, re.M | re.S)
        assert target, service
        assert f'CMD ["python", "-m", "services.{service}"]' in target.group(1)
    dashboard = re.search(r"^FROM base AS dashboard\n(.*?)(?=^FROM |\Z)", text, re.M | re.S)
    assert dashboard and 'CMD ["python", "-m", "dashboard"]' in dashboard.group(1)


def test_the_embedder_image_is_nvidias_triton_with_our_torch_and_numpy_pins():
    steps = instructions(ROOT / "services" / "embedder" / "Dockerfile")
    args = dict(a.split("=", 1) for k, a in steps if k == "ARG" and "=" in a)
    assert re.fullmatch(r"nvcr\.io/nvidia/tritonserver:\d{2}\.\d{2}-py3", args["TRITON_IMAGE"])
    # 24.10 is Triton 2.51, the server bundled in the nvidia-pytriton wheel hearby pins.
    assert args["TRITON_IMAGE"].endswith(":24.10-py3")
    assert "server 2.51" in (ROOT / "docs" / "DEPENDENCIES.md").read_text()
    assert pinned("nvidia-pytriton") == "nvidia-pytriton==0.7.0"
    (run,) = [a for k, a in steps if k == "RUN"]
    numpy = pinned("numpy").replace(" ", "")  # numpy>=1.26,<2
    assert shlex.split(run) == ["pip", "install", "--no-cache-dir", pinned("torch"), numpy]
    assert ("COPY", "models/ /opt/hearby/models/") in steps
    assert ("USER", "1000:1000") in steps
