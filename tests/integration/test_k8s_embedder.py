"""The embedder's Kubernetes arguments start a real Triton 2.51 and its probes see it healthy.

Schema validation cannot tell whether `tritonserver` accepts the manifest's flags. This
runs the binary from the nvidia-pytriton wheel (the same server version as the embedder
image's Triton 24.10) with the dev overlay's arguments, the bundled repository and an empty
published one, adding only what the image provides by itself (the backend folder) and the
loopback ports a test needs, then asks what the kubelet's native gRPC probe asks.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path

import grpc
import pytest
import tritonclient.grpc as grpcclient
from grpc_health.v1 import health_pb2, health_pb2_grpc
from tritonclient.utils import InferenceServerException

from hearby.k8s_check import render_python
from services.common.processes import free_port
from services.embedder.model_repository import list_versions
from services.embedder.triton_server import prepare_backends, triton_dist_dir, triton_env

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

ROOT = Path(__file__).resolve().parents[2]
BUNDLED = ROOT / "models"
KEY = "test-embedder-key"


def _embedder_container() -> dict:
    objects = render_python(ROOT / "k8s" / "overlays" / "dev")
    deployment = next(
        o for o in objects if o["kind"] == "Deployment" and o["metadata"]["name"] == "embedder"
    )
    return deployment["spec"]["template"]["spec"]["containers"][0]


def _local_argv(
    container: dict, published: Path, backends: Path, port: int, metrics: int
) -> list[str]:
    """The manifest's command line with paths and ports mapped onto this machine."""
    env = {e["name"]: e["value"] for e in container["env"] if "value" in e}
    env["EMBEDDER_KEY"] = KEY  # from Secret hearby-embedder-key in the cluster
    argv = []
    for arg in container["args"]:
        arg = re.sub(r"\$\((\w+)\)", lambda m: env[m.group(1)], arg)
        arg = arg.replace("/opt/hearby/models", str(BUNDLED)).replace(
            env["MODEL_REPOSITORY"], str(published)
        )
        arg = re.sub(r"^--grpc-port=\d+$", f"--grpc-port={port}", arg)
        arg = re.sub(r"^--metrics-port=\d+$", f"--metrics-port={metrics}", arg)
        argv.append(arg)
    dist = triton_dist_dir()
    return [
        str(dist / "bin" / container["command"][0]),
        *argv,
        f"--backend-directory={backends}",
        f"--cache-directory={dist / 'caches'}",
        "--grpc-address=127.0.0.1",
        "--metrics-address=127.0.0.1",
    ]


def test_the_manifests_triton_command_loads_every_bundled_version_and_reports_serving(tmp_path):
    container = _embedder_container()
    published = tmp_path / "published"
    published.mkdir()
    port, metrics = free_port("127.0.0.1"), free_port("127.0.0.1")
    argv = _local_argv(container, published, prepare_backends(tmp_path / "work"), port, metrics)
    log = tmp_path / "tritonserver.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            argv, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **triton_env()}
        )
    try:
        client = grpcclient.InferenceServerClient(f"127.0.0.1:{port}")
        headers = {"triton-grpc-protocol-hearby-embedder-key": KEY}
        wanted = set(list_versions(BUNDLED))
        deadline = time.monotonic() + 240
        ready: set[str] = set()
        while time.monotonic() < deadline and ready != wanted:
            assert process.poll() is None, log.read_text()[-2000:]
            try:
                index = client.get_model_repository_index(headers=headers)
                ready = {m.name for m in index.models if m.state == "READY"}
            except Exception:  # noqa: BLE001 - not listening yet
                ready = set()
            time.sleep(1)
        assert ready == wanted, log.read_text()[-2000:]

        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=""), timeout=5
            )
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
        # Model management without the manifest's key is refused.
        with pytest.raises(InferenceServerException, match="restricted"):
            client.get_model_repository_index()
    finally:
        process.terminate()
        process.wait(60)
