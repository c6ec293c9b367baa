"""``make k8s-check``: render every Kustomize overlay under ``k8s/overlays`` and check it offline.

For each overlay it

1. renders the manifests: with a real kustomize (``kustomize build``, or the copy built into
   ``kubectl kustomize``) when one is on PATH, else with :func:`render_python`, a small
   renderer of exactly the kustomize features hearby's manifests use (resources,
   namespace, labels, images, replicas, strategic-merge patches with ``$patch: delete``).
   Anything else in a kustomization is refused by name, so the two cannot drift silently;
   a test renders every overlay both ways and compares when kubectl is present;
2. validates every object against the Kubernetes JSON schemas of the ``kubernetes-validate``
   package in strict mode (unknown fields are errors), offline. A kind without a schema (a
   CRD such as a ServiceMonitor or a KEDA ScaledObject) fails the check: hearby's
   manifests use none;
3. checks hearby's own rules (:func:`policy_problems`): every container has readiness and
   liveness probes (native gRPC probes for gRPC servers), CPU and memory requests and
   limits, runs as non-root with a read-only root filesystem; every workload has a
   PodDisruptionBudget; references to ConfigMaps, claims, HPA targets and Service
   selectors resolve.

Usage::

    python -m hearby.k8s_check                      # every overlay, the renderer found
    python -m hearby.k8s_check --renderer python k8s/overlays/dev --out var/k8s
"""

from __future__ import annotations

import argparse
import copy
import functools
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
OVERLAYS = ROOT / "k8s" / "overlays"
# Kubernetes version the schemas are taken from: native gRPC probes are GA since 1.27, and
# 1.33 is a version every major managed offering still supports.
DEFAULT_KUBERNETES_VERSION = "1.33"
RENDERERS = ("auto", "kustomize", "kubectl", "python")

Obj = dict[str, Any]

# Kustomization fields render_python understands; any other is refused by name.
_SUPPORTED_FIELDS = frozenset(
    {"apiVersion", "kind", "resources", "namespace", "labels", "images", "replicas", "patches"}
)
_KUSTOMIZATION_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
_WORKLOADS = frozenset({"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"})
_SCALABLE = frozenset({"Deployment", "StatefulSet", "ReplicaSet"})
_CLUSTER_SCOPED = frozenset(
    {
        "Namespace",
        "ClusterRole",
        "ClusterRoleBinding",
        "CustomResourceDefinition",
        "PersistentVolume",
        "PriorityClass",
        "StorageClass",
    }
)
# Strategic-merge keys of the lists hearby's patches touch (as in the Kubernetes API's
# patchMergeKey); every other list is replaced whole, as for e.g. args or tolerations.
_MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "volumes": "name",
    "env": "name",
    "volumeMounts": "mountPath",
    "imagePullSecrets": "name",
}


class K8sCheckError(Exception):
    """A kustomization cannot be rendered (the message says which file and why)."""


# -- rendering -----------------------------------------------------------------------------


def load_documents(path: Path) -> list[Obj]:
    """Every non-empty YAML document of ``path``.

    Raises:
        K8sCheckError: The file is not YAML, or a document is not a mapping.
    """
    try:
        documents = [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]
    except yaml.YAMLError as exc:
        raise K8sCheckError(f"{path}: not valid YAML: {exc}") from exc
    for doc in documents:
        if not isinstance(doc, dict):
            raise K8sCheckError(f"{path}: a document is a {type(doc).__name__}, not a mapping")
    return documents


def _kustomization(directory: Path) -> tuple[Path, Obj]:
    for name in _KUSTOMIZATION_FILES:
        path = directory / name
        if path.exists():
            documents = load_documents(path)
            if len(documents) != 1:
                raise K8sCheckError(f"{path}: expected one document, found {len(documents)}")
            return path, documents[0]
    raise K8sCheckError(f"{directory}: no kustomization.yaml")


