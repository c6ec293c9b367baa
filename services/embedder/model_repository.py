"""Writes encoder versions into a Triton model repository (the format ``hearby publish`` emits).

Layout of one version (one Triton *model* per hearby version)::

    <repo>/<version>/config.pbtxt     Triton config: tensors, dynamic batching, instances
    <repo>/<version>/manifest.json    recipe, config, corpus hash, git commit, locality, date
    <repo>/<version>/1/model.py       the Python-backend server code (triton_model.py)
    <repo>/<version>/1/model.pt       the TorchScript encoder, log-mel front end included

The same folder runs under the Triton binary from the nvidia-pytriton wheel here and under
NVIDIA's Triton image in Kubernetes.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from services.common.errors import AlreadyExists, NotFound
from services.common.names import check_version_name

if TYPE_CHECKING:  # only for write_version's signature; readers of the repository (the
    # control plane, clients) must not need torch
    import torch

INPUT_NAME = "audio"
OUTPUT_NAME = "embedding"
MANIFEST_FILE = "manifest.json"
_SERVER_CODE = Path(__file__).with_name("triton_model.py")


@dataclass(frozen=True)
class ModelSpec:
    """What Triton needs to know about one encoder version.

    Args:
        name: Version name (``[a-z0-9][a-z0-9_-]{0,63}``); also the Triton model name.
        sample_rate: Input sample rate in Hz.
        window_samples: Samples per input window (e.g. 3 s x 16 kHz = 48000).
        dimension: Embedding dimension.
        max_batch_size: Largest batch the dynamic batcher forms.
        instances: Model instances (parallel executions) per device: per GPU on a CUDA
            host, on the CPU otherwise; 2 matches a 2-core machine.
        max_queue_delay_us: How long, in microseconds, the batcher may hold a request to
            fill a batch; trades single-request latency for throughput.
        cpu_threads: Intra-op threads per instance on the CPU.
    """

    name: str
    sample_rate: int
    window_samples: int
    dimension: int
    max_batch_size: int = 64
    instances: int = 2
    max_queue_delay_us: int = 2000
    cpu_threads: int = 1

    def __post_init__(self) -> None:
        check_version_name(self.name)


def config_pbtxt(spec: ModelSpec) -> str:
    """The Triton ``config.pbtxt`` for ``spec``."""
    return f"""name: "{spec.name}"
backend: "python"
max_batch_size: {spec.max_batch_size}
input [
  {{ name: "{INPUT_NAME}", data_type: TYPE_FP32, dims: [ {spec.window_samples} ] }}
]
output [
  {{ name: "{OUTPUT_NAME}", data_type: TYPE_FP32, dims: [ {spec.dimension} ] }}
]
dynamic_batching {{
  max_queue_delay_microseconds: {spec.max_queue_delay_us}
}}
# KIND_AUTO keeps one repository portable: Triton places the instances on every GPU when
# the host has CUDA, on the CPU otherwise; model.py follows the kind it is given.
instance_group [ {{ count: {spec.instances}, kind: KIND_AUTO }} ]
parameters {{ key: "device", value: {{ string_value: "auto" }} }}
parameters {{ key: "cpu_threads", value: {{ string_value: "{spec.cpu_threads}" }} }}
# Clients read the version's input rate here, so they need no access to the repository.
parameters {{ key: "sample_rate", value: {{ string_value: "{spec.sample_rate}" }} }}
"""


def write_version(
    repository: Path,
    spec: ModelSpec,
    scripted: torch.jit.ScriptModule,
    manifest: dict[str, Any],
) -> Path:
    """Adds a version to the repository. Never overwrites an existing version.

    Args:
        repository: The model repository folder (created if missing).
        spec: Tensor shapes and serving parameters.
        scripted: The TorchScript encoder: (B, window_samples) -> (B, dimension), unit norm.
        manifest: Provenance written as ``manifest.json``; ``spec`` fields are added.

    Returns:
        The version's folder.

    Raises:
        AlreadyExists: The version exists in the repository.
    """
    target = repository / spec.name
    if target.exists():
        raise AlreadyExists(f"version {spec.name!r} already exists in {repository}")
    staging = repository / f".{spec.name}.staging"
    shutil.rmtree(staging, ignore_errors=True)
    (staging / "1").mkdir(parents=True)
    scripted.save(str(staging / "1" / "model.pt"))
    shutil.copyfile(_SERVER_CODE, staging / "1" / "model.py")
    (staging / "config.pbtxt").write_text(config_pbtxt(spec))
    full_manifest = {
        **manifest,
        "name": spec.name,
        "sample_rate": spec.sample_rate,
        "window_samples": spec.window_samples,
        "dimension": spec.dimension,
    }
    (staging / MANIFEST_FILE).write_text(json.dumps(full_manifest, indent=2, sort_keys=True))
    # Rename last, so Triton and readers never see a half-written version.
    staging.rename(target)
    return target


def read_manifest(repository: Path, name: str) -> dict[str, Any]:
    """A version's manifest.

    Raises:
        NotFound: No such version in the repository.
    """
    path = repository / name / MANIFEST_FILE
    if not path.exists():
        raise NotFound(f"version {name!r} is not in the model repository {repository}")
    return json.loads(path.read_text())


def list_versions(repository: Path) -> list[str]:
    """Names of the versions in the repository, sorted."""
    if not repository.exists():
        return []
    return sorted(
        p.name for p in repository.iterdir() if (p / "config.pbtxt").exists() and p.is_dir()
    )
