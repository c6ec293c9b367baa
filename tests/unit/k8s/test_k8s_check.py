"""Tests of hearby/k8s_check.py: `make k8s-check` passes, and it fails on broken manifests."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from hearby import k8s_check
from hearby.k8s_check import K8sCheckError, check_overlay, render_python

ROOT = Path(__file__).resolve().parents[3]
HAS_KUBECTL = shutil.which("kubectl") is not None


def _copy_k8s(tmp_path: Path) -> Path:
    """A copy of k8s/ to break; returns the copy's k8s folder."""
    target = tmp_path / "k8s"
    shutil.copytree(ROOT / "k8s", target)
    return target


def _edit_documents(path: Path, edit) -> None:
    documents = list(yaml.safe_load_all(path.read_text()))
    for doc in documents:
        edit(doc)
    path.write_text(yaml.safe_dump_all(documents, sort_keys=False))


def _deployment(doc: dict, name: str) -> dict | None:
    if doc.get("kind") == "Deployment" and doc["metadata"]["name"] == name:
        return doc
    return None


def test_make_k8s_check_passes_on_every_overlay():
    result = subprocess.run(
        ["make", "-s", "k8s-check", f"PY={sys.executable}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = [line for line in result.stdout.splitlines() if line.startswith("ok ")]
    assert {Path(line.split()[1].rstrip(":")).name for line in lines} == {"dev", "prod"}


@pytest.mark.parametrize("overlay", ["dev", "prod"])
@pytest.mark.skipif(not HAS_KUBECTL, reason="kubectl (with its built-in kustomize) not on PATH")
def test_python_renderer_matches_kubectl_kustomize(overlay):
    directory = ROOT / "k8s" / "overlays" / overlay
    real = k8s_check.render_kustomize(directory, ["kubectl", "kustomize"])
    ours = render_python(directory)

    def index(objects):
        return {k8s_check._identity(obj): obj for obj in objects}

    assert index(ours) == index(real)


@pytest.mark.parametrize("renderer", ["python", "auto"])
def test_check_fails_when_a_deployment_has_a_field_of_the_wrong_type(tmp_path, renderer):
    k8s = _copy_k8s(tmp_path)

    def break_ranker(doc):
        if deployment := _deployment(doc, "ranker"):
            deployment["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] = (
                "fifty-thousand"
            )

    _edit_documents(k8s / "base" / "ranker.yaml", break_ranker)

    code = k8s_check.main(["--renderer", renderer, str(k8s / "overlays" / "prod")])

    assert code == 1


def test_check_names_the_object_and_field_when_a_required_field_is_missing(tmp_path):
    k8s = _copy_k8s(tmp_path)

    def drop_selector(doc):
        if deployment := _deployment(doc, "vectorstore"):
            del deployment["spec"]["selector"]

    _edit_documents(k8s / "base" / "vectorstore.yaml", drop_selector)

    report = check_overlay(k8s / "overlays" / "dev", render_python)

    assert report.problems == ["Deployment/vectorstore: spec: 'selector' is a required property"]


def test_check_fails_on_a_misspelt_field(tmp_path):
    k8s = _copy_k8s(tmp_path)

    def misspell(doc):
        if deployment := _deployment(doc, "feedback"):
            container = deployment["spec"]["template"]["spec"]["containers"][0]
            container["readinesProbe"] = container.pop("readinessProbe")

    _edit_documents(k8s / "base" / "feedback.yaml", misspell)

    report = check_overlay(k8s / "overlays" / "dev", render_python)

    assert len(report.problems) == 1
    assert "'readinesProbe' was unexpected" in report.problems[0]


def test_rules_fail_when_a_container_lacks_a_probe_limits_or_non_root(tmp_path):
    k8s = _copy_k8s(tmp_path)

    def weaken(doc):
        if deployment := _deployment(doc, "catalog"):
            container = deployment["spec"]["template"]["spec"]["containers"][0]
            del container["livenessProbe"]
            del container["resources"]["limits"]
            container["securityContext"]["readOnlyRootFilesystem"] = False
            container["securityContext"]["runAsNonRoot"] = False

    _edit_documents(k8s / "base" / "catalog.yaml", weaken)

    # dev: in prod, tls.yaml's patch of the probes' port would put a livenessProbe back.
    report = check_overlay(k8s / "overlays" / "dev", render_python)

    assert report.problems == [
        "Deployment/catalog container catalog: no livenessProbe",
        "Deployment/catalog container catalog: livenessProbe is not a native gRPC probe on 50054",
        "Deployment/catalog container catalog: no limits for cpu, memory",
        "Deployment/catalog container catalog: runAsNonRoot is not true",
        "Deployment/catalog container catalog: readOnlyRootFilesystem is not true",
    ]


def test_rules_fail_when_a_deployment_has_no_disruption_budget(tmp_path):
    k8s = _copy_k8s(tmp_path)
    path = k8s / "base" / "feedback.yaml"
    documents = [
        doc for doc in yaml.safe_load_all(path.read_text()) if doc["kind"] != "PodDisruptionBudget"
    ]
    path.write_text(yaml.safe_dump_all(documents, sort_keys=False))

    report = check_overlay(k8s / "overlays" / "dev", render_python)

    assert report.problems == ["Deployment/feedback: no PodDisruptionBudget selects it"]


def test_python_renderer_refuses_kustomize_features_it_does_not_implement(tmp_path):
    k8s = _copy_k8s(tmp_path)
    kustomization = k8s / "overlays" / "dev" / "kustomization.yaml"
    spec = yaml.safe_load(kustomization.read_text())
    spec["configMapGenerator"] = [{"name": "extra", "literals": ["A=1"]}]
    kustomization.write_text(yaml.safe_dump(spec))

    with pytest.raises(K8sCheckError, match="configMapGenerator not supported"):
        render_python(k8s / "overlays" / "dev")


def test_python_renderer_fails_when_a_patch_has_no_target(tmp_path):
    k8s = _copy_k8s(tmp_path)
    patch = k8s / "overlays" / "prod" / "autoscaling.yaml"
    patch.write_text(patch.read_text().replace("name: ranker", "name: rankr"))

    with pytest.raises(K8sCheckError, match="HorizontalPodAutoscaler/rankr does not exist"):
        render_python(k8s / "overlays" / "prod")


def test_strategic_merge_merges_containers_by_name_and_deletes_marked_items():
    base = {
        "containers": [
            {
                "name": "a",
                "image": "x:1",
                "args": ["--one", "--two"],
                "volumeMounts": [{"mountPath": "/tmp"}, {"mountPath": "/models"}],
            }
        ],
        "volumes": [{"name": "tmp"}, {"name": "models"}],
    }
    patch = {
        "containers": [
            {
                "name": "a",
                "args": ["--three"],
                "volumeMounts": [{"mountPath": "/models", "$patch": "delete"}],
            },
            {"name": "b", "image": "y:2"},
        ],
        "volumes": [{"name": "models", "$patch": "delete"}],
    }

    merged = k8s_check.strategic_merge(base, patch)

    assert merged == {
        "containers": [
            {
                "name": "a",
                "image": "x:1",
                "args": ["--three"],
                "volumeMounts": [{"mountPath": "/tmp"}],
            },
            {"name": "b", "image": "y:2"},
        ],
        "volumes": [{"name": "tmp"}],
    }
    assert base["volumes"] == [{"name": "tmp"}, {"name": "models"}]  # base left untouched


def test_python_renderer_orders_merged_lists_as_kustomize_does():
    # kustomize puts the patch's items first (in its order), then the base's others; a
    # patch adding a port or touching the last volume must render identically both ways.
    base = {"volumes": [{"name": "x"}, {"name": "a", "emptyDir": {}}, {"name": "y"}]}
    patch = {
        "volumes": [
            {"name": "b"},
            {"name": "a", "emptyDir": {"medium": "Memory"}},
            {"name": "x", "$patch": "delete"},
        ]
    }

    merged = k8s_check.strategic_merge(base, patch)

    assert merged == {
        "volumes": [{"name": "b"}, {"name": "a", "emptyDir": {"medium": "Memory"}}, {"name": "y"}]
    }


# -- the security wiring (API keys, TLS) ---------------------------------------------------


def _pod(doc: dict) -> dict:
    return doc["spec"]["template"]["spec"]


def _config_map(doc: dict) -> dict | None:
    if doc.get("kind") == "ConfigMap" and doc["metadata"]["name"] == "hearby-config":
        return doc["data"]
    return None


def _drop_mount(name: str, volume: str):
    def edit(doc):
        if deployment := _deployment(doc, name):
            container = _pod(deployment)["containers"][0]
            container["volumeMounts"] = [
                m for m in container["volumeMounts"] if m["name"] != volume
            ]

    return edit


def test_check_passes_on_the_overlays_with_the_security_rules(tmp_path):
    # The baseline of the tests below: the untouched copy has no problem at all.
    k8s = _copy_k8s(tmp_path)
    for overlay in ("dev", "prod"):
        assert check_overlay(k8s / "overlays" / overlay, render_python).problems == []


@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_rules_fail_when_a_grpc_service_does_not_mount_the_api_keys(tmp_path, overlay):
    k8s = _copy_k8s(tmp_path)
    _edit_documents(k8s / "base" / "vectorstore.yaml", _drop_mount("vectorstore", "api-keys"))

    report = check_overlay(k8s / "overlays" / overlay, render_python)

    assert report.problems == [
        "Deployment/vectorstore container vectorstore: does not mount Secret hearby-api-keys "
        "(the API keys it accepts)"
    ]


def test_rules_fail_when_the_api_keys_are_mounted_with_subpath(tmp_path):
    k8s = _copy_k8s(tmp_path)

    def subpath(doc):
        if deployment := _deployment(doc, "feedback"):
            for mount in _pod(deployment)["containers"][0]["volumeMounts"]:
                if mount["name"] == "api-keys":
                    mount["mountPath"] = "/etc/hearby/keys/keys.json"
                    mount["subPath"] = "keys.json"

    _edit_documents(k8s / "base" / "feedback.yaml", subpath)

    report = check_overlay(k8s / "overlays" / "prod", render_python)

    assert report.problems == [
        "Deployment/feedback container feedback: mounts Secret hearby-api-keys with subPath at "
        "/etc/hearby/keys/keys.json: a subPath mount never receives the Secret's updates; "
        "mount the Secret as a folder"
    ]


def test_rules_fail_when_the_key_file_is_not_in_the_api_keys_mount(tmp_path):
    k8s = _copy_k8s(tmp_path)

    def elsewhere(doc):
        if (data := _config_map(doc)) is not None:
            data["HEARBY_AUTH_KEYS_FILE"] = "/var/hearby/keys.json"

    _edit_documents(k8s / "base" / "config.yaml", elsewhere)

    report = check_overlay(k8s / "overlays" / "dev", render_python)

    assert report.problems == [
        f"Deployment/{name} container {name}: HEARBY_AUTH_KEYS_FILE=/var/hearby/keys.json is "
        "not in the hearby-api-keys mount (/etc/hearby/keys)"
        for name in ("control", "vectorstore", "ranker", "catalog", "feedback")
    ]


def test_rules_fail_when_a_caller_does_not_mount_the_service_key(tmp_path):
    k8s = _copy_k8s(tmp_path)
    _edit_documents(k8s / "base" / "ingest.yaml", _drop_mount("ingest", "service-key"))

    report = check_overlay(k8s / "overlays" / "prod", render_python)

    assert report.problems == [
        "Deployment/ingest container ingest: does not mount Secret hearby-service-key "
        "(the key it sends to control, vectorstore)"
    ]


def test_rules_fail_when_a_caller_does_not_say_where_its_key_is(tmp_path):
    k8s = _copy_k8s(tmp_path)

    def unset(doc):
        if deployment := _deployment(doc, "ranker"):
            container = _pod(deployment)["containers"][0]
            container["env"] = [e for e in container["env"] if e["name"] != "HEARBY_API_KEY_FILE"]

    _edit_documents(k8s / "base" / "ranker.yaml", unset)

    report = check_overlay(k8s / "overlays" / "dev", render_python)

    assert report.problems == [
        "Deployment/ranker container ranker: HEARBY_API_KEY_FILE is not set to a file of "
        "Secret hearby-service-key"
    ]


def test_callers_come_from_the_network_policies(tmp_path):
    # Admitting the feedback service to the control service makes it a caller, which then
    # needs the service key like every other caller.
    k8s = _copy_k8s(tmp_path)

    def admit_feedback(doc):
        if doc.get("kind") == "NetworkPolicy" and doc["metadata"]["name"] == "control":
            peers = doc["spec"]["ingress"][0]["from"]
            peers.append({"podSelector": {"matchLabels": {"app.kubernetes.io/name": "feedback"}}})

    _edit_documents(k8s / "base" / "control.yaml", admit_feedback)

    report = check_overlay(k8s / "overlays" / "dev", render_python)

    assert report.problems == [
        "Deployment/feedback container feedback: does not mount Secret hearby-service-key "
        "(the key it sends to control)"
    ]


def test_key_rules_do_not_apply_while_authentication_is_off_outside_production(tmp_path):
    k8s = _copy_k8s(tmp_path)

    def off(doc):
        if (data := _config_map(doc)) is not None:
            data["HEARBY_AUTH"] = "off"

    _edit_documents(k8s / "base" / "config.yaml", off)
    _edit_documents(k8s / "base" / "vectorstore.yaml", _drop_mount("vectorstore", "api-keys"))
    _edit_documents(k8s / "base" / "ingest.yaml", _drop_mount("ingest", "service-key"))

    assert check_overlay(k8s / "overlays" / "dev", render_python).problems == []


def test_rules_refuse_authentication_off_in_the_prod_configmap(tmp_path):
    k8s = _copy_k8s(tmp_path)
    config = k8s / "overlays" / "prod" / "config.yaml"
    config.write_text(config.read_text() + '  HEARBY_AUTH: "off"\n')

    report = check_overlay(k8s / "overlays" / "prod", render_python)

    assert report.problems == [
        "ConfigMap/hearby-config: HEARBY_AUTH=off in a production overlay "
        "(every RPC unauthenticated)"
    ]


def test_rules_refuse_authentication_off_in_a_prod_container(tmp_path):
    k8s = _copy_k8s(tmp_path)

    def off(doc):
        if deployment := _deployment(doc, "ranker"):
            _pod(deployment)["containers"][0]["env"].append({"name": "HEARBY_AUTH", "value": "off"})

    _edit_documents(k8s / "base" / "ranker.yaml", off)

    assert check_overlay(k8s / "overlays" / "dev", render_python).problems == []
    assert check_overlay(k8s / "overlays" / "prod", render_python).problems == [
        "Deployment/ranker container ranker: HEARBY_AUTH=off in a production overlay "
        "(every RPC unauthenticated)"
    ]


def test_rules_fail_when_a_tls_server_is_probed_on_its_tls_port(tmp_path):
    k8s = _copy_k8s(tmp_path)

    def probe_grpc_port(doc):
        if deployment := _deployment(doc, "ranker"):
            for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                del _pod(deployment)["containers"][0][probe]

    _edit_documents(k8s / "overlays" / "prod" / "tls.yaml", probe_grpc_port)

    report = check_overlay(k8s / "overlays" / "prod", render_python)

    assert report.problems == [
        f"Deployment/ranker container ranker: {probe} is not a native gRPC probe on the health "
        "port 8086 (HEARBY_RANKER_HEALTH_PORT; TLS is on and the kubelet's gRPC probes cannot "
        "do TLS)"
        for probe in ("startupProbe", "readinessProbe", "livenessProbe")
    ]


def test_rules_fail_when_a_tls_server_has_no_health_port(tmp_path):
    k8s = _copy_k8s(tmp_path)
    config = k8s / "overlays" / "prod" / "config.yaml"
    config.write_text(config.read_text().replace('  HEARBY_FEEDBACK_HEALTH_PORT: "8086"\n', ""))

    report = check_overlay(k8s / "overlays" / "prod", render_python)

    assert report.problems == [
        "Deployment/feedback container feedback: TLS is on (HEARBY_TLS_CERT_FILE, "
        "HEARBY_TLS_KEY_FILE) but HEARBY_FEEDBACK_HEALTH_PORT is not set: the kubelet's gRPC "
        "probes cannot do TLS, so they need the plaintext health port"
    ]


def test_rules_fail_when_a_tls_file_is_not_mounted(tmp_path):
    k8s = _copy_k8s(tmp_path)
    _edit_documents(k8s / "base" / "dashboard.yaml", _drop_mount("dashboard", "tls"))

    report = check_overlay(k8s / "overlays" / "prod", render_python)

    assert report.problems == [
        f"Deployment/dashboard container dashboard: {variable}=/etc/hearby/tls/{file} is not "
        "in any of its mounts"
        for variable, file in (
            ("HEARBY_TLS_CERT_FILE", "tls.crt"),
            ("HEARBY_TLS_KEY_FILE", "tls.key"),
            ("HEARBY_TLS_CA_FILE", "ca.crt"),
        )
    ]


def test_rules_fail_when_prod_turns_tls_off(tmp_path):
    k8s = _copy_k8s(tmp_path)

    def plaintext(doc):
        if (data := _config_map(doc)) is not None:
            for variable in ("HEARBY_TLS_CERT_FILE", "HEARBY_TLS_KEY_FILE", "HEARBY_TLS_CA_FILE"):
                del data[variable]

    _edit_documents(k8s / "overlays" / "prod" / "config.yaml", plaintext)

    report = check_overlay(k8s / "overlays" / "prod", render_python)

    assert report.problems == [
        f"Deployment/{name} container {name}: TLS is off in a production overlay "
        "(HEARBY_TLS_CERT_FILE, HEARBY_TLS_KEY_FILE, HEARBY_TLS_CA_FILE unset)"
        for name in ("control", "vectorstore", "ranker", "catalog", "feedback")
    ]


@pytest.mark.parametrize(
    ("name", "production"),
    [("prod", True), ("prod-eu", True), ("production", True), ("dev", False), ("staging", False)],
)
def test_production_overlays_are_the_folders_named_prod(tmp_path, name, production):
    assert k8s_check.is_production(tmp_path / name) is production