def _identity(obj: Obj) -> tuple[str, str, str]:
    meta = obj.get("metadata") or {}
    return (str(obj.get("kind")), str(meta.get("namespace", "")), str(meta.get("name")))


def render_python(directory: Path) -> list[Obj]:
    """Renders a kustomization the way ``kustomize build`` does, for the features hearby uses.

    Supported: ``resources`` (files and directories with their own kustomization),
    ``patches`` (``path:`` to strategic-merge patches, matched by kind and name; lists
    merged by the Kubernetes merge keys; ``$patch: delete`` on an object or a list item;
    ``null`` removes a field), ``namespace``, ``labels`` (``pairs``, with
    ``includeTemplates``; not ``includeSelectors``), ``images`` (``newName``, ``newTag``,
    ``digest``) and ``replicas``. Transformations apply in kustomize's order: patches,
    namespace, labels, replicas, images.

    Args:
        directory: A folder holding a ``kustomization.yaml``.

    Returns:
        The rendered objects.

    Raises:
        K8sCheckError: An unsupported field, a missing file, a patch without a target, or
            two objects with the same kind, namespace and name.
    """
    path, spec = _kustomization(directory)
    unsupported = sorted(set(spec) - _SUPPORTED_FIELDS)
    if unsupported:
        raise K8sCheckError(
            f"{path}: {', '.join(unsupported)} not supported by hearby's renderer "
            f"(supported: {', '.join(sorted(_SUPPORTED_FIELDS))}); use kustomize, or extend "
            "hearby/k8s_check.py"
        )
    objects = _load_resources(directory, path, spec.get("resources") or [])
    for entry in spec.get("patches") or []:
        objects = _apply_patch_file(directory, path, entry, objects)
    if "namespace" in spec:
        for obj in objects:
            if obj.get("kind") not in _CLUSTER_SCOPED:
                obj.setdefault("metadata", {})["namespace"] = spec["namespace"]
    for entry in spec.get("labels") or []:
        _apply_labels(path, entry, objects)
    for entry in spec.get("replicas") or []:
        for obj in objects:
            if obj.get("kind") in _SCALABLE and obj["metadata"].get("name") == entry["name"]:
                obj.setdefault("spec", {})["replicas"] = int(entry["count"])
    for entry in spec.get("images") or []:
        for container in _containers(objects):
            container["image"] = _retag(container.get("image", ""), entry)
    return objects


def _load_resources(directory: Path, path: Path, entries: Sequence[str]) -> list[Obj]:
    objects: list[Obj] = []
    seen: set[tuple[str, str, str]] = set()
    for entry in entries:
        target = (directory / entry).resolve()
        if target.is_dir():
            loaded = render_python(target)
        elif target.is_file():
            loaded = load_documents(target)
        else:
            raise K8sCheckError(f"{path}: resource {entry} does not exist")
        for obj in loaded:
            identity = _identity(obj)
            if identity in seen:
                raise K8sCheckError(f"{path}: {'/'.join(identity)} is defined twice")
            seen.add(identity)
            objects.append(obj)
    return objects


def _apply_patch_file(directory: Path, path: Path, entry: Obj, objects: list[Obj]) -> list[Obj]:
    if set(entry) != {"path"}:
        raise K8sCheckError(
            f"{path}: only `patches: - path: FILE` (strategic merge, targets by kind and "
            f"name) is supported, not {sorted(entry)}"
        )
    patch_path = directory / entry["path"]
    if not patch_path.is_file():
        raise K8sCheckError(f"{path}: patch {entry['path']} does not exist")
    for patch in load_documents(patch_path):
        kind, name = patch.get("kind"), (patch.get("metadata") or {}).get("name")
        index = next(
            (
                i
                for i, obj in enumerate(objects)
                if obj.get("kind") == kind
                and obj["metadata"].get("name") == name
                and _group(obj) == _group(patch)
            ),
            None,
        )
        if index is None:
            raise K8sCheckError(f"{patch_path}: the patch's target {kind}/{name} does not exist")
        if patch.get("$patch") == "delete":
            objects = objects[:index] + objects[index + 1 :]
        else:
            objects[index] = strategic_merge(objects[index], patch)
    return objects


