"""deploy/: the configs load with the service's own load_config (with the env the manifests set),
the Kubernetes/compose/Dockerfile agree with each other and with KmsConfig, and the command they
run is a real `weightseal` sub-command."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from deploytest_support import (
    COMPOSE,
    CONFIG_MOUNT,
    DEPLOY,
    DOCKERFILE,
    K8S,
    POD_NAME,
    PROD_CONFIG,
    ROLE_ID,
    applied_docs,
    compose,
    compose_env,
    compose_interpolate,
    dockerfile_instructions,
    exec_form,
    k8s_docs,
    k8s_env,
    kms_container,
    one,
    secret_templates,
    workload,
)
from weightseal.kms import cli as kms_cli
from weightseal.kms._config import ENV_PREFIX, KmsConfig, load_config
from weightseal.kms._errors import ConfigError

import weightseal_cli

COMPOSE_SHELL_ENV = {"WEIGHTSEAL_KMS_VAULT_ROLE_ID": ROLE_ID}


def _port(hostport: str) -> int:
    return int(hostport.rpartition(":")[2])


def _configmap_yaml() -> str:
    cm = one(applied_docs(), "ConfigMap", "weightseal-kms-config")
    return str(cm["data"]["kms.yaml"])


def _load_configmap(tmp_path: Path, env: dict[str, str] | None = None) -> KmsConfig:
    p = tmp_path / "kms.yaml"
    p.write_text(_configmap_yaml(), encoding="utf-8")
    c = kms_container(workload(applied_docs()))
    return load_config(p, env=k8s_env(c) if env is None else env)


def _flatten(d: dict[str, Any], prefix: str = "") -> set[str]:
    out: set[str] = set()
    for k, v in d.items():
        if isinstance(v, dict):
            out |= _flatten(v, prefix + k + ".")
        else:
            out.add(prefix + k)
    return out


def _config_fields(cls: Any = KmsConfig, prefix: str = "") -> set[str]:
    out: set[str] = set()
    for f in dataclasses.fields(cls):
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        if dataclasses.is_dataclass(default):
            out |= _config_fields(type(default), prefix + f.name + ".")
        else:
            out.add(prefix + f.name)
    return out


def _argv(container: dict[str, Any]) -> list[str]:
    return list(container.get("command", [])) + list(container.get("args", []))


def _dockerfile_argv() -> list[str]:
    ins = dockerfile_instructions(DOCKERFILE.read_text(encoding="utf-8"))
    last_from = max(i for i, (k, _) in enumerate(ins) if k == "FROM")
    final = ins[last_from:]
    ep = [exec_form(a) for k, a in final if k == "ENTRYPOINT"]
    cmd = [exec_form(a) for k, a in final if k == "CMD"]
    assert len(ep) == 1 and len(cmd) == 1
    return ep[0] + cmd[0]


# ---- configs load with load_config ---------------------------------------------------------------

def test_production_example_loads_with_manifest_env() -> None:
    c = kms_container(workload(applied_docs()))
    cfg = load_config(PROD_CONFIG, env=k8s_env(c))
    assert cfg.dev is False and cfg.tls.insecure is False
    assert cfg.vault.role_id == ROLE_ID and cfg.audit.replica == POD_NAME
    assert cfg.vault.secret_id is None and cfg.vault.secret_id_file == "/etc/weightseal/vault/secret-id"  # noqa: S105
    assert (_port(cfg.listen), _port(cfg.admin_listen)) == (8443, 8444)
    assert cfg.metrics.listen is not None and _port(cfg.metrics.listen) == 9090
    assert cfg.attestation.mock_keys == ()
    # without the role id the manifests inject, the production config is (rightly) refused
    with pytest.raises(ConfigError) as ei:
        load_config(PROD_CONFIG, env={})
    assert ei.value.reason == "config.invalid" and "role_id" in str(ei.value)


def test_configmap_config_loads_with_statefulset_env(tmp_path: Path) -> None:
    cfg = _load_configmap(tmp_path)
    assert cfg.dev is False
    assert cfg.audit.replica == POD_NAME and cfg.vault.role_id == ROLE_ID
    assert cfg.vault.address is not None and cfg.vault.address.startswith("https://")
    assert cfg.keys.signing_key == "/run/weightseal/keys/service-signing.key"


def test_configmap_keys_all_exist_in_kmsconfig_and_match_the_example() -> None:
    fields = _config_fields()
    cm_keys = _flatten(yaml.safe_load(_configmap_yaml()))
    assert cm_keys <= fields, sorted(cm_keys - fields)
    example_keys = _flatten(yaml.safe_load(PROD_CONFIG.read_text(encoding="utf-8")))
    assert example_keys <= fields, sorted(example_keys - fields)
    # the ConfigMap is the example minus what comes from the environment / dev-only settings
    assert example_keys - cm_keys == {"audit.replica", "attestation.mock_keys"}
    assert cm_keys <= example_keys


def test_every_manifest_env_var_is_a_known_override(tmp_path: Path) -> None:
    names: set[str] = set()
    for d in applied_docs():
        if d.get("kind") in ("Deployment", "StatefulSet"):
            spec = d["spec"]["template"]["spec"]
            for c in spec.get("containers", []) + spec.get("initContainers", []):
                names |= {e["name"] for e in c.get("env", [])}
    kms_env = compose_env(compose()["services"]["kms"], COMPOSE_SHELL_ENV)
    names |= set(kms_env)
    assert names, "no environment variables found"
    assert all(n.startswith(ENV_PREFIX) for n in names), sorted(names)
    # each one alone is accepted by load_config (an unknown WEIGHTSEAL_KMS_* would raise)
    for n in sorted(names):
        load_config(PROD_CONFIG, env={"WEIGHTSEAL_KMS_VAULT_ROLE_ID": ROLE_ID, n: "x" if n != "WEIGHTSEAL_KMS_VAULT_ADDRESS"
                                      else "https://v:8200"})
    # and the check bites: a misspelt override in a manifest would stop the service
    bad = dict(k8s_env(kms_container(workload(applied_docs()))), WEIGHTSEAL_KMS_VAULT_ADRESS="https://x:8200")
    with pytest.raises(ConfigError) as ei:
        _load_configmap(tmp_path, env=bad)
    assert ei.value.reason == "config.invalid" and "WEIGHTSEAL_KMS_VAULT_ADRESS" in str(ei.value)


def test_compose_kms_config_loads_with_compose_env() -> None:
    svc = compose()["services"]["kms"]
    mounts = {m.split(":")[1]: m.split(":")[0] for m in svc["volumes"]}
    host = (COMPOSE.parent / mounts[CONFIG_MOUNT]).resolve()
    assert host.is_file()
    env = compose_env(svc, COMPOSE_SHELL_ENV)
    cfg = load_config(host, env=env)
    assert cfg.vault.address == "https://openbao:8200" and cfg.audit.replica == "compose-kms-0"
    assert cfg.vault.role_id == ROLE_ID
    # compose refuses to start without the role id (${VAR:?...})
    with pytest.raises(KeyError):
        compose_env(svc, {})


def test_compose_interpolation_helper() -> None:
    assert compose_interpolate("${A:-d}", {}) == "d"
    assert compose_interpolate("${A:-d}", {"A": "v"}) == "v"
    assert compose_interpolate("x${A}y", {"A": "1"}) == "x1y"
    with pytest.raises(KeyError):
        compose_interpolate("${A:?need it}", {})


# ---- Kubernetes structure ------------------------------------------------------------------------

def test_k8s_yaml_parses_and_every_object_is_named() -> None:
    docs = k8s_docs()
    kinds = sorted(d["kind"] for d in docs)
    for want in ("ConfigMap", "Kustomization", "NetworkPolicy", "PodDisruptionBudget", "Secret", "Service",
                 "ServiceAccount", "StatefulSet"):
        assert want in kinds, want
    for d in docs:
        assert isinstance(d.get("apiVersion"), str) and d["apiVersion"], d["__file__"]
        if d["kind"] != "Kustomization":
            assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", d["metadata"]["name"]), d["metadata"]
    # the Secret templates are documentation, never applied with placeholder values
    assert not any(d.get("kind") == "Secret" for d in applied_docs())
    kust = yaml.safe_load((K8S / "kustomization.yaml").read_text(encoding="utf-8"))
    assert all((K8S / r).is_file() for r in kust["resources"])


def test_k8s_replicas_pdb_and_selectors() -> None:
    docs = applied_docs()
    w = workload(docs)
    labels = w["spec"]["template"]["metadata"]["labels"]
    assert w["spec"]["replicas"] >= 2
    assert w["spec"]["selector"]["matchLabels"].items() <= labels.items()
    pdb = one(docs, "PodDisruptionBudget")
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert 1 <= pdb["spec"]["minAvailable"] < w["spec"]["replicas"]
    for svc in (d for d in docs if d["kind"] == "Service"):
        assert svc["spec"]["selector"].items() <= labels.items(), svc["metadata"]["name"]
    assert one(docs, "Service", w["spec"]["serviceName"])["spec"]["clusterIP"] == "None"


def test_ports_agree_between_config_service_probes_and_metrics(tmp_path: Path) -> None:
    docs = applied_docs()
    cfg = _load_configmap(tmp_path)
    w = workload(docs)
    c = kms_container(w)
    cports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert cports == {"release": _port(cfg.listen), "admin": _port(cfg.admin_listen),
                      "metrics": _port(cfg.metrics.listen or "")}
    svc = one(docs, "Service", "weightseal-kms")
    for p in svc["spec"]["ports"]:
        target = p["targetPort"]
        assert cports[target] if isinstance(target, str) else target in cports.values()
        assert p["port"] == cports[p["name"]]
    assert {p["name"] for p in svc["spec"]["ports"]} == {"release", "admin"}
    ann = w["spec"]["template"]["metadata"]["annotations"]
    assert ann["prometheus.io/scrape"] == "true"
    assert int(ann["prometheus.io/port"]) == cports["metrics"]
    assert ann["prometheus.io/path"] == "/metrics"
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        cmd = c[probe]["exec"]["command"]
        assert cmd[0] == "weightseal-grpc-health", probe
        addr = cmd[cmd.index("--address") + 1]
        assert _port(addr) == cports["release"] and addr.startswith("127.0.0.1:"), probe
        assert cmd[cmd.index("--ca") + 1].startswith("/etc/weightseal/tls/"), probe
    # the Dockerfile exposes the same ports and its HEALTHCHECK runs the same probe
    ins = dockerfile_instructions(DOCKERFILE.read_text(encoding="utf-8"))
    exposed = {int(x) for k, a in ins if k == "EXPOSE" for x in a.split()}
    assert exposed == set(cports.values())
    hc = [a for k, a in ins if k == "HEALTHCHECK"]
    assert len(hc) == 1 and exec_form(hc[0].split("CMD", 1)[1]) == c["readinessProbe"]["exec"]["command"]
    # compose publishes the same container ports and probes the same way
    svc_c = compose()["services"]["kms"]
    published = {int(p.rsplit(":", 1)[1]) for p in svc_c["ports"]}
    assert published == set(cports.values())
    assert svc_c["healthcheck"]["test"] == ["CMD", *c["readinessProbe"]["exec"]["command"]]


def test_volume_mounts_reference_existing_volumes_and_secret_keys() -> None:
    w = workload(applied_docs())
    spec = w["spec"]["template"]["spec"]
    vols = {v["name"]: v for v in spec["volumes"]}
    vols.update({t["metadata"]["name"]: {"pvc": t} for t in w["spec"].get("volumeClaimTemplates", [])})
    secrets = secret_templates()
    for c in spec["containers"] + spec.get("initContainers", []):
        for m in c.get("volumeMounts", []):
            assert m["name"] in vols, f"{c['name']}: mount of unknown volume {m['name']}"
    for name, v in vols.items():
        if "secret" in v:
            s = v["secret"]
            assert s["secretName"] in secrets, name
            keys = set(secrets[s["secretName"]]["stringData"])
            for item in s.get("items", []):
                assert item["key"] in keys, (name, item)
        if "configMap" in v:
            assert v["configMap"]["name"] == "weightseal-kms-config"
    # every volume is used by some container
    used = {m["name"] for c in spec["containers"] + spec.get("initContainers", []) for m in c.get("volumeMounts", [])}
    assert used == set(vols), sorted(set(vols) ^ used)


def _mount_for(path: str, mounts: list[dict[str, Any]]) -> dict[str, Any]:
    best = [m for m in mounts if path == m["mountPath"] or path.startswith(m["mountPath"].rstrip("/") + "/")]
    assert best, f"no volume provides {path}"
    return max(best, key=lambda m: len(m["mountPath"]))


def test_every_file_the_config_names_is_provided_by_a_mount(tmp_path: Path) -> None:
    cfg = _load_configmap(tmp_path)
    w = workload(applied_docs())
    spec = w["spec"]["template"]["spec"]
    c = kms_container(w)
    mounts = c["volumeMounts"]
    vols = {v["name"]: v for v in spec["volumes"]}
    secrets = secret_templates()
    init_cmd = " ".join(" ".join(ic.get("command", []) + ic.get("args", [])) for ic in spec.get("initContainers", []))
    files = [cfg.tls.cert, cfg.tls.key, cfg.tls.client_ca, cfg.vault.ca_cert, cfg.vault.secret_id_file,
             cfg.keys.signing_key, cfg.keys.nonce_secret]
    for f in files:
        assert f is not None
        m = _mount_for(f, mounts)
        rel = f[len(m["mountPath"]):].lstrip("/")
        v = vols.get(m["name"])
        if v is not None and "secret" in v:
            s = v["secret"]
            names = [i["path"] for i in s["items"]] if "items" in s else list(secrets[s["secretName"]]["stringData"])
            assert rel in names, (f, names)
        elif v is not None and "emptyDir" in v:
            # the service keys: copied in by the init container (which fails if one is missing)
            assert Path(f).name in init_cmd and m["mountPath"] in init_cmd, f
            assert m.get("readOnly") is True
    # the audit directory is a persistent per-pod volume, writable
    am = _mount_for(cfg.audit.path, mounts)
    assert am["name"] in {t["metadata"]["name"] for t in w["spec"]["volumeClaimTemplates"]}
    assert not am.get("readOnly", False)
    # the config file itself comes from the ConfigMap
    cm = _mount_for(CONFIG_MOUNT, mounts)
    assert cm["subPath"] == "kms.yaml" and "configMap" in vols[cm["name"]]


def test_security_context_read_only_root_and_non_root() -> None:
    w = workload(applied_docs())
    spec = w["spec"]["template"]["spec"]
    assert spec["securityContext"]["runAsNonRoot"] is True and spec["securityContext"]["runAsUser"] != 0
    for c in spec["containers"] + spec.get("initContainers", []):
        sc = c["securityContext"]
        assert sc["readOnlyRootFilesystem"] is True, c["name"]
        assert sc["allowPrivilegeEscalation"] is False and sc["capabilities"]["drop"] == ["ALL"], c["name"]
    # writable paths are volumes
    mounts = {m["mountPath"] for m in kms_container(w)["volumeMounts"]}
    assert "/tmp" in mounts and "/var/lib/weightseal/audit" in mounts  # noqa: S108
    assert spec["automountServiceAccountToken"] is False


# ---- the command ---------------------------------------------------------------------------------

def _parse(argv: list[str]) -> Any:
    assert argv[0] == "weightseal", argv
    return weightseal_cli.build_parser().parse_args(argv[1:])


def test_k8s_compose_and_dockerfile_run_the_same_real_serve_command() -> None:
    k8s_argv = _argv(kms_container(workload(applied_docs())))
    docker_argv = _dockerfile_argv()
    compose_argv = [docker_argv[0], *compose()["services"]["kms"]["command"]]  # ENTRYPOINT + compose command
    assert k8s_argv == docker_argv == compose_argv
    args = _parse(k8s_argv)
    assert args.func is kms_cli._cmd_serve
    assert str(args.config) == CONFIG_MOUNT and args.dev is False
    # a wrong sub-command would not parse
    with pytest.raises(SystemExit):
        _parse(["weightseal", "kms", "serv", "--config", CONFIG_MOUNT])


def test_documented_keygen_commands_parse() -> None:
    text = COMPOSE.read_text(encoding="utf-8") + (DEPLOY / "OPERATIONS.md").read_text(encoding="utf-8")
    found = re.findall(r"run --rm kms (kms keygen[^\n`]*)", text)
    assert found
    for cmd in found:
        args = _parse(["weightseal", *cmd.split()])
        assert args.func is kms_cli._cmd_keygen and str(args.config) == CONFIG_MOUNT
    ops = (DEPLOY / "OPERATIONS.md").read_text(encoding="utf-8")
    for line in re.findall(r"^\s*(weightseal (?:kms|audit) [^\n#]*)", ops, flags=re.M):
        argv = line.split()
        argv = [a for a in argv if not (a.startswith("[") or a.endswith("]"))]
        if ">" in argv:
            argv = argv[: argv.index(">")]
        args = _parse(argv)
        assert callable(args.func), line


# ---- Dockerfile ----------------------------------------------------------------------------------

def test_dockerfile_base_user_and_cpu_torch() -> None:
    text = DOCKERFILE.read_text(encoding="utf-8")
    ins = dockerfile_instructions(text)
    froms = [a for k, a in ins if k == "FROM"]
    assert froms and all(re.match(r"python:\$\{PYTHON_VERSION\}-slim\b|python:3\.\d+-slim\b", f) for f in froms), froms
    last_from = max(i for i, (k, _) in enumerate(ins) if k == "FROM")
    users = [a for k, a in ins[last_from:] if k == "USER"]
    assert users, "the final stage sets no USER (would run as root)"
    uid = users[-1].split(":")[0]
    assert uid not in ("0", "root") and (not uid.isdigit() or int(uid) >= 1000), users[-1]
    runs = [a for k, a in ins if k == "RUN"]
    torch_i = next(i for i, r in enumerate(runs) if "torch" in r and "pip install" in r)
    proj_i = next(i for i, r in enumerate(runs) if re.search(r"pip install \.(\s|$)", r))
    assert torch_i < proj_i, "CPU torch must be installed before the project"
    assert "--index-url https://download.pytorch.org/whl/cpu" in runs[torch_i]
    # files the build copies exist in the repository
    for k, a in ins:
        if k == "COPY" and "--from" not in a:
            for src in a.split()[:-1]:
                matches = list(DEPLOY.parent.glob(src))
                assert matches, f"COPY source {src} does not exist"


def test_dockerignore_keeps_secrets_and_venv_out() -> None:
    lines = (DEPLOY / "Dockerfile.dockerignore").read_text(encoding="utf-8").split()
    for want in ("**/.venv", ".git", "deploy/compose/secrets", "deploy/compose/tls"):
        assert want in lines, want
