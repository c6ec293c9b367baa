"""Invariants of the rendered Kubernetes manifests (k8s/overlays/dev and prod).

Each test reads the rendered objects directly, independently of the rules that
hearby/k8s_check.py enforces, and the network tests derive who calls whom from the code,
so a new client of a service fails here until its NetworkPolicy allows it.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from unittest import mock

import pytest
import yaml

from hearby.k8s_check import choose_renderer, selects

ROOT = Path(__file__).resolve().parents[3]
OVERLAYS = ("dev", "prod")
# The gRPC services and their ports (each services/<svc>/settings.py DEFAULT_PORT; the
# embedder is Triton's 8001).
GRPC_PORTS = {
    "control": 50051,
    "vectorstore": 50052,
    "ranker": 50053,
    "catalog": 50054,
    "feedback": 50055,
    "embedder": 8001,
}
# The gRPC servers that require API keys (all but Triton, which NetworkPolicy guards).
HEARBY_SERVERS = ("control", "vectorstore", "ranker", "catalog", "feedback")
# Every part that reads HEARBY_* settings (the servers, the ingest workers, the dashboard).
HEARBY_PARTS = (*HEARBY_SERVERS, "ingest", "dashboard")
# How code calls each service: the client classes it constructs.
CLIENTS = {
    "control": ("ControlClient", "ExperimentClient"),
    "vectorstore": ("VectorStoreClient",),
    "embedder": ("EmbedderClient", "VersionManager"),
    "ranker": ("RankerClient",),
    "catalog": ("CatalogClient",),
    "feedback": ("FeedbackClient",),
}


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[dict]]:
    _, render = choose_renderer("auto")
    return {name: render(ROOT / "k8s" / "overlays" / name) for name in OVERLAYS}


def _of_kind(objects, kind):
    return {obj["metadata"]["name"]: obj for obj in objects if obj["kind"] == kind}


def _workloads(objects):
    return [obj for obj in objects if obj["kind"] in ("Deployment", "StatefulSet")]


def _containers(objects):
    for workload in _workloads(objects):
        pod = workload["spec"]["template"]["spec"]
        for container in pod["containers"]:
            yield workload, pod, container


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_container_has_probes_requests_limits_and_runs_locked_down(rendered, overlay):
    checked = 0
    for workload, pod, container in _containers(rendered[overlay]):
        where = f"{workload['metadata']['name']}/{container['name']}"
        assert container.get("readinessProbe"), where
        assert container.get("livenessProbe"), where
        for section in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(container["resources"][section]), where
        security = container["securityContext"]
        assert (security.get("runAsNonRoot", pod["securityContext"].get("runAsNonRoot"))) is True
        assert pod["securityContext"]["runAsUser"] != 0, where
        assert security["readOnlyRootFilesystem"] is True, where
        assert security["allowPrivilegeEscalation"] is False, where
        assert security["capabilities"]["drop"] == ["ALL"], where
        checked += 1
    assert checked >= 9


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_grpc_services_use_native_grpc_probes_on_their_port(rendered, overlay):
    # With TLS on (prod) the kubelet's gRPC probes, which cannot do TLS, use each hearby
    # server's plaintext health port (HEARBY_<SVC>_HEALTH_PORT); Triton has no TLS.
    config = _of_kind(rendered[overlay], "ConfigMap")["hearby-config"]["data"]
    deployments = _of_kind(rendered[overlay], "Deployment")
    for name, port in GRPC_PORTS.items():
        container = deployments[name]["spec"]["template"]["spec"]["containers"][0]
        probed = port
        if overlay == "prod" and name in HEARBY_SERVERS:
            probed = int(config[f"HEARBY_{name.upper()}_HEALTH_PORT"])
            assert probed != port
            assert {"name": "health", "containerPort": probed} in container["ports"]
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            assert container[probe]["grpc"] == {"port": probed}, (name, probe)
        service = _of_kind(rendered[overlay], "Service")[name]
        assert service["spec"]["ports"][0]["port"] == port
        assert [p["port"] for p in service["spec"]["ports"]] == [port]  # health not exposed


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_workload_has_a_disruption_budget_that_selects_it(rendered, overlay):
    budgets = _of_kind(rendered[overlay], "PodDisruptionBudget").values()
    for workload in _workloads(rendered[overlay]):
        labels = workload["spec"]["template"]["metadata"]["labels"]
        matching = [b for b in budgets if selects(b["spec"]["selector"], labels)]
        assert len(matching) == 1, workload["metadata"]["name"]


def test_triton_requests_a_gpu_on_gpu_nodes_in_prod_and_none_in_dev(rendered):
    prod = _of_kind(rendered["prod"], "Deployment")["embedder"]["spec"]["template"]["spec"]
    container = prod["containers"][0]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert prod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in prod[
        "tolerations"
    ]
    dev = _of_kind(rendered["dev"], "Deployment")["embedder"]["spec"]["template"]["spec"]
    assert "nvidia.com/gpu" not in dev["containers"][0]["resources"]["limits"]
    assert "nodeSelector" not in dev


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_triton_runs_our_repository_with_explicit_model_control(rendered, overlay):
    deployment = _of_kind(rendered[overlay], "Deployment")["embedder"]
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["tritonserver"]
    assert "--model-control-mode=explicit" in container["args"]
    assert "--model-repository=$(MODEL_REPOSITORY)" in container["args"]
    assert "--metrics-port=8002" in container["args"]
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == "8002"
    repository = {e["name"]: e.get("value") for e in container["env"]}["MODEL_REPOSITORY"]
    if overlay == "prod":
        assert repository.startswith("s3://")
        assert "hearby-models" not in _of_kind(rendered[overlay], "PersistentVolumeClaim")
    else:
        mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
        assert mounts[repository]["readOnly"] is True


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_ranker_and_ingest_are_autoscaled_and_leave_the_count_to_the_autoscaler(rendered, overlay):
    autoscalers = _of_kind(rendered[overlay], "HorizontalPodAutoscaler")
    deployments = _of_kind(rendered[overlay], "Deployment")
    assert set(autoscalers) == {"ranker", "ingest"}
    for name, hpa in autoscalers.items():
        assert hpa["spec"]["scaleTargetRef"] == {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "name": name,
        }
        assert "replicas" not in deployments[name]["spec"]
    assert autoscalers["ranker"]["spec"]["metrics"][0]["resource"]["name"] == "cpu"
    lag = autoscalers["ingest"]["spec"]["metrics"][0]
    assert lag["type"] == "External"
    assert lag["external"]["metric"]["name"] == "hearby_ingest_lag"
    if overlay == "prod":
        assert autoscalers["ranker"]["spec"]["minReplicas"] >= 2
        assert (
            autoscalers["ingest"]["spec"]["maxReplicas"]
            > autoscalers["ingest"]["spec"]["minReplicas"]
        )
    else:
        for hpa in autoscalers.values():
            assert hpa["spec"]["minReplicas"] == hpa["spec"]["maxReplicas"] == 1


def test_the_lag_metric_the_autoscaler_reads_is_the_one_the_adapter_serves_for_our_stream():
    from services.catalog.settings import QueueSettings

    with mock.patch.dict(os.environ, {}, clear=True):
        queue = QueueSettings()
    adapter = yaml.safe_load((ROOT / "k8s" / "prometheus-adapter" / "values.yaml").read_text())
    (rule,) = adapter["rules"]["external"]
    assert rule["name"]["as"] == "hearby_ingest_lag"
    selector = f'stream="{queue.ingest_stream}",group="{queue.ingest_group}"'
    assert selector in rule["seriesQuery"]
    assert selector in rule["metricsQuery"]
    exporter = yaml.safe_load_all((ROOT / "k8s" / "base" / "redis-exporter.yaml").read_text())
    deployment = next(d for d in exporter if d["kind"] == "Deployment")
    env = {
        e["name"]: e.get("value")
        for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert f"db0={queue.ingest_stream}" in env["REDIS_EXPORTER_CHECK_SINGLE_STREAMS"].split(",")


def test_dev_has_single_replicas_and_prod_has_several(rendered):
    dev = _of_kind(rendered["dev"], "Deployment")
    prod = _of_kind(rendered["prod"], "Deployment")
    for name, deployment in dev.items():
        assert deployment["spec"].get("replicas", 1) == 1, name
    for name in ("vectorstore", "catalog", "feedback", "embedder"):
        assert prod[name]["spec"]["replicas"] >= 2, name
    # The lifecycle reconciler must run once: one control service, replaced not rolled.
    assert prod["control"]["spec"]["replicas"] == 1
    assert prod["control"]["spec"]["strategy"] == {"type": "Recreate"}


def _callers_in_code(service: str) -> set[str]:
    """Deployables whose code constructs one of ``service``'s clients."""
    pattern = re.compile(
        r"(?<!class )\b(?:" + "|".join(CLIENTS[service]) + r")(?:\.from_settings)?\("
    )
    callers = set()
    for path in [*(ROOT / "services").rglob("*.py"), *(ROOT / "dashboard").rglob("*.py")]:
        relative = path.relative_to(ROOT).parts
        caller = relative[1] if relative[0] == "services" else relative[0]
        if caller != service and pattern.search(path.read_text()):
            callers.add(caller)
    return callers


