"""Readers for the files under deploy/ (Kubernetes manifests, compose file, Dockerfile)."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
COMPOSE = DEPLOY / "compose.yaml"
DOCKERFILE = DEPLOY / "Dockerfile"
PROD_CONFIG = DEPLOY / "kms.production.example.yaml"
CONFIG_MOUNT = "/etc/weightseal/kms.yaml"

# Placeholder values for env entries whose value comes from the cluster (valueFrom).
POD_NAME = "weightseal-kms-0"
ROLE_ID = "00000000-1111-2222-3333-444444444444"


def k8s_docs() -> list[dict[str, Any]]:
    """Every document of every deploy/k8s/*.yaml (kustomization included)."""
    out: list[dict[str, Any]] = []
    for p in sorted(K8S.glob("*.yaml")):
        for d in yaml.safe_load_all(p.read_text(encoding="utf-8")):
            if d is not None:
                d["__file__"] = p.name
                out.append(d)
    return out


def applied_docs() -> list[dict[str, Any]]:
    """The documents kustomization.yaml applies."""
    kust = yaml.safe_load((K8S / "kustomization.yaml").read_text(encoding="utf-8"))
    out: list[dict[str, Any]] = []
    for name in kust["resources"]:
        for d in yaml.safe_load_all((K8S / name).read_text(encoding="utf-8")):
            if d is not None:
                out.append(d)
    return out


def one(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [d for d in docs if d.get("kind") == kind and (name is None or d["metadata"]["name"] == name)]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def workload(docs: list[dict[str, Any]]) -> dict[str, Any]:
    found = [d for d in docs if d.get("kind") in ("Deployment", "StatefulSet")]
    assert len(found) == 1, [d.get("kind") for d in found]
    return found[0]


def kms_container(w: dict[str, Any]) -> dict[str, Any]:
    cs = [c for c in w["spec"]["template"]["spec"]["containers"] if c["name"] == "kms"]
    assert len(cs) == 1
    c: dict[str, Any] = cs[0]
    return c


def secret_templates() -> dict[str, dict[str, Any]]:
    docs = yaml.safe_load_all((K8S / "secrets.example.yaml").read_text(encoding="utf-8"))
    return {d["metadata"]["name"]: d for d in docs if d and d.get("kind") == "Secret"}


def k8s_env(container: dict[str, Any]) -> dict[str, str]:
    """The container's env as load_config sees it in a pod (valueFrom resolved to placeholders
    that exist: fieldRef metadata.name -> the pod name, secretKeyRef -> checked against the
    Secret templates)."""
    secrets = secret_templates()
    env: dict[str, str] = {}
    for e in container.get("env", []):
        if "value" in e:
            env[e["name"]] = str(e["value"])
            continue
        vf = e["valueFrom"]
        if "fieldRef" in vf:
            assert vf["fieldRef"]["fieldPath"] == "metadata.name", vf
            env[e["name"]] = POD_NAME
        elif "secretKeyRef" in vf:
            ref = vf["secretKeyRef"]
            assert ref["name"] in secrets, f"env {e['name']}: Secret {ref['name']} has no template"
            assert ref["key"] in secrets[ref["name"]]["stringData"], f"env {e['name']}: no key {ref['key']}"
            env[e["name"]] = ROLE_ID
        else:
            raise AssertionError(f"unsupported valueFrom {vf}")
    return env


_INTERP = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")


def compose_interpolate(value: str, env: dict[str, str]) -> str:
    """Compose variable interpolation: ${VAR}, ${VAR:-default}, ${VAR:?error}."""

    def sub(m: re.Match[str]) -> str:
        name, op, arg = m.group(1), m.group(2), m.group(3)
        if name in env and (env[name] or op is None or not op.startswith(":")):
            return env[name]
        if op in (":-", "-"):
            return arg or ""
        if op in (":?", "?"):
            raise KeyError(f"compose needs {name}: {arg}")
        return ""

    return _INTERP.sub(sub, value)


def compose() -> dict[str, Any]:
    doc = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    assert isinstance(doc, dict)
    return doc


def compose_env(service: dict[str, Any], shell_env: dict[str, str]) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: compose_interpolate(str(v), shell_env) for k, v in env.items()}


def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    out: list[tuple[str, str]] = []
    buf = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not buf and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        buf += line
        instr, _, rest = buf.partition(" ")
        out.append((instr.upper(), rest.strip()))
        buf = ""
    assert not buf, "dangling line continuation"
    return out


def exec_form(arg: str) -> list[str]:
    """A Dockerfile CMD/ENTRYPOINT argument: JSON exec form, else shell form split like sh."""
    arg = arg.strip()
    if arg.startswith("["):
        v = json.loads(arg)
        assert isinstance(v, list) and all(isinstance(x, str) for x in v)
        return v
    return shlex.split(arg)
