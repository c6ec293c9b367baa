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

    report = check_overlay(k8s / "overlays" / "prod", render_python)

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