def _allowed_pods(policy: dict, port: int) -> set[str]:
    allowed = set()
    for rule in policy["spec"].get("ingress") or []:
        if port not in [p["port"] for p in rule.get("ports") or []]:
            continue
        for peer in rule["from"]:
            labels = (peer.get("podSelector") or {}).get("matchLabels") or {}
            if "app.kubernetes.io/name" in labels and "namespaceSelector" not in peer:
                allowed.add(labels["app.kubernetes.io/name"])
    return allowed


@pytest.mark.parametrize("service", sorted(GRPC_PORTS))
def test_network_policy_admits_exactly_the_callers_found_in_the_code(rendered, service):
    policy = _of_kind(rendered["prod"], "NetworkPolicy")[service]

    assert _allowed_pods(policy, GRPC_PORTS[service]) == _callers_in_code(service)


def test_the_vectorstore_callers_are_the_ranker_ingest_control_and_dashboard():
    # The issue asked for "only the ranker/ingest"; the code also has the control service's
    # backfill and the dashboard's embedding map calling it, and the policy says so.
    assert _callers_in_code("vectorstore") == {"ranker", "ingest", "control", "dashboard"}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_only_the_vectorstore_reaches_milvus_and_everything_else_is_denied(rendered, overlay):
    policies = _of_kind(rendered[overlay], "NetworkPolicy")
    deny = policies["default-deny-ingress"]["spec"]
    assert deny == {"podSelector": {}, "policyTypes": ["Ingress"]}
    milvus = policies["milvus"]["spec"]
    milvus_labels = milvus["podSelector"]["matchLabels"]
    assert milvus_labels == {
        "app.kubernetes.io/name": "milvus",
        "app.kubernetes.io/instance": "milvus",
    }
    foreign = [
        peer["podSelector"]["matchLabels"]["app.kubernetes.io/name"]
        for rule in milvus["ingress"]
        for peer in rule["from"]
        if "podSelector" in peer and peer["podSelector"]["matchLabels"] != milvus_labels
    ]
    assert foreign == ["vectorstore"]
    assert policies["ingest"]["spec"]["ingress"] == []
    # Milvus's own dependencies (chart labels: bitnami etcd, the chart's MinIO) admit Milvus.
    etcd, minio = policies["milvus-etcd"]["spec"], policies["milvus-minio"]["spec"]
    assert selects(
        etcd["podSelector"],
        {"app.kubernetes.io/name": "etcd", "app.kubernetes.io/instance": "milvus"},
    )
    assert selects(minio["podSelector"], {"app": "minio", "release": "milvus"})
    for spec in (etcd, minio):
        peers = [peer["podSelector"] for rule in spec["ingress"] for peer in rule["from"]]
        assert any(selects(peer, milvus_labels) for peer in peers)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_services_read_config_from_the_configmap_and_secrets_by_reference(rendered, overlay):
    objects = rendered[overlay]
    config = _of_kind(objects, "ConfigMap")["hearby-config"]["data"]
    assert config["HEARBY_MILVUS_URI"] == "http://milvus:19530"
    secrets = _of_kind(objects, "Secret")
    # Only dev commits a Secret, and it holds no credential (an in-cluster Redis URL).
    assert set(secrets) == ({"hearby-redis"} if overlay == "dev" else set())
    for workload, _, container in _containers(objects):
        if workload["metadata"]["labels"].get("app.kubernetes.io/name") in GRPC_PORTS:
            refs = [
                e["configMapRef"]["name"]
                for e in container.get("envFrom", [])
                if "configMapRef" in e
            ]
            if container["name"] != "embedder":
                assert refs == ["hearby-config"], container["name"]
        for env in container.get("env", []):
            assert "value" not in env or (
                "PASSWORD" not in env["name"] and "TOKEN" not in env["name"]
            )