def _group(obj: Obj) -> str:
    api_version = str(obj.get("apiVersion", ""))
    return api_version.split("/")[0] if "/" in api_version else ""


def strategic_merge(base: Any, patch: Any, field: str = "") -> Any:
    """``patch`` applied to ``base`` as a Kubernetes strategic-merge patch (the subset used).

    Maps merge key by key (``null`` deletes a key, ``$patch: replace`` replaces the map);
    lists named in the merge-key table merge item by item (``$patch: delete`` removes an
    item, new items are appended); every other list, and every scalar, is replaced.

    Args:
        base: The original value (not modified).
        patch: The patch value.
        field: The name of the field both values sit under (chooses the list merge key).

    Returns:
        The merged value.
    """
    if isinstance(patch, dict):
        if patch.get("$patch") == "replace":
            return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
        merged = copy.deepcopy(base) if isinstance(base, dict) else {}
        for key, value in patch.items():
            if key.startswith("$"):
                continue
            if value is None:
                merged.pop(key, None)
            elif key in merged:
                merged[key] = strategic_merge(merged[key], value, key)
            else:
                merged[key] = _strip_directives(value)
        return merged
    if isinstance(patch, list) and isinstance(base, list):
        key = _list_merge_key(field, patch)
        if key is not None:
            return _merge_list(base, patch, key)
    return _strip_directives(patch)


def _list_merge_key(field: str, items: list[Any]) -> str | None:
    if field == "ports":  # container ports merge on containerPort, Service ports on port
        return "containerPort" if any("containerPort" in i for i in items) else "port"
    return _MERGE_KEYS.get(field)


def _merge_list(base: list[Any], patch: list[Any], key: str) -> list[Any]:
    merged = [copy.deepcopy(item) for item in base]
    for item in patch:
        if not isinstance(item, dict) or key not in item:
            raise K8sCheckError(f"a patch list item lacks its merge key {key!r}: {item!r}")
        position = next((i for i, old in enumerate(merged) if old.get(key) == item[key]), None)
        if item.get("$patch") == "delete":
            if position is not None:
                del merged[position]
        elif position is None:
            merged.append(_strip_directives(item))
        else:
            merged[position] = strategic_merge(merged[position], item)
    return merged


def _strip_directives(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_directives(v) for k, v in value.items() if not k.startswith("$")}
    if isinstance(value, list):
        return [_strip_directives(v) for v in value]
    return value


def _apply_labels(path: Path, entry: Obj, objects: list[Obj]) -> None:
    if entry.get("includeSelectors"):
        raise K8sCheckError(f"{path}: labels with includeSelectors are not supported")
    pairs = {str(k): str(v) for k, v in (entry.get("pairs") or {}).items()}
    for obj in objects:
        obj.setdefault("metadata", {}).setdefault("labels", {}).update(pairs)
        template = _pod_template(obj)
        if entry.get("includeTemplates") and template is not None:
            template.setdefault("metadata", {}).setdefault("labels", {}).update(pairs)


def _retag(image: str, entry: Mapping[str, Any]) -> str:
    name, digest = image.split("@", 1) if "@" in image else (image, "")
    tag = ""
    if ":" in name.rsplit("/", 1)[-1]:
        name, tag = name.rsplit(":", 1)
    if name != entry["name"]:
        return image
    name = entry.get("newName", name)
    if "digest" in entry:
        return f"{name}@{entry['digest']}"
    if "newTag" in entry:
        return f"{name}:{entry['newTag']}"
    return name + (f":{tag}" if tag else "") + (f"@{digest}" if digest else "")


