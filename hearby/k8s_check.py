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
   liveness probes (native gRPC probes for gRPC servers: on the gRPC port, or on the
   plaintext ``HEARBY_<SVC>_HEALTH_PORT`` when the server listens with TLS, since the
   kubelet's gRPC probes cannot do TLS), CPU and memory requests and limits, runs as
   non-root with a read-only root filesystem; every workload has a PodDisruptionBudget;
   references to ConfigMaps, claims, HPA targets and Service selectors resolve; and the
   security wiring (:func:`security_problems`): while ``HEARBY_AUTH`` is not ``off``
   every hearby gRPC server mounts Secret ``hearby-api-keys`` as a folder (no subPath,
   so key changes reach the pod) holding ``HEARBY_AUTH_KEYS_FILE``, every part that
   calls a hearby server (found from the servers' NetworkPolicies) mounts
   ``hearby-service-key`` holding ``HEARBY_API_KEY_FILE``, and the ``HEARBY_TLS_*``
   files lie inside a mount; in a production overlay (folder name ``prod*``)
   ``HEARBY_AUTH=off`` is refused and every hearby gRPC server has TLS on.

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


# The Secrets of hearby's authentication (docs/DEPLOY.md, "Configuration and secrets").
API_KEYS_SECRET = "hearby-api-keys"
SERVICE_KEY_SECRET = "hearby-service-key"
_PROBES = ("startupProbe", "readinessProbe", "livenessProbe")
_TLS_FILES = ("HEARBY_TLS_CERT_FILE", "HEARBY_TLS_KEY_FILE", "HEARBY_TLS_CA_FILE")


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
    item) and come out as kustomize orders them: the patch's items first, in its order,
    then the base's other items; every other list, and every scalar, is replaced.

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
    # kustomize (kyaml) orders the result as the patch's items first, in the patch's order
    # (merged into the base's item of the same key), then the base's other items in order.
    merged = []
    for item in patch:
        if not isinstance(item, dict) or key not in item:
            raise K8sCheckError(f"a patch list item lacks its merge key {key!r}: {item!r}")
        if item.get("$patch") == "delete":
            continue
        old = next((o for o in base if isinstance(o, dict) and o.get(key) == item[key]), None)
        merged.append(_strip_directives(item) if old is None else strategic_merge(old, item))
    named = {item[key] for item in patch}
    return merged + [
        copy.deepcopy(o) for o in base if not (isinstance(o, dict) and o.get(key) in named)
    ]


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


def config_maps(objects: Iterable[Obj]) -> dict[str, dict[str, str]]:
    """Every rendered ConfigMap's data by name (values as strings)."""
    return {
        _identity(obj)[2]: {str(k): str(v) for k, v in (obj.get("data") or {}).items()}
        for obj in objects
        if obj.get("kind") == "ConfigMap"
    }


def container_env(container: Obj, maps: Mapping[str, Mapping[str, str]]) -> dict[str, str | None]:
    """The environment a container starts with, as far as the manifests tell.

    The ``envFrom`` ConfigMaps (with their ``prefix``) in order, then ``env`` (a later
    entry wins, as in the kubelet). A variable whose value comes from a Secret or a field
    is present with the value None; the keys of an ``envFrom`` Secret are unknown and left
    out.
    """
    env: dict[str, str | None] = {}
    for source in container.get("envFrom") or []:
        ref = source.get("configMapRef")
        if ref:
            prefix = source.get("prefix", "")
            env.update({prefix + k: v for k, v in (maps.get(ref.get("name")) or {}).items()})
    for entry in container.get("env") or []:
        env[entry["name"]] = None if "valueFrom" in entry else str(entry.get("value", ""))
    return env


def _is_set(env: Mapping[str, str | None], name: str) -> bool:
    return name in env and env[name] != ""


def _server_tls(env: Mapping[str, str | None]) -> bool:
    """Whether a hearby server with this environment listens with TLS (cert and key set)."""
    return _is_set(env, "HEARBY_TLS_CERT_FILE") and _is_set(env, "HEARBY_TLS_KEY_FILE")


def _health_port_variable(env: Mapping[str, str | None], grpc_port: int, name: str) -> str:
    """``HEARBY_<SVC>_HEALTH_PORT`` of the service whose ``HEARBY_<SVC>_PORT`` is the port."""
    for key, value in env.items():
        if key.endswith("_PORT") and key.count("_") == 2 and value == str(grpc_port):
            return key[: -len("PORT")] + "HEALTH_PORT"
    return f"HEARBY_{name.upper()}_HEALTH_PORT"


def _probe_problems(
    where: str, container: Obj, grpc_port: int, env: Mapping[str, str | None]
) -> list[str]:
    """A gRPC server's probes: native gRPC probes on its gRPC port.

    With TLS on, on its plaintext health port instead (the kubelet's gRPC probes cannot do
    TLS): every probe it has, the startup probe included.
    """

    def port_of(probe: str) -> Any:
        return ((container.get(probe) or {}).get("grpc") or {}).get("port")

    variable = _health_port_variable(env, grpc_port, str(container.get("name")))
    value = env.get(variable) or ""
    if not _server_tls(env):  # plaintext: the gRPC port (or the health port, if set)
        allowed = {grpc_port, int(value)} if value.isdigit() else {grpc_port}
        return [
            f"{where}: {probe} is not a native gRPC probe on {grpc_port}"
            for probe in ("readinessProbe", "livenessProbe")
            if port_of(probe) not in allowed
        ]
    if not value.isdigit():
        return [
            f"{where}: TLS is on (HEARBY_TLS_CERT_FILE, HEARBY_TLS_KEY_FILE) but {variable} "
            "is not set: the kubelet's gRPC probes cannot do TLS, so they need the "
            "plaintext health port"
        ]
    return [
        f"{where}: {probe} is not a native gRPC probe on the health port {value} "
        f"({variable}; TLS is on and the kubelet's gRPC probes cannot do TLS)"
        for probe in _PROBES
        if (probe != "startupProbe" or container.get(probe)) and port_of(probe) != int(value)
    ]


def container_problems(
    workload: Workload, maps: Mapping[str, Mapping[str, str]] | None = None
) -> list[str]:
    """The rules for every container of ``workload`` (probes, resources, security).

    Args:
        workload: The workload.
        maps: The rendered ConfigMaps' data by name (:func:`config_maps`), to tell a TLS
            server's health port from its environment.
    """
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
        if grpc_ports:
            env = container_env(container, maps or {})
            problems += _probe_problems(where, container, grpc_ports[0], env)
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


@dataclass(frozen=True)
class HearbyPart:
    """A container that reads ``HEARBY_*`` settings (a hearby service, worker or the UI)."""

    workload: Workload
    container: Obj
    env: dict[str, str | None]

    @property
    def where(self) -> str:
        """``Kind/name container name``, as the problems name it."""
        return f"{self.workload.kind}/{self.workload.name} container {self.container.get('name')}"

    @property
    def grpc_port(self) -> int | None:
        """The container port named ``grpc``: set for the gRPC servers only."""
        ports = self.container.get("ports") or []
        return next((p["containerPort"] for p in ports if p.get("name") == "grpc"), None)

    @property
    def auth_on(self) -> bool:
        """Whether API keys are required (``HEARBY_AUTH`` is not ``off``; default ``keys``)."""
        return (self.env.get("HEARBY_AUTH") or "keys").strip().lower() != "off"


def hearby_parts(objects: Sequence[Obj]) -> list[HearbyPart]:
    """Every container with a ``HEARBY_*`` variable (Triton, Redis and exporters have none)."""
    maps = config_maps(objects)
    parts = []
    for workload in workloads(objects):
        for container in workload.pod.get("containers") or []:
            env = container_env(container, maps)
            if any(name.startswith("HEARBY_") for name in env):
                parts.append(HearbyPart(workload, container, env))
    return parts


def _admits(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    # In a NetworkPolicy an empty selector ({}) selects every pod of the namespace.
    return selector == {} or selects(selector, labels)


def callers(objects: Sequence[Obj], servers: Sequence[HearbyPart]) -> dict[str, set[str]]:
    """Workload name -> the hearby gRPC servers whose NetworkPolicies admit its pods.

    A workload is a caller of a server when an ingress rule of a NetworkPolicy selecting the
    server's pods admits the workload's pods (a ``podSelector`` peer of the policy's own
    namespace) on the server's gRPC port, or on every port. tests/unit/k8s checks that the
    policies admit exactly the callers found in the code, so these are the clients.
    """
    pods = workloads(objects)
    found: dict[str, set[str]] = {}
    for policy in objects:
        if policy.get("kind") != "NetworkPolicy":
            continue
        namespace, spec = _identity(policy)[1], policy.get("spec") or {}
        for server in servers:
            if server.workload.namespace != namespace:
                continue
            if not _admits(spec.get("podSelector"), server.workload.labels):
                continue
            for rule in spec.get("ingress") or []:
                ports = [p.get("port") for p in rule.get("ports") or []]
                if ports and server.grpc_port not in ports and "grpc" not in ports:
                    continue
                for peer in rule.get("from") or []:
                    if "podSelector" not in peer or "namespaceSelector" in peer:
                        continue
                    for pod in pods:
                        if (
                            pod.namespace == namespace
                            and pod.name != server.workload.name
                            and _admits(peer["podSelector"], pod.labels)
                        ):
                            found.setdefault(pod.name, set()).add(server.workload.name)
    return found


def _inside(path: str, mount: Obj) -> bool:
    """Whether ``path`` is a file the mount provides (under its folder, or the subPath file)."""
    directory = str(mount.get("mountPath", "")).rstrip("/")
    if mount.get("subPath") or mount.get("subPathExpr"):
        return path == directory
    return path.startswith(directory + "/")


def _secret_mount_problems(part: HearbyPart, secret: str, variable: str, why: str) -> list[str]:
    """``part`` mounts Secret ``secret`` as a folder and ``variable`` names a file in it."""
    volumes = {
        v["name"]
        for v in part.workload.pod.get("volumes") or []
        if (v.get("secret") or {}).get("secretName") == secret
    }
    mounts = [m for m in part.container.get("volumeMounts") or [] if m.get("name") in volumes]
    if not mounts:
        return [f"{part.where}: does not mount Secret {secret} ({why})"]
    problems = [
        f"{part.where}: mounts Secret {secret} with subPath at {m['mountPath']}: a subPath "
        "mount never receives the Secret's updates; mount the Secret as a folder"
        for m in mounts
        if m.get("subPath") or m.get("subPathExpr")
    ]
    path = part.env.get(variable)
    if not path:
        problems.append(f"{part.where}: {variable} is not set to a file of Secret {secret}")
    elif not any(_inside(path, m) for m in mounts):
        places = ", ".join(m["mountPath"] for m in mounts)
        problems.append(f"{part.where}: {variable}={path} is not in the {secret} mount ({places})")
    return problems


def security_problems(objects: Sequence[Obj], production: bool = False) -> list[str]:
    """The API key and TLS wiring of hearby's parts (issue #9); empty when it holds.

    While API keys are on (``HEARBY_AUTH`` not ``off``): every hearby gRPC server mounts
    Secret ``hearby-api-keys`` as a folder and ``HEARBY_AUTH_KEYS_FILE`` names a file in it;
    every part that calls a hearby server (:func:`callers`) mounts ``hearby-service-key``
    and ``HEARBY_API_KEY_FILE`` names a file in it. Every ``HEARBY_TLS_*`` file set lies in
    one of the container's mounts. In production: no ConfigMap or container sets
    ``HEARBY_AUTH=off``, and every hearby gRPC server has a certificate, key and CA.

    Args:
        objects: The rendered objects.
        production: Whether the overlay is a production one (:func:`is_production`).
    """
    parts = hearby_parts(objects)
    servers = [p for p in parts if p.grpc_port is not None]
    called = callers(objects, servers)
    problems = []
    for part in parts:
        if part.auth_on and part.grpc_port is not None:
            problems += _secret_mount_problems(
                part, API_KEYS_SECRET, "HEARBY_AUTH_KEYS_FILE", "the API keys it accepts"
            )
        if part.auth_on and part.workload.name in called:
            targets = ", ".join(sorted(called[part.workload.name]))
            problems += _secret_mount_problems(
                part, SERVICE_KEY_SECRET, "HEARBY_API_KEY_FILE", f"the key it sends to {targets}"
            )
        for variable in _TLS_FILES:
            path = part.env.get(variable)
            mounts = part.container.get("volumeMounts") or []
            if path and not any(_inside(path, m) for m in mounts):
                problems.append(f"{part.where}: {variable}={path} is not in any of its mounts")
    if production:
        problems += _production_problems(objects, servers)
    return problems


def _production_problems(objects: Sequence[Obj], servers: Sequence[HearbyPart]) -> list[str]:
    problems = [
        f"ConfigMap/{name}: HEARBY_AUTH=off in a production overlay (every RPC unauthenticated)"
        for name, data in config_maps(objects).items()
        if data.get("HEARBY_AUTH", "").strip().lower() == "off"
    ]
    for workload in workloads(objects):
        for container in workload.pod.get("containers") or []:
            for entry in container.get("env") or []:
                if entry["name"] == "HEARBY_AUTH" and str(entry.get("value", "")).lower() == "off":
                    problems.append(
                        f"{workload.kind}/{workload.name} container {container.get('name')}: "
                        "HEARBY_AUTH=off in a production overlay (every RPC unauthenticated)"
                    )
    for server in servers:
        unset = [v for v in _TLS_FILES if not _is_set(server.env, v)]
        if unset:
            problems.append(
                f"{server.where}: TLS is off in a production overlay ({', '.join(unset)} unset)"
            )
    return problems


def is_production(overlay: Path) -> bool:
    """Whether ``overlay`` is a production overlay: its folder's name starts with ``prod``."""
    return overlay.resolve().name.startswith("prod")


def policy_problems(objects: Sequence[Obj], production: bool = False) -> list[str]:
    """Every rule hearby's manifests must keep (see the module docstring); empty when all hold.

    Args:
        objects: The rendered objects.
        production: Also apply the production rules (:func:`security_problems`).
    """
    maps = config_maps(objects)
    problems = []
    for workload in workloads(objects):
        problems += container_problems(workload, maps)
    return problems + security_problems(objects, production) + reference_problems(objects)


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
        problems = policy_problems(objects, production=is_production(overlay))
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