def _secret_mounts(deployment: dict) -> dict[str, dict]:
    """Secret name -> its volume mount (with the volume's ``optional``), for container 0."""
    pod = deployment["spec"]["template"]["spec"]
    volumes = {v["name"]: v["secret"] for v in pod.get("volumes", []) if "secret" in v}
    return {
        volumes[m["name"]]["secretName"]: {**m, "optional": volumes[m["name"]].get("optional")}
        for m in pod["containers"][0].get("volumeMounts", [])
        if m["name"] in volumes
    }


def _env(deployment: dict) -> dict[str, str]:
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e.get("value") for e in container.get("env", [])}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_grpc_services_read_api_keys_from_the_secret_mounted_as_a_folder(rendered, overlay):
    config = _of_kind(rendered[overlay], "ConfigMap")["hearby-config"]["data"]
    assert config["HEARBY_AUTH"] == "keys"
    assert config["HEARBY_AUTH_KEYS_FILE"] == "/etc/hearby/keys/keys.json"
    deployments = _of_kind(rendered[overlay], "Deployment")
    for name, deployment in deployments.items():
        mount = _secret_mounts(deployment).get("hearby-api-keys")
        if name not in HEARBY_SERVERS:
            assert mount is None, name  # only the servers hold the key file
            continue
        # A folder, not a subPath (which never sees updates), and required.
        assert mount == {
            "name": mount["name"],
            "mountPath": "/etc/hearby/keys",
            "readOnly": True,
            "optional": None,
        }, name
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        # The keys are a file now, no longer env from the Secret.
        assert all("secretRef" not in e for e in container.get("envFrom", [])), name