def _pod_template(obj: Obj) -> Obj | None:
    if obj.get("kind") in _WORKLOADS:
        return (obj.get("spec") or {}).get("template")
    if obj.get("kind") == "CronJob":
        return ((obj.get("spec") or {}).get("jobTemplate") or {}).get("spec", {}).get("template")
    return None


def _containers(objects: Iterable[Obj]) -> list[Obj]:
    found = []
    for obj in objects:
        template = _pod_template(obj)
        if template is None:
            continue
        pod = template.get("spec") or {}
        found += [*pod.get("initContainers", []), *pod.get("containers", [])]
    return found


def render_kustomize(directory: Path, command: Sequence[str]) -> list[Obj]:
    """Renders with a real kustomize.

    Args:
        directory: The kustomization's folder.
        command: ``["kustomize", "build"]`` or ``["kubectl", "kustomize"]``.

    Raises:
        K8sCheckError: The command failed (its stderr is quoted).
    """
    result = subprocess.run(
        [*command, str(directory)], capture_output=True, text=True, timeout=120, check=False
    )
    if result.returncode != 0:
        raise K8sCheckError(f"{' '.join(command)} {directory} failed:\n{result.stderr.strip()}")
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc is not None]


def choose_renderer(name: str = "auto") -> tuple[str, Callable[[Path], list[Obj]]]:
    """The renderer to use: a description and a function from an overlay folder to objects.

    Args:
        name: ``kustomize``, ``kubectl``, ``python`` or ``auto`` (the first of those found).

    Raises:
        K8sCheckError: The named program is not on PATH.
    """
    if name not in RENDERERS:
        raise K8sCheckError(f"unknown renderer {name!r}; choose from {', '.join(RENDERERS)}")
    commands = {"kustomize": ["kustomize", "build"], "kubectl": ["kubectl", "kustomize"]}
    for candidate in ("kustomize", "kubectl") if name == "auto" else (name,):
        if candidate == "python":
            break
        if shutil.which(commands[candidate][0]):
            command = commands[candidate]
            return " ".join(command), functools.partial(render_kustomize, command=command)
        if name != "auto":
            raise K8sCheckError(f"{candidate} is not on PATH; try --renderer python")
    return "hearby's Python renderer", render_python


# -- checking ------------------------------------------------------------------------------


