"""Runs the Triton Inference Server that ships inside the ``nvidia-pytriton`` wheel.

We use the bare ``tritonserver`` binary over hearby's own model repository with explicit
model control (versions load and unload at run time), not PyTriton's Python bindings:
binding a second version of a name through PyTriton kills the server and there is no
unbind (measured, see DESIGN.md). Pitfalls handled here:

- Only the Python backend ships; its stub for the running Python version must sit in the
  backend directory, so we assemble one under ``workdir``.
- With a pyenv Python the stub would load the system libpython unless LD_LIBRARY_PATH starts
  with this interpreter's ``lib/`` folder.
- The stub's embedded interpreter finds its environment through ``python3`` on PATH, so
  this environment's ``bin/`` goes first (it has numpy < 2, which the backend needs).
"""

from __future__ import annotations

import importlib.util
import os
import sys
import sysconfig
from collections.abc import Sequence
from pathlib import Path

import tritonclient.grpc as grpcclient

from services.common.processes import ManagedProcess, MissingDependency, free_port
from services.embedder.connection import KEY_HEADER

INSTALL_HINT = "Install it with `make setup` (it comes with the nvidia-pytriton wheel)."


def triton_dist_dir() -> Path:
    """The ``tritonserver`` folder inside the installed nvidia-pytriton package.

    Raises:
        MissingDependency: nvidia-pytriton is not installed or lacks the server.
    """
    spec = importlib.util.find_spec("pytriton")
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependency(f"nvidia-pytriton is not installed. {INSTALL_HINT}")
    dist = Path(next(iter(spec.submodule_search_locations))) / "tritonserver"
    if not (dist / "bin" / "tritonserver").exists():
        raise MissingDependency(f"no tritonserver binary under {dist}. {INSTALL_HINT}")
    return dist


def prepare_backends(workdir: Path) -> Path:
    """Assembles a backend directory whose Python backend has this interpreter's stub.

    Returns:
        The backend directory to pass as ``--backend-directory``.

    Raises:
        MissingDependency: the wheel has no stub for this Python version.
    """
    dist = triton_dist_dir()
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    stub = dist / "python_backend_stubs" / version / "triton_python_backend_stub"
    if not stub.exists():
        raise MissingDependency(
            f"nvidia-pytriton has no Python backend stub for Python {version} "
            f"(looked for {stub}); use Python 3.11 as the Makefile does."
        )
    python_dir = workdir / "backends" / "python"
    python_dir.mkdir(parents=True, exist_ok=True)
    sources = [stub, *(dist / "backends" / "python").glob("*.*")]
    for source in sources:
        link = python_dir / source.name
        if not link.exists():
            link.symlink_to(source)
    return workdir / "backends"


def triton_env() -> dict[str, str]:
    """Environment for the server so the Python backend stub uses this interpreter."""
    libdir = sysconfig.get_config_var("LIBDIR") or ""
    old_ld = os.environ.get("LD_LIBRARY_PATH", "")
    return {
        "LD_LIBRARY_PATH": ":".join(p for p in (libdir, old_ld) if p),
        "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
    }


# Everything but health and metadata (what probes and readiness checks use) needs the key.
_RESTRICTED = "inference,model-repository,model-config,shared-memory,statistics,trace,logging"


def _restricted(access_key: str) -> list[str]:
    """Triton's header check for ``access_key`` (none without a key).

    The key is on Triton's command line, so users of the same host can read it in the
    process list; Triton reads no other source. Under ``hearby up`` only the stack's own
    user runs there, and in Kubernetes the container is Triton's alone.
    """
    if not access_key:
        return []
    return [f"--grpc-restricted-protocol={_RESTRICTED}:{KEY_HEADER}={access_key}"]


class TritonServer(ManagedProcess):
    """A Triton server over one or more model repositories with explicit model control.

    Triton serves the union of the repositories (``--model-repository`` once per folder),
    so bundled versions (``models/``) and published ones (``var/model_repository``) load
    side by side; a version name must be unique across them. Missing folders are created,
    so a version published into one later is found by a run-time load.

    Args:
        model_repositories: One folder, or several, of ``<model>/config.pbtxt`` +
            ``<model>/1/...``.
        workdir: Scratch folder for the backend directory and the log.
        models: Models to load at start (more load later through the client).
        grpc_port: gRPC port; None picks a free one.
        host: Interface to bind.
        start_timeout: Seconds to wait for readiness (loading models included).
        metrics_port: Prometheus metrics port; None picks a free one.
        access_key: When set, Triton refuses every call but health and metadata unless
            it carries this key in the ``hearby-embedder-key`` header.
    """

    def __init__(
        self,
        model_repositories: Path | Sequence[Path],
        workdir: Path,
        models: Sequence[str] = (),
        grpc_port: int | None = None,
        host: str = "127.0.0.1",
        start_timeout: float = 120.0,
        metrics_port: int | None = None,
        access_key: str = "",
    ) -> None:
        dist = triton_dist_dir()
        backends = prepare_backends(workdir)
        self.model_repositories = (
            [model_repositories] if isinstance(model_repositories, Path) else [*model_repositories]
        )
        for repository in self.model_repositories:
            repository.mkdir(parents=True, exist_ok=True)
        self.grpc_port = grpc_port or free_port(host)
        self.metrics_port = metrics_port or free_port(host)
        self.url = f"{host}:{self.grpc_port}"
        argv = [
            str(dist / "bin" / "tritonserver"),
            *[f"--model-repository={repository}" for repository in self.model_repositories],
            "--model-control-mode=explicit",
            *[f"--load-model={m}" for m in models],
            f"--backend-directory={backends}",
            f"--cache-directory={dist / 'caches'}",
            f"--grpc-address={host}",
            f"--grpc-port={self.grpc_port}",
            "--allow-http=false",
            f"--metrics-address={host}",
            f"--metrics-port={self.metrics_port}",
            # A model that fails to load must not take the server (and the other versions)
            # down; it is reported per model instead.
            "--exit-on-error=false",
            "--strict-readiness=false",
            "--log-verbose=0",
            *_restricted(access_key),
        ]
        client = grpcclient.InferenceServerClient(self.url)
        super().__init__(
            "tritonserver",
            argv,
            workdir / "tritonserver.log",
            ready=lambda: (
                bool(client.is_server_ready()) and all(client.is_model_ready(m) for m in models)
            ),
            env=triton_env(),
            start_timeout=start_timeout,
        )