def test_the_callers_in_the_code_are_the_parts_that_send_a_service_key(rendered):
    callers = set().union(*(_callers_in_code(s) for s in HEARBY_SERVERS))
    assert callers == {"ranker", "catalog", "control", "ingest", "dashboard"}
    for overlay in OVERLAYS:
        for name, deployment in _of_kind(rendered[overlay], "Deployment").items():
            mount = _secret_mounts(deployment).get("hearby-service-key")
            if name not in callers:
                assert mount is None, name
                continue
            assert mount["mountPath"] == "/etc/hearby/client", name
            assert "subPath" not in mount and mount["optional"] is None, name
            assert _env(deployment)["HEARBY_API_KEY_FILE"] == "/etc/hearby/client/key", name


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_triton_gets_no_hearby_secret(rendered, overlay):
    embedder = _of_kind(rendered[overlay], "Deployment")["embedder"]
    assert not [s for s in _secret_mounts(embedder) if s.startswith("hearby-")]


def test_tls_and_mtls_are_on_in_prod_and_off_in_dev(rendered):
    prod = _of_kind(rendered["prod"], "ConfigMap")["hearby-config"]["data"]
    assert prod["HEARBY_TLS_CERT_FILE"] == "/etc/hearby/tls/tls.crt"
    assert prod["HEARBY_TLS_KEY_FILE"] == "/etc/hearby/tls/tls.key"
    assert prod["HEARBY_TLS_CA_FILE"] == "/etc/hearby/tls/ca.crt"
    assert prod["HEARBY_TLS_MUTUAL"] == "true"
    dev = _of_kind(rendered["dev"], "ConfigMap")["hearby-config"]["data"]
    assert not [name for name in dev if name.startswith("HEARBY_TLS_")]
    for overlay, optional in (("prod", False), ("dev", True)):
        deployments = _of_kind(rendered[overlay], "Deployment")
        for name in HEARBY_PARTS:
            mount = _secret_mounts(deployments[name])["hearby-tls"]
            assert mount["mountPath"] == "/etc/hearby/tls", (overlay, name)
            assert mount["optional"] is optional, (overlay, name)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_dashboard_reads_its_users_from_their_secret(rendered, overlay):
    dashboard = _of_kind(rendered[overlay], "Deployment")["dashboard"]
    mount = _secret_mounts(dashboard)["hearby-dashboard-users"]
    assert mount["mountPath"] == "/etc/hearby/dashboard" and "subPath" not in mount
    assert (
        _env(dashboard)["HEARBY_DASHBOARD_USERS_FILE"]
        == "/etc/hearby/dashboard/dashboard-users.json"
    )