def schema_problems(objects: Sequence[Obj], kubernetes_version: str) -> list[str]:
    """Each object validated against the Kubernetes JSON schemas (strict: no unknown fields).

    Returns:
        One line per invalid object (kind/name, the field path, the schema's message);
        empty when all are valid.
    """
    import kubernetes_validate  # imported here: only this check needs its 20 MB of schemas

    problems = []
    for obj in objects:
        where = f"{obj.get('kind')}/{(obj.get('metadata') or {}).get('name')}"
        try:
            kubernetes_validate.validate(obj, kubernetes_version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            path = ".".join(str(p) for p in exc.path) or "(root)"
            problems.append(f"{where}: {path}: {exc.message}")
        except kubernetes_validate.SchemaNotFoundError as exc:
            problems.append(f"{where}: {exc.message} (a CRD? hearby's manifests use none)")
        except (KeyError, TypeError) as exc:  # no apiVersion/kind at all
            problems.append(f"{where}: not a Kubernetes object ({type(exc).__name__}: {exc})")
    return problems


@dataclass(frozen=True)
class Workload:
    """A pod-template owner (Deployment, StatefulSet) and its pod spec."""

    kind: str
    namespace: str
    name: str
    labels: dict[str, str]
    pod: Obj


def workloads(objects: Iterable[Obj]) -> list[Workload]:
    """Every Deployment/StatefulSet/... with its pod template's labels and spec."""
    found = []
    for obj in objects:
        template = _pod_template(obj)
        if template is None:
            continue
        kind, namespace, name = _identity(obj)
        labels = (template.get("metadata") or {}).get("labels") or {}
        found.append(Workload(kind, namespace, name, labels, template.get("spec") or {}))
    return found


def selects(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    """Whether a label selector (``matchLabels`` and ``matchExpressions``) matches ``labels``."""
    if not selector:
        return False
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions") or []:
        present = expression["key"] in labels
        value = labels.get(expression["key"])
        operator, values = expression["operator"], expression.get("values") or []
        matched = {
            "In": present and value in values,
            "NotIn": not present or value not in values,
            "Exists": present,
            "DoesNotExist": not present,
        }[operator]
        if not matched:
            return False
    return True


def container_problems(workload: Workload) -> list[str]:
    """The rules for every container of ``workload`` (probes, resources, security)."""
    problems = []
    pod_security = workload.pod.get("securityContext") or {}
    for container in workload.pod.get("containers") or []:
        where = f"{workload.kind}/{workload.name} container {container.get('name')}"
        for probe in ("readinessProbe", "livenessProbe"):
            if not container.get(probe):
                problems.append(f"{where}: no {probe}")
        grpc_ports = [
            p["containerPort"] for p in container.get("ports") or [] if p.get("name") == "grpc"
        ]
        for probe in ("readinessProbe", "livenessProbe"):
            port = ((container.get(probe) or {}).get("grpc") or {}).get("port")
            if grpc_ports and port not in grpc_ports:
                problems.append(f"{where}: {probe} is not a native gRPC probe on {grpc_ports[0]}")
        resources = container.get("resources") or {}
        for section in ("requests", "limits"):
            missing = {"cpu", "memory"} - set(resources.get(section) or {})
            if missing:
                problems.append(f"{where}: no {section} for {', '.join(sorted(missing))}")
        security = {**pod_security, **(container.get("securityContext") or {})}
        if security.get("runAsNonRoot") is not True:
            problems.append(f"{where}: runAsNonRoot is not true")
        if (container.get("securityContext") or {}).get("readOnlyRootFilesystem") is not True:
            problems.append(f"{where}: readOnlyRootFilesystem is not true")
        if (container.get("securityContext") or {}).get("allowPrivilegeEscalation") is not False:
            problems.append(f"{where}: allowPrivilegeEscalation is not false")
    return problems


def reference_problems(objects: Sequence[Obj]) -> list[str]:
    """References that do not resolve within the rendered objects.

    PodDisruptionBudgets (every workload needs one), HPA targets, Service selectors,
    ConfigMaps and PersistentVolumeClaims. Secrets are not checked: they are created out
    of band on purpose (docs/DEPLOY.md).
    """
    by_kind: dict[str, list[Obj]] = {}
    for obj in objects:
        by_kind.setdefault(str(obj.get("kind")), []).append(obj)
    names = {kind: {_identity(o)[2] for o in objs} for kind, objs in by_kind.items()}
    pods = workloads(objects)
    problems = []
    for workload in pods:
        if not any(
            selects(p["spec"].get("selector"), workload.labels)
            for p in by_kind.get("PodDisruptionBudget", [])
        ):
            problems.append(f"{workload.kind}/{workload.name}: no PodDisruptionBudget selects it")
        problems += _pod_reference_problems(workload, names)
    for hpa in by_kind.get("HorizontalPodAutoscaler", []):
        target = hpa["spec"]["scaleTargetRef"]
        if target["name"] not in names.get(target["kind"], set()):
            hpa_name = hpa["metadata"]["name"]
            problems.append(
                f"HorizontalPodAutoscaler/{hpa_name}: no {target['kind']}/{target['name']}"
            )
    for service in by_kind.get("Service", []):
        selector = service["spec"].get("selector") or {}
        if selector and not any(selects({"matchLabels": selector}, w.labels) for w in pods):
            problems.append(
                f"Service/{service['metadata']['name']}: its selector matches no pod template"
            )
    return problems


def _pod_reference_problems(workload: Workload, names: Mapping[str, set[str]]) -> list[str]:
    problems = []
    where = f"{workload.kind}/{workload.name}"
    for volume in workload.pod.get("volumes") or []:
        claim = (volume.get("persistentVolumeClaim") or {}).get("claimName")
        if claim and claim not in names.get("PersistentVolumeClaim", set()):
            problems.append(
                f"{where}: volume {volume['name']} claims {claim}, which is not defined"
            )
    for container in workload.pod.get("containers") or []:
        refs = [
            e["configMapRef"]["name"] for e in container.get("envFrom") or [] if "configMapRef" in e
        ]
        refs += [
            e["valueFrom"]["configMapKeyRef"]["name"]
            for e in container.get("env") or []
            if "configMapKeyRef" in (e.get("valueFrom") or {})
        ]
        problems += [
            f"{where}: ConfigMap {ref} is not defined"
            for ref in refs
            if ref not in names.get("ConfigMap", set())
        ]
    return problems


def policy_problems(objects: Sequence[Obj]) -> list[str]:
    """Every rule hearby's manifests must keep (see the module docstring); empty when all hold."""
    problems = []
    for workload in workloads(objects):
        problems += container_problems(workload)
    return problems + reference_problems(objects)


@dataclass(frozen=True)
class OverlayReport:
    """What checking one overlay found."""

    overlay: Path
    objects: list[Obj]
    problems: list[str]


def check_overlay(
    overlay: Path,
    render: Callable[[Path], list[Obj]],
    kubernetes_version: str = DEFAULT_KUBERNETES_VERSION,
) -> OverlayReport:
    """Renders ``overlay`` and checks it: schemas, then hearby's rules."""
    try:
        objects = render(overlay)
    except K8sCheckError as exc:
        return OverlayReport(overlay, [], [str(exc)])
    problems = schema_problems(objects, kubernetes_version)
    if not problems:  # the rules assume schema-valid objects
        problems = policy_problems(objects)
    return OverlayReport(overlay, objects, problems)


def find_overlays(root: Path = OVERLAYS) -> list[Path]:
    """Every folder under ``root`` that holds a kustomization, sorted."""
    return sorted(
        p
        for p in root.iterdir()
        if p.is_dir() and any((p / n).exists() for n in _KUSTOMIZATION_FILES)
    )


def write_rendered(report: OverlayReport, out: Path) -> Path:
    """Writes the overlay's rendered objects to ``out/<overlay>.yaml``; returns the path."""
    out.mkdir(parents=True, exist_ok=True)
    target = out / f"{report.overlay.name}.yaml"
    target.write_text(yaml.safe_dump_all(report.objects, sort_keys=False))
    return target


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m hearby.k8s_check`` (``make k8s-check``); 0 when all pass."""
    parser = argparse.ArgumentParser(
        prog="python -m hearby.k8s_check", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "overlays",
        nargs="*",
        type=Path,
        help="overlay folders (default: every one under k8s/overlays)",
    )
    parser.add_argument(
        "--renderer", choices=RENDERERS, default="auto", help="how to render (auto)"
    )
    parser.add_argument(
        "--kubernetes-version",
        default=DEFAULT_KUBERNETES_VERSION,
        help=f"schemas of this version ({DEFAULT_KUBERNETES_VERSION})",
    )
    parser.add_argument(
        "--out", type=Path, help="also write each rendered overlay to OUT/<overlay>.yaml"
    )
    args = parser.parse_args(argv)
    try:
        description, render = choose_renderer(args.renderer)
    except K8sCheckError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    failed = 0
    for overlay in args.overlays or find_overlays():
        report = check_overlay(overlay, render, args.kubernetes_version)
        if args.out and report.objects:
            write_rendered(report, args.out)
        if report.problems:
            failed += 1
            print(f"FAIL {overlay}: {len(report.problems)} problem(s)")
            for problem in report.problems:
                print(f"  {problem}")
        else:
            print(
                f"ok   {overlay}: {len(report.objects)} objects rendered with {description}, "
                f"valid against the Kubernetes {args.kubernetes_version} schemas, rules hold"
            )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