def test_no_key_or_key_file_is_committed_under_k8s():
    key = re.compile(r"hb_[0-9a-f]{8}_[A-Za-z0-9_-]{43}")
    for path in (ROOT / "k8s").rglob("*"):
        if path.is_file():
            text = path.read_text()
            assert not key.search(text) and "secret_sha256" not in text, path


def _settings_classes():
    from dashboard.settings import DashboardSettings
    from services.catalog.settings import CatalogSettings
    from services.common.settings_base import SecuritySettings
    from services.control.settings import ControlSettings
    from services.embedder.settings import EmbedderSettings
    from services.feedback.settings import FeedbackSettings
    from services.ingest.settings import IngestSettings
    from services.ranker.settings import RankerSettings
    from services.vectorstore.settings import VectorStoreSettings

    return [
        SecuritySettings,
        ControlSettings,
        VectorStoreSettings,
        RankerSettings,
        CatalogSettings,
        FeedbackSettings,
        IngestSettings,
        EmbedderSettings,
        DashboardSettings,
    ]


def _env_names(cls) -> set[str]:
    prefix = cls.model_config.get("env_prefix", "")
    names = set()
    for name, field in cls.model_fields.items():
        alias = field.validation_alias
        choices = getattr(alias, "choices", None) or ([alias] if alias else [])
        names |= {str(c).upper() for c in choices} or {f"{prefix}{name}".upper()}
    return names


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_hearby_variable_set_is_read_by_a_settings_class_and_parses(rendered, overlay):
    classes = _settings_classes()
    known = set().union(*(_env_names(cls) for cls in classes))
    config = _of_kind(rendered[overlay], "ConfigMap")["hearby-config"]["data"]
    env_names = {
        env["name"]
        for _, _, container in _containers(rendered[overlay])
        for env in container.get("env", [])
    }
    unknown = sorted(n for n in {*config, *env_names} if n.startswith("HEARBY_") and n not in known)
    assert unknown == []
    with mock.patch.dict(
        os.environ, {**config, "HEARBY_REDIS_URL": "redis://redis:6379/0"}, clear=True
    ):
        for cls in classes:
            cls()  # raises on a value the service would refuse at start


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_image_deployment_and_folder_share_the_service_name(rendered, overlay):
    dockerfile_targets = re.findall(
        r"^FROM base AS (\S+)$", (ROOT / "Dockerfile").read_text(), re.M
    )
    for workload, _, container in _containers(rendered[overlay]):
        name = workload["metadata"]["name"]
        image = container["image"].rsplit(":", 1)[0]
        if "hearby/" not in image:
            continue  # third-party images: redis, redis_exporter
        assert image.endswith(f"hearby/{name}"), (name, image)
        if name == "embedder":
            assert (ROOT / "services" / "embedder" / "Dockerfile").exists()
        else:
            assert name in dockerfile_targets


def test_milvus_values_size_the_parts_that_matter():
    dev = yaml.safe_load((ROOT / "k8s" / "milvus" / "values-dev.yaml").read_text())
    prod = yaml.safe_load((ROOT / "k8s" / "milvus" / "values-prod.yaml").read_text())
    assert dev["cluster"]["enabled"] is False
    assert dev["pulsarv3"]["enabled"] is False and dev["woodpecker"]["enabled"] is True
    assert prod["cluster"]["enabled"] is True
    assert prod["queryNode"]["replicas"] >= 2
    assert prod["queryNode"]["resources"]["limits"]["memory"]
    assert prod["etcd"]["replicaCount"] == 3
    assert prod["image"]["all"]["tag"] == dev["image"]["all"]["tag"]
