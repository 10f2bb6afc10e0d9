"""Static checks of the Kubernetes manifests in compose/kubernetes/ (no cluster needed, none is used).

yamllint (Debian package yamllint) lints every file; PyYAML (python3-yaml) parses every document; then each
check_* function verifies one thing kvinit relies on: names, DNS, the secret volume, the rendered-config tmpfs, the
data volume, probes, the stop timing, the security context, the cluster-init Job, the images.

Every check is also run against a mutated copy of the manifests that must make it fail (MUTATIONS below), so no
check can pass vacuously; test_every_check_can_fail keeps every check covered by at least one mutation.
"""
import copy
import posixpath
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
KDIR = ROOT / "compose" / "kubernetes"
OPTIONS_DEFS = (ROOT / "init" / "options.def", ROOT / "node" / "options.def")  # the PID-1 core's, the node's
EXAMPLE_SECRET = "secret.example.yaml"
CREATOR = "statefulset-creator.yaml"
# The TLS variant, a kustomize overlay of the main layout (compose/kubernetes/README.md, "TLS"), beside it: kustomize
# refuses an overlay inside its base's directory. Its files are in the model under these names.
TLS_DIR = ROOT / "compose" / "kubernetes-tls"
TLS_OVERLAY = "../kubernetes-tls/kustomization.yaml"
TLS_SECRET = "../kubernetes-tls/secret-tls.example.yaml"
TLS_KEYS = {"REDIS_TLS_CERT_FILE": "tls.crt", "REDIS_TLS_KEY_FILE": "tls.key", "REDIS_TLS_CA_FILE": "ca.crt"}

IMAGE = "kvinit:latest"
KVINIT = "/usr/bin/kvinit"
IMAGE_ENTRYPOINT = [KVINIT]
IMAGE_CMD = ["node"]

# What kvinit does as root before it starts the server, and what it keeps (compose/kubernetes/README.md):
# CHOWN (data dir, rendered config), DAC_OVERRIDE (rewriting
# nodes.conf in the redis user's /data after an address change), SETUID/SETGID (the switch to redis), SETPCAP
# (emptying the server's bounding set), KILL (signalling the server, a process of another uid).
NODE_CAPS = {"CHOWN", "DAC_OVERRIDE", "KILL", "SETGID", "SETPCAP", "SETUID"}

# kvinit's defaults (README.md, "Options") for the settings the checks read.
DEFAULTS = {
    "REDIS_PORT_NUMBER": "6379",
    "REDIS_CLUSTER_BUS_PORT": "0",
    "REDIS_DATA_DIR": "/data",
    "KVINIT_RENDERED_CONFIG": "/run/kvinit/redis.conf",
    "KVINIT_FAILOVER_TIMEOUT": "5s",
    "KVINIT_STOP_GRACE": "8s",
    "REDIS_CLUSTER_DYNAMIC_IPS": "yes",
    "REDIS_CLUSTER_REPLICAS": "1",
    "REDIS_CLUSTER_NODE_TIMEOUT": "5000",
}
API_VERSIONS = {
    "Secret": "v1",
    "Service": "v1",
    "StatefulSet": "apps/v1",
    "PodDisruptionBudget": "policy/v1",
    "Job": "batch/v1",
}
# Variables kvinit reads that are not options of init/options.def, and the pod's own for $(VAR) expansion.
EXTRA_ENV = {"KVINIT_CONFIG", "KVINIT_ROLE", "REDIS_PASSWORD_FILE", "REDIS_PASSWORD", "REDIS_PORT",
             "REDIS_CLUSTER_NODES", "POD_IP", "POD_NAME", "POD_NAMESPACE"}


# --------------------------------------------------------------------------- loading and helpers

def load_model():
    files = {}
    for path in sorted(KDIR.rglob("*")):
        if path.is_file() and path.suffix in (".yaml", ".yml"):
            files[str(path.relative_to(KDIR))] = list(yaml.safe_load_all(path.read_text()))
    for name in (TLS_OVERLAY, TLS_SECRET):
        files[name] = list(yaml.safe_load_all((KDIR / name).read_text()))
    return {
        "files": files,
        "kustomization": (files.get("kustomization.yaml") or [None])[0],
        "readme": (KDIR / "README.md").read_text(),
    }


@pytest.fixture(scope="module")
def model():
    return load_model()


def resources(m):
    k = m["kustomization"] or {}
    return list(k.get("resources") or [])


def main_docs(m):
    """The documents of the main layout: what kustomization.yaml applies, plus the example Secret."""
    return [d for name in resources(m) + [EXAMPLE_SECRET] for d in m["files"].get(name, []) if isinstance(d, dict)]


def one(m, kind):
    docs = [d for d in main_docs(m) if d.get("kind") == kind]
    assert len(docs) == 1, f"want exactly one {kind} in kustomization.yaml's resources + {EXAMPLE_SECRET}, " \
                           f"found {len(docs)}"
    return docs[0]


def sts(m):
    return one(m, "StatefulSet")


def creator_sts(m):
    docs = [d for d in m["files"].get(CREATOR, []) if isinstance(d, dict) and d.get("kind") == "StatefulSet"]
    assert len(docs) == 1, f"{CREATOR}: want exactly one StatefulSet, found {len(docs)}"
    return docs[0]


def job(m):
    return one(m, "Job")


def svc(m):
    return one(m, "Service")


def pdb(m):
    return one(m, "PodDisruptionBudget")


def secret(m):
    return one(m, "Secret")


def pod_spec(workload):
    return ((workload.get("spec") or {}).get("template") or {}).get("spec") or {}


def pod_labels(workload):
    return (((workload.get("spec") or {}).get("template") or {}).get("metadata") or {}).get("labels") or {}


def all_containers(workload):
    spec = pod_spec(workload)
    return list(spec.get("initContainers") or []) + list(spec.get("containers") or [])


def argv(c):
    """The container's effective command line, with the image's ENTRYPOINT and CMD as Kubernetes applies them."""
    if c.get("command"):
        return list(c["command"]) + list(c.get("args") or [])
    return IMAGE_ENTRYPOINT + list(c["args"] if c.get("args") is not None else IMAGE_CMD)


def only_container(workload, role):
    cs = [c for c in all_containers(workload) if argv(c)[:2] == [KVINIT, role]]
    assert len(cs) == 1, f"{workload['metadata']['name']}: want one container running `kvinit {role}`, " \
                         f"found {[argv(c) for c in all_containers(workload)]}"
    return cs[0]


def node_c(m):
    return only_container(sts(m), "node")


def job_c(m):
    return only_container(job(m), "cluster-init")


def env_entry(c, name):
    for e in c.get("env") or []:
        if e.get("name") == name:
            return e
    return None


def env(c, name):
    """The literal value of a variable, else kvinit's default (None when there is none)."""
    e = env_entry(c, name)
    if e is None:
        return DEFAULTS.get(name)
    assert "value" in e, f"{name}: want a literal value, not {e}"
    return e["value"]


def set_env(c, name, value):
    e = env_entry(c, name)
    if e is None:
        c.setdefault("env", []).append({"name": name, "value": value})
    else:
        e.clear()
        e.update({"name": name, "value": value})


def del_env(c, name):
    c["env"] = [e for e in c.get("env") or [] if e.get("name") != name]


def seconds(value):
    """A kvinit duration ("8s", "500ms", "2m", "1h", a bare number of seconds) in seconds."""
    m = re.fullmatch(r"(\d+)(ms|s|m|h)?", str(value))
    assert m, f"{value!r} is not a kvinit duration"
    return int(m[1]) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[m[2] or "s"]


def truthy(value):
    v = str(value).lower()
    assert v in ("yes", "true", "on", "1", "no", "false", "off", "0"), f"{value!r} is not a kvinit boolean"
    return v in ("yes", "true", "on", "1")


def nodes_list(value):
    return [n for n in re.split(r"[\s,;]+", value or "") if n]


def selects(selector, labels):
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def mount_for(c, volume_name):
    return [vm for vm in c.get("volumeMounts") or [] if vm.get("name") == volume_name]


def volume(workload, name):
    for v in pod_spec(workload).get("volumes") or []:
        if v.get("name") == name:
            return v
    return None


def inside(path, directory):
    return posixpath.dirname(posixpath.normpath(path)) == posixpath.normpath(directory)


def effective_sc(workload, c, key):
    """A securityContext field: the container's, else the pod's."""
    value = (c.get("securityContext") or {}).get(key)
    return value if value is not None else (pod_spec(workload).get("securityContext") or {}).get(key)


def kvinit_env_names():
    text = "".join(p.read_text() for p in OPTIONS_DEFS)
    names = set(re.findall(r'OPT_[A-Z]+\(\s*\w+,\s*"([A-Z_]+)"', text))
    assert len(names) > 20, f"cannot read the options of {OPTIONS_DEFS}"
    return names | EXTRA_ENV


# --------------------------------------------------------------------------- the checks

CHECKS = {}


def check(fn):
    CHECKS[fn.__name__] = fn
    return fn


@check
def check_files_accounted(m):
    """Every manifest is applied by kustomization.yaml, or is the example Secret or the creator variant."""
    k = m["kustomization"]
    assert k and k.get("kind") == "Kustomization", "kustomization.yaml: not a Kustomization"
    listed = resources(m)
    assert len(listed) == len(set(listed)), f"kustomization.yaml lists a resource twice: {listed}"
    for name in listed:
        assert name in m["files"], f"kustomization.yaml lists {name}, which does not exist"
    assert EXAMPLE_SECRET not in listed, \
        f"{EXAMPLE_SECRET} must not be in kustomization.yaml: an apply would put the example password back"
    for name in m["files"]:
        assert name in listed + ["kustomization.yaml", EXAMPLE_SECRET, CREATOR, TLS_OVERLAY, TLS_SECRET], \
            f"{name} is neither in kustomization.yaml nor a known variant: it would go unchecked"
    for name, docs in m["files"].items():
        for d in docs:
            assert isinstance(d, dict), f"{name}: an empty or non-mapping document"
            if name in ("kustomization.yaml", TLS_OVERLAY):
                continue
            kind = d.get("kind")
            assert kind in API_VERSIONS, f"{name}: unexpected kind {kind!r}"
            assert d.get("apiVersion") == API_VERSIONS[kind], \
                f"{name}: {kind} wants apiVersion {API_VERSIONS[kind]}, not {d.get('apiVersion')!r}"
            assert (d.get("metadata") or {}).get("name"), f"{name}: a {kind} without metadata.name"


@check
def check_kinds(m):
    for kind in ("Secret", "Service", "StatefulSet", "PodDisruptionBudget", "Job"):
        one(m, kind)


@check
def check_service(m):
    s, st = svc(m), sts(m)
    spec = s.get("spec") or {}
    assert spec.get("clusterIP") == "None", "the Service must be headless (clusterIP: None)"
    assert spec.get("publishNotReadyAddresses") is True, \
        "publishNotReadyAddresses: true, or the names resolve only once pods are Ready, i.e. never"
    assert selects(spec.get("selector"), pod_labels(st)), \
        f"the Service's selector {spec.get('selector')} does not select the StatefulSet's pods {pod_labels(st)}"
    assert (st.get("spec") or {}).get("serviceName") == s["metadata"]["name"], \
        "the StatefulSet's serviceName must be the headless Service, which gives the pods their stable names"
    c = node_c(m)
    named = {p.get("name"): p.get("containerPort") for p in c.get("ports") or []}
    for p in spec.get("ports") or []:
        assert p.get("targetPort") in named or p.get("targetPort") in named.values(), \
            f"Service port {p} targets no port of the node container {named}"
    assert {p.get("port") for p in spec.get("ports") or []} >= set(named.values()), \
        f"the Service must carry the client and bus ports {sorted(named.values())}"


@check
def check_statefulset_shape(m):
    st = sts(m)
    spec = st.get("spec") or {}
    assert spec.get("replicas") == 6, f"want 6 replicas, not {spec.get('replicas')}"
    assert spec.get("podManagementPolicy") == "Parallel", \
        "podManagementPolicy: Parallel, since no pod is Ready before all six form the cluster"
    assert selects((spec.get("selector") or {}).get("matchLabels"), pod_labels(st)), \
        "the StatefulSet's selector does not match its own pod template's labels"
    assert len(all_containers(st)) == 1, "one container per pod, kvinit as its PID 1"
    assert argv(node_c(m)) == [KVINIT, "node"], f"the node container runs {argv(node_c(m))}"


@check
def check_job_pods_not_selected(m):
    labels = pod_labels(job(m))
    assert labels, "the Job's pod has no labels"
    assert not selects((svc(m).get("spec") or {}).get("selector"), labels), \
        "the Service selects the cluster-init pod: it would get a node's DNS name"
    assert not selects((pdb(m).get("spec") or {}).get("selector", {}).get("matchLabels"), labels), \
        "the PodDisruptionBudget counts the cluster-init pod"


@check
def check_pod_ip(m):
    c = node_c(m)
    e = env_entry(c, "POD_IP")
    assert e and ((e.get("valueFrom") or {}).get("fieldRef") or {}).get("fieldPath") == "status.podIP", \
        "POD_IP must come from the downward API (fieldRef status.podIP): it is the address kvinit announces"
    assert truthy(env(c, "REDIS_CLUSTER_DYNAMIC_IPS")), "REDIS_CLUSTER_DYNAMIC_IPS=no ignores POD_IP"
    assert env_entry(c, "REDIS_CLUSTER_ANNOUNCE_IP") is None, "REDIS_CLUSTER_ANNOUNCE_IP would override POD_IP"


@check
def check_env(m):
    """Every variable is one kvinit knows, a string without control characters, defined once; $(VAR) references
    name a variable defined earlier in the list (Kubernetes leaves any other reference as it is)."""
    known = kvinit_env_names()
    for workload in (sts(m), creator_sts(m), job(m)):
        for c in all_containers(workload):
            seen = []
            for e in c.get("env") or []:
                name = e.get("name")
                base = name[:-5] if name.endswith("_FILE") and name != "REDIS_PASSWORD_FILE" else name
                assert base in known, f"{c['name']}: kvinit knows no variable {name}"
                assert name not in seen, f"{c['name']}: {name} is set twice"
                if "value" in e:
                    assert isinstance(e["value"], str), f"{c['name']}: {name}'s value must be a string"
                    assert not re.search(r"[\x00-\x1f\x7f]", e["value"]), \
                        f"{c['name']}: {name} holds a control character, which kvinit refuses"
                    for ref in re.findall(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", e["value"]):
                        assert ref in seen, f"{c['name']}: {name} refers to $({ref}), not defined before it"
                seen.append(name)
    c = node_c(m)
    host = env(c, "REDIS_CLUSTER_ANNOUNCE_HOSTNAME")
    if host:
        e = env_entry(c, "POD_NAME")
        assert e and e["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name", "POD_NAME from metadata.name"
        assert host == f"$(POD_NAME).{svc(m)['metadata']['name']}", \
            f"the announced hostname {host!r} is not the pod's stable name"
        assert env(c, "REDIS_CLUSTER_PREFERRED_ENDPOINT_TYPE") in (None, "ip"), "clients get pod IPs"


@check
def check_secret(m):
    s = secret(m)
    keys = set((s.get("data") or {})) | set((s.get("stringData") or {}))
    for workload, c in ((sts(m), node_c(m)), (job(m), job_c(m))):
        name = workload["metadata"]["name"]
        assert env_entry(c, "REDIS_PASSWORD") is None, f"{name}: REDIS_PASSWORD leaks; use the file"
        path = env(c, "REDIS_PASSWORD_FILE")
        assert path, f"{name}: no REDIS_PASSWORD_FILE"
        mounts = [vm for vm in c.get("volumeMounts") or [] if inside(path, vm.get("mountPath", ""))]
        assert len(mounts) == 1, f"{name}: REDIS_PASSWORD_FILE={path} is in no mounted directory"
        vm = mounts[0]
        assert "subPath" not in vm and "subPathExpr" not in vm, \
            f"{name}: the secret is mounted with subPath, so an updated Secret never reaches the pod"
        assert vm.get("readOnly") is True, f"{name}: mount the secret read-only"
        vol = volume(workload, vm["name"]) or {}
        sec = vol.get("secret") or {}
        assert sec.get("secretName") == s["metadata"]["name"], f"{name}: the volume is not the Secret"
        assert "items" not in sec, f"{name}: items would hide the rotation keys the Secret gains later"
        assert posixpath.basename(path) in keys, f"{name}: the Secret has no key {posixpath.basename(path)}"
        mode = sec.get("defaultMode", 0o644)
        assert mode & 0o007 == 0, f"{name}: the secret files are readable by every user (mode {mode:o})"
        for other in all_containers(workload):
            for other_vm in mount_for(other, vm["name"]):
                assert "subPath" not in other_vm and "subPathExpr" not in other_vm, \
                    f"{name}: {other['name']} mounts the secret with subPath"


def json_patch(doc, ops):
    """The JSON patch ops (RFC 6902) kustomize applies, for the ones the overlay uses: add, replace, test."""
    for op in ops:
        *parents, last = [p.replace("~1", "/").replace("~0", "~") for p in op["path"].split("/")[1:]]
        node = doc
        for p in parents:
            node = node[int(p)] if isinstance(node, list) else node.setdefault(p, {})
        key = (len(node) if last == "-" else int(last)) if isinstance(node, list) else last
        if op["op"] == "test":
            assert node[key] == op["value"], f"{TLS_OVERLAY}: test of {op['path']} fails: {node[key]!r}"
        elif op["op"] == "replace":
            assert (key < len(node)) if isinstance(node, list) else key in node, f"replace of a missing {op['path']}"
            node[key] = op["value"]
        elif op["op"] == "add":
            if isinstance(node, list):
                node.insert(key, op["value"])
            else:
                node[key] = op["value"]
        else:
            raise AssertionError(f"{TLS_OVERLAY}: op {op['op']!r} is not one this check applies")
    return doc


def tls_workloads(m):
    """The StatefulSet and the Job as the TLS overlay makes them."""
    k = (m["files"].get(TLS_OVERLAY) or [None])[0]
    assert k and k.get("kind") == "Kustomization", f"{TLS_OVERLAY}: not a Kustomization"
    assert k.get("resources") == ["../kubernetes/"], f"{TLS_OVERLAY}: the overlay applies the main layout, and only it"
    out = {"StatefulSet": copy.deepcopy(sts(m)), "Job": copy.deepcopy(job(m))}
    for p in k.get("patches") or []:
        target = p.get("target") or {}
        doc = out.get(target.get("kind"))
        assert doc is not None and target.get("name") == doc["metadata"]["name"], f"{TLS_OVERLAY}: target {target}"
        json_patch(doc, yaml.safe_load(p["patch"]))
    return out


@check
def check_tls_overlay(m):
    """The TLS overlay: every kvinit container has REDIS_TLS_ENABLED=yes and the certificate, key and CA files in
    the Secret of cert-manager's key names, mounted whole (never subPath: renewals must reach the pod) and read-only,
    readable by the server's group only; the nodes announce their DNS names, which one certificate can cover."""
    known = kvinit_env_names()
    tls_secret = [d for d in m["files"].get(TLS_SECRET, []) if isinstance(d, dict) and d.get("kind") == "Secret"]
    assert len(tls_secret) == 1, f"{TLS_SECRET}: want one Secret"
    keys = set(tls_secret[0].get("stringData") or {}) | set(tls_secret[0].get("data") or {})
    for kind, w in tls_workloads(m).items():
        for c in all_containers(w):
            names = [e["name"] for e in c.get("env") or []]
            assert len(names) == len(set(names)), f"{kind}: a variable is set twice: {names}"
            for n in names:
                assert n in known or n in EXTRA_ENV, f"{kind}: kvinit knows no variable {n}"
            assert env(c, "REDIS_TLS_ENABLED") == "yes", f"{kind}: REDIS_TLS_ENABLED is not yes"
            for var, key in TLS_KEYS.items():
                path = env(c, var)
                assert path and posixpath.basename(path) == key, f"{kind}: {var}={path!r}, want a file {key}"
                assert key in keys, f"{TLS_SECRET}: no key {key}"
                vms = [vm for vm in c.get("volumeMounts") or [] if inside(path, vm.get("mountPath", ""))]
                assert len(vms) == 1, f"{kind}: {var}={path} is in no mounted directory"
                vm = vms[0]
                assert "subPath" not in vm and "subPathExpr" not in vm, \
                    f"{kind}: the TLS Secret is mounted with subPath: a renewed certificate never reaches the pod"
                assert vm.get("readOnly") is True, f"{kind}: mount the TLS Secret read-only"
                sec = (volume(w, vm["name"]) or {}).get("secret") or {}
                assert sec.get("secretName") == tls_secret[0]["metadata"]["name"], f"{kind}: not the TLS Secret"
                assert "items" not in sec, f"{kind}: items on the TLS Secret"
                assert sec.get("defaultMode", 0o644) & 0o007 == 0, f"{kind}: the key is readable by every user"
    node = all_containers(tls_workloads(m)["StatefulSet"])[0]
    assert env(node, "REDIS_CLUSTER_PREFERRED_ENDPOINT_TYPE") == "hostname", \
        "the nodes must announce their names: a certificate cannot name the pod IPs"
    group = (pod_spec(tls_workloads(m)["StatefulSet"]).get("securityContext") or {}).get("fsGroup")
    assert group == 999, f"the server (uid 999, gid 999) reads the certificate files itself: fsGroup 999, not {group}"


@check
def check_rendered_config(m):
    st, c = sts(m), node_c(m)
    directory = posixpath.dirname(env(c, "KVINIT_RENDERED_CONFIG"))
    mounts = [vm for vm in c.get("volumeMounts") or [] if posixpath.normpath(vm.get("mountPath", "")) == directory]
    assert len(mounts) == 1, f"nothing is mounted at {directory}, where kvinit writes the rendered config"
    vol = volume(st, mounts[0]["name"]) or {}
    assert "emptyDir" in vol and (vol["emptyDir"] or {}).get("medium") == "Memory", \
        f"{directory} must be an emptyDir with medium: Memory: the config holds the password's hashes"


@check
def check_data(m):
    st, c = sts(m), node_c(m)
    data_dir = env(c, "REDIS_DATA_DIR")
    mounts = [vm for vm in c.get("volumeMounts") or [] if posixpath.normpath(vm.get("mountPath", "")) == data_dir]
    assert len(mounts) == 1, f"nothing is mounted at REDIS_DATA_DIR={data_dir}"
    templates = {t["metadata"]["name"]: t for t in (st.get("spec") or {}).get("volumeClaimTemplates") or []}
    name = mounts[0]["name"]
    assert name in templates and volume(st, name) is None, \
        f"{data_dir} must be a volumeClaimTemplate (a pod volume named {name} would shadow it)"
    spec = templates[name].get("spec") or {}
    assert "ReadWriteOnce" in (spec.get("accessModes") or []), "each node's data is its own: ReadWriteOnce"
    assert ((spec.get("resources") or {}).get("requests") or {}).get("storage"), "the claim requests no storage"


@check
def check_probes(m):
    c = node_c(m)
    want = {"startupProbe": "--live", "livenessProbe": "--live", "readinessProbe": "--ready"}
    for probe, flag in want.items():
        p = c.get(probe)
        assert p, f"no {probe}"
        command = (p.get("exec") or {}).get("command")
        assert command == [KVINIT, "health", flag], f"{probe} runs {command}, want {[KVINIT, 'health', flag]}"
        assert p.get("timeoutSeconds", 1) >= 3, f"{probe}: timeoutSeconds under 3 (the probe itself waits 2 s)"


@check
def check_grace(m):
    st, c = sts(m), node_c(m)
    grace = pod_spec(st).get("terminationGracePeriodSeconds", 30)
    failover, stop = seconds(env(c, "KVINIT_FAILOVER_TIMEOUT")), seconds(env(c, "KVINIT_STOP_GRACE"))
    assert grace > failover + stop, \
        f"terminationGracePeriodSeconds {grace} must exceed KVINIT_FAILOVER_TIMEOUT + KVINIT_STOP_GRACE " \
        f"({failover} + {stop} s), or the kubelet SIGKILLs kvinit before the handover and the clean stop"
    assert stop >= failover + 1, "KVINIT_STOP_GRACE bounds the failover too: give it the failover time + 1 s"


@check
def check_node_security(m):
    st, c = sts(m), node_c(m)
    sc = c.get("securityContext") or {}
    caps = sc.get("capabilities") or {}
    assert "ALL" in (caps.get("drop") or []), "drop every capability (ALL) and add back only kvinit's"
    assert set(caps.get("add") or []) == NODE_CAPS, \
        f"capabilities.add {sorted(caps.get('add') or [])}, want exactly {sorted(NODE_CAPS)}"
    assert effective_sc(st, c, "runAsUser") == 0, "kvinit must start as root to drop to the redis user"
    assert sc.get("allowPrivilegeEscalation") is False, "allowPrivilegeEscalation: false"
    assert sc.get("readOnlyRootFilesystem") is True, "readOnlyRootFilesystem: true (kvinit writes only its mounts)"
    assert not sc.get("privileged"), "never privileged"
    assert (effective_sc(st, c, "seccompProfile") or {}).get("type") == "RuntimeDefault", "seccomp RuntimeDefault"
    spec = pod_spec(st)
    assert spec.get("automountServiceAccountToken") is False, "kvinit needs no API token"
    for host in ("hostNetwork", "hostPID", "hostIPC"):
        assert not spec.get(host), f"{host} must stay off"


@check
def check_no_service_links(m):
    for workload in (sts(m), job(m)):
        assert pod_spec(workload).get("enableServiceLinks") is False, \
            f"{workload['metadata']['name']}: enableServiceLinks: false, or a Service named redis injects " \
            "REDIS_PORT=tcp://..., which kvinit refuses as the alias of REDIS_PORT_NUMBER"


@check
def check_job_security(m):
    j, c = job(m), job_c(m)
    sc = c.get("securityContext") or {}
    caps = sc.get("capabilities") or {}
    assert "ALL" in (caps.get("drop") or []) and not caps.get("add"), "cluster-init needs no capability"
    assert effective_sc(j, c, "runAsNonRoot") is True and effective_sc(j, c, "runAsUser"), \
        "cluster-init runs as a non-root user"
    assert sc.get("allowPrivilegeEscalation") is False, "allowPrivilegeEscalation: false"
    assert sc.get("readOnlyRootFilesystem") is True, "readOnlyRootFilesystem: true (cluster-init writes nothing)"
    assert (effective_sc(j, c, "seccompProfile") or {}).get("type") == "RuntimeDefault", "seccomp RuntimeDefault"
    assert pod_spec(j).get("automountServiceAccountToken") is False, "cluster-init needs no API token"
    # a non-root user reads the root-owned secret files through the fsGroup and group-read mode
    path = env(c, "REDIS_PASSWORD_FILE")
    vm = [vm for vm in c.get("volumeMounts") or [] if inside(path, vm.get("mountPath", ""))]
    mode = ((volume(j, vm[0]["name"]) if vm else {}) or {}).get("secret", {}).get("defaultMode", 0o644)
    fs_group = (pod_spec(j).get("securityContext") or {}).get("fsGroup")
    assert fs_group is not None and mode & 0o040, \
        f"the non-root cluster-init cannot read the secret: want an fsGroup and a group-readable mode " \
        f"(fsGroup {fs_group}, mode {mode:o})"


@check
def check_redis_nodes(m):
    st, c = sts(m), node_c(m)
    n = (st.get("spec") or {}).get("replicas")
    port = env(c, "REDIS_PORT_NUMBER")
    want = [f"{st['metadata']['name']}-{i}.{(st.get('spec') or {}).get('serviceName')}:{port}" for i in range(n)]
    have = nodes_list(env(c, "REDIS_NODES"))
    assert sorted(have) == sorted(want), f"REDIS_NODES {have}, want the {n} stable names {want}"
    replicas = int(env(c, "REDIS_CLUSTER_REPLICAS"))
    assert n // (replicas + 1) >= 3, f"{n} nodes with {replicas} replicas each give fewer than 3 masters"
    jc = job_c(m)
    assert sorted(nodes_list(env(jc, "REDIS_NODES"))) == sorted(want), "the Job's REDIS_NODES differ from the nodes'"
    for name in ("REDIS_CLUSTER_REPLICAS", "REDIS_CLUSTER_NODE_TIMEOUT", "REDIS_PORT_NUMBER"):
        assert env(jc, name) == env(c, name), f"the Job's {name} {env(jc, name)} differs from the nodes' {env(c, name)}"


@check
def check_ports(m):
    c = node_c(m)
    port = int(env(c, "REDIS_PORT_NUMBER"))
    bus = int(env(c, "REDIS_CLUSTER_BUS_PORT")) or port + 10000
    have = {p.get("containerPort") for p in c.get("ports") or []}
    assert have == {port, bus}, f"container ports {sorted(have)}, want the client and bus ports {[port, bus]}"


@check
def check_job(m):
    j, c = job(m), job_c(m)
    spec = j.get("spec") or {}
    assert argv(c) == [KVINIT, "cluster-init"], f"the Job runs {argv(c)}"
    assert pod_spec(j).get("restartPolicy") in ("Never", "OnFailure"), "a Job's restartPolicy: Never or OnFailure"
    assert isinstance(spec.get("backoffLimit"), int) and spec["backoffLimit"] >= 1, "a backoffLimit of 1 or more"
    assert isinstance(spec.get("ttlSecondsAfterFinished"), int), \
        "ttlSecondsAfterFinished, so the next apply re-runs it (scale-out) instead of failing on the old Job"
    deadline = spec.get("activeDeadlineSeconds")
    assert deadline is None or deadline > seconds(env(c, "KVINIT_INIT_TIMEOUT") or "300s"), \
        "activeDeadlineSeconds would end cluster-init before its own KVINIT_INIT_TIMEOUT"


@check
def check_images(m):
    k = m["kustomization"] or {}
    assert any(i.get("name") == IMAGE.split(":")[0] for i in k.get("images") or []), \
        "kustomization.yaml: an images entry for kvinit, the one place to change the image"
    for workload in (sts(m), creator_sts(m), job(m)):
        for c in all_containers(workload):
            assert c.get("image") == IMAGE, f"{workload['metadata']['name']}/{c['name']}: image {c.get('image')}"
            assert c.get("imagePullPolicy") == "IfNotPresent", \
                f"{workload['metadata']['name']}/{c['name']}: a locally built image is pulled from nowhere"


@check
def check_pdb(m):
    spec = pdb(m).get("spec") or {}
    assert spec.get("maxUnavailable") == 1 and "minAvailable" not in spec, "maxUnavailable: 1"
    selector = (spec.get("selector") or {}).get("matchLabels")
    assert selects(selector, pod_labels(sts(m))), "the PodDisruptionBudget does not select the node pods"
    assert selector == (svc(m).get("spec") or {}).get("selector"), "the PDB and the Service select different pods"


@check
def check_creator_variant(m):
    main, variant = copy.deepcopy(sts(m)), copy.deepcopy(creator_sts(m))
    c = only_container(variant, "node")
    assert truthy(env(c, "REDIS_CLUSTER_CREATOR") or "no"), f"{CREATOR}: REDIS_CLUSTER_CREATOR is not yes"
    assert not truthy(env(only_container(main, "node"), "REDIS_CLUSTER_CREATOR") or "no"), \
        "statefulset.yaml sets REDIS_CLUSTER_CREATOR: the Job forms the cluster there"
    del_env(c, "REDIS_CLUSTER_CREATOR")
    assert variant == main, f"{CREATOR} differs from statefulset.yaml by more than REDIS_CLUSTER_CREATOR"


@check
def check_readme(m):
    text = m["readme"]
    for cap in sorted(NODE_CAPS):
        assert re.search(rf"\bCAP_{cap}\b", text), f"compose/kubernetes/README.md does not justify CAP_{cap}"
    heading = re.search(r"^#+ .*[Rr]otation.*$", text, re.M)
    assert heading and "planned" not in heading[0].lower(), "the rotation section is missing, or still says planned"
    for key in ("redis_password", "redis_password_next", "redis_password_previous"):
        assert f"`{key}`" in text, f"README.md does not describe the key {key}"


# --------------------------------------------------------------------------- mutations: each must fail its check

MUTATIONS = []


def mutation(check_name):
    def register(fn):
        MUTATIONS.append((check_name, fn))
        return fn
    return register


def docs_of(m, kind):
    return [d for d in main_docs(m) if d.get("kind") == kind]


@mutation("check_files_accounted")
def missing_resource(m):
    m["kustomization"]["resources"].append("missing.yaml")


@mutation("check_files_accounted")
def unlisted_job(m):
    m["kustomization"]["resources"].remove("job-cluster-init.yaml")


@mutation("check_files_accounted")
def example_secret_applied(m):
    m["kustomization"]["resources"].append(EXAMPLE_SECRET)


@mutation("check_files_accounted")
def beta_api(m):
    sts(m)["apiVersion"] = "apps/v1beta1"


@mutation("check_kinds")
def no_pdb(m):
    m["files"]["poddisruptionbudget.yaml"] = []


@mutation("check_kinds")
def no_secret(m):
    m["files"][EXAMPLE_SECRET] = []


@mutation("check_service")
def service_with_ip(m):
    svc(m)["spec"]["clusterIP"] = "10.0.0.10"


@mutation("check_service")
def ready_only_addresses(m):
    svc(m)["spec"]["publishNotReadyAddresses"] = False


@mutation("check_service")
def service_selects_other(m):
    svc(m)["spec"]["selector"]["app.kubernetes.io/component"] = "cache"


@mutation("check_service")
def wrong_service_name(m):
    sts(m)["spec"]["serviceName"] = "redis"


@mutation("check_service")
def no_bus_port(m):
    svc(m)["spec"]["ports"] = [p for p in svc(m)["spec"]["ports"] if p["port"] != 16379]


@mutation("check_statefulset_shape")
def three_replicas(m):
    sts(m)["spec"]["replicas"] = 3


@mutation("check_statefulset_shape")
def ordered_ready(m):
    sts(m)["spec"]["podManagementPolicy"] = "OrderedReady"


@mutation("check_statefulset_shape")
def selector_mismatch(m):
    sts(m)["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"] = "other"


@mutation("check_statefulset_shape")
def sidecar(m):
    pod_spec(sts(m))["containers"].append({"name": "exporter", "image": IMAGE, "args": ["run", "sleep"]})


@mutation("check_statefulset_shape")
def run_role(m):
    node_c(m)["args"] = ["run", "--", "redis-server"]


@mutation("check_job_pods_not_selected")
def job_labelled_node(m):
    pod_labels(job(m))["app.kubernetes.io/component"] = "node"


@mutation("check_pod_ip")
def host_ip(m):
    env_entry(node_c(m), "POD_IP")["valueFrom"]["fieldRef"]["fieldPath"] = "status.hostIP"


@mutation("check_pod_ip")
def no_pod_ip(m):
    del_env(node_c(m), "POD_IP")


@mutation("check_pod_ip")
def static_ips(m):
    set_env(node_c(m), "REDIS_CLUSTER_DYNAMIC_IPS", "no")


@mutation("check_env")
def unknown_variable(m):
    c = job_c(m)
    env_entry(c, "REDIS_NODES")["name"] = "REDIS_NODE"


@mutation("check_env")
def numeric_value(m):
    env_entry(node_c(m), "REDIS_PORT_NUMBER")["value"] = 6379


@mutation("check_env")
def literal_block(m):
    e = env_entry(node_c(m), "REDIS_NODES")
    e["value"] = e["value"].replace(" ", "\n")


@mutation("check_env")
def reference_before_definition(m):
    c = node_c(m)
    pod_name = env_entry(c, "POD_NAME")
    c["env"].remove(pod_name)
    c["env"].append(pod_name)


@mutation("check_env")
def twice(m):
    node_c(m)["env"].append({"name": "REDIS_DATA_DIR", "value": "/data"})


@mutation("check_env")
def other_hostname(m):
    set_env(node_c(m), "REDIS_CLUSTER_ANNOUNCE_HOSTNAME", "$(POD_NAME).elsewhere")


@mutation("check_secret")
def sub_path(m):
    mount_for(node_c(m), "secret")[0]["subPath"] = "redis_password"


@mutation("check_secret")
def job_sub_path(m):
    mount_for(job_c(m), "secret")[0]["subPath"] = "redis_password"


@mutation("check_secret")
def password_elsewhere(m):
    set_env(node_c(m), "REDIS_PASSWORD_FILE", "/run/secrets/redis_password")


@mutation("check_secret")
def password_in_env(m):
    set_env(job_c(m), "REDIS_PASSWORD", "hunter2")


@mutation("check_secret")
def other_secret(m):
    volume(sts(m), "secret")["secret"]["secretName"] = "redis"


@mutation("check_secret")
def world_readable(m):
    volume(sts(m), "secret")["secret"]["defaultMode"] = 0o644


@mutation("check_secret")
def items(m):
    volume(sts(m), "secret")["secret"]["items"] = [{"key": "redis_password", "path": "redis_password"}]


@mutation("check_secret")
def key_renamed(m):
    s = secret(m)
    s["stringData"] = {"password": "x"}


@mutation("check_rendered_config")
def disk_backed(m):
    volume(sts(m), "rendered-config")["emptyDir"] = {}


@mutation("check_rendered_config")
def config_elsewhere(m):
    set_env(node_c(m), "KVINIT_RENDERED_CONFIG", "/tmp/redis.conf")


@mutation("check_rendered_config")
def default_config_path(m):
    mount_for(node_c(m), "rendered-config")[0]["mountPath"] = "/run/redis"
    del_env(node_c(m), "KVINIT_RENDERED_CONFIG")


@mutation("check_data")
def no_claims(m):
    del sts(m)["spec"]["volumeClaimTemplates"]


@mutation("check_data")
def data_elsewhere(m):
    mount_for(node_c(m), "data")[0]["mountPath"] = "/var/lib/redis"


@mutation("check_data")
def shadowed_by_empty_dir(m):
    pod_spec(sts(m))["volumes"].append({"name": "data", "emptyDir": {}})


@mutation("check_probes")
def ready_as_live(m):
    node_c(m)["readinessProbe"]["exec"]["command"] = [KVINIT, "health", "--live"]


@mutation("check_probes")
def short_timeout(m):
    node_c(m)["livenessProbe"]["timeoutSeconds"] = 1


@mutation("check_probes")
def no_startup_probe(m):
    del node_c(m)["startupProbe"]


@mutation("check_probes")
def tcp_probe(m):
    node_c(m)["livenessProbe"] = {"tcpSocket": {"port": 6379}, "timeoutSeconds": 3}


@mutation("check_grace")
def short_grace(m):
    pod_spec(sts(m))["terminationGracePeriodSeconds"] = 10


@mutation("check_grace")
def long_stop_grace(m):
    set_env(node_c(m), "KVINIT_STOP_GRACE", "30s")


@mutation("check_grace")
def default_grace(m):
    del pod_spec(sts(m))["terminationGracePeriodSeconds"]
    set_env(node_c(m), "KVINIT_STOP_GRACE", "1m")


@mutation("check_grace")
def failover_past_stop_grace(m):
    set_env(node_c(m), "KVINIT_FAILOVER_TIMEOUT", "9500ms")


@mutation("check_node_security")
def keep_all_caps(m):
    node_c(m)["securityContext"]["capabilities"]["drop"] = []


@mutation("check_node_security")
def sys_admin(m):
    node_c(m)["securityContext"]["capabilities"]["add"].append("SYS_ADMIN")


@mutation("check_node_security")
def no_kill(m):
    node_c(m)["securityContext"]["capabilities"]["add"].remove("KILL")


@mutation("check_node_security")
def no_dac_override(m):
    node_c(m)["securityContext"]["capabilities"]["add"].remove("DAC_OVERRIDE")


@mutation("check_node_security")
def as_redis(m):
    node_c(m)["securityContext"]["runAsUser"] = 999


@mutation("check_node_security")
def escalation(m):
    node_c(m)["securityContext"]["allowPrivilegeEscalation"] = True


@mutation("check_node_security")
def writable_root(m):
    node_c(m)["securityContext"]["readOnlyRootFilesystem"] = False


@mutation("check_node_security")
def privileged(m):
    node_c(m)["securityContext"]["privileged"] = True


@mutation("check_node_security")
def unconfined(m):
    pod_spec(sts(m))["securityContext"]["seccompProfile"] = {"type": "Unconfined"}


@mutation("check_node_security")
def token(m):
    pod_spec(sts(m))["automountServiceAccountToken"] = True


@mutation("check_node_security")
def host_network(m):
    pod_spec(sts(m))["hostNetwork"] = True


@mutation("check_no_service_links")
def service_links(m):
    pod_spec(sts(m))["enableServiceLinks"] = True


@mutation("check_no_service_links")
def job_service_links(m):
    del pod_spec(job(m))["enableServiceLinks"]


@mutation("check_job_security")
def job_caps(m):
    job_c(m)["securityContext"]["capabilities"]["add"] = ["NET_ADMIN"]


@mutation("check_job_security")
def job_as_root(m):
    pod_spec(job(m))["securityContext"].update(runAsNonRoot=False, runAsUser=0)


@mutation("check_job_security")
def job_no_fs_group(m):
    del pod_spec(job(m))["securityContext"]["fsGroup"]


@mutation("check_job_security")
def job_owner_only_secret(m):
    volume(job(m), "secret")["secret"]["defaultMode"] = 0o400


@mutation("check_job_security")
def job_writable_root(m):
    job_c(m)["securityContext"]["readOnlyRootFilesystem"] = False


@mutation("check_redis_nodes")
def five_names(m):
    c = node_c(m)
    set_env(c, "REDIS_NODES", " ".join(nodes_list(env(c, "REDIS_NODES"))[:5]))


@mutation("check_redis_nodes")
def unstable_names(m):
    c = node_c(m)
    set_env(c, "REDIS_NODES", env(c, "REDIS_NODES").replace("redis-cluster-", "redis-"))


@mutation("check_redis_nodes")
def job_nodes_differ(m):
    c = job_c(m)
    set_env(c, "REDIS_NODES", env(c, "REDIS_NODES").replace("redis-cluster-5", "redis-cluster-6"))


@mutation("check_redis_nodes")
def job_replicas_differ(m):
    set_env(job_c(m), "REDIS_CLUSTER_REPLICAS", "2")


@mutation("check_redis_nodes")
def too_few_masters(m):
    for c in (node_c(m), job_c(m)):
        set_env(c, "REDIS_CLUSTER_REPLICAS", "2")


@mutation("check_redis_nodes")
def job_other_port(m):
    set_env(job_c(m), "REDIS_PORT_NUMBER", "7000")


@mutation("check_ports")
def port_moved(m):
    set_env(node_c(m), "REDIS_PORT_NUMBER", "7000")


@mutation("check_ports")
def no_bus_container_port(m):
    node_c(m)["ports"] = [p for p in node_c(m)["ports"] if p["containerPort"] != 16379]


@mutation("check_job")
def job_runs_node(m):
    job_c(m)["args"] = ["node"]


@mutation("check_job")
def job_no_ttl(m):
    del job(m)["spec"]["ttlSecondsAfterFinished"]


@mutation("check_job")
def job_always(m):
    pod_spec(job(m))["restartPolicy"] = "Always"


@mutation("check_job")
def job_no_backoff(m):
    del job(m)["spec"]["backoffLimit"]


@mutation("check_job")
def job_short_deadline(m):
    job(m)["spec"]["activeDeadlineSeconds"] = 120


@mutation("check_images")
def other_image(m):
    job_c(m)["image"] = "redis:7"


@mutation("check_images")
def creator_other_image(m):
    only_container(creator_sts(m), "node")["image"] = "kvinit:0.0.1"


@mutation("check_images")
def always_pull(m):
    node_c(m)["imagePullPolicy"] = "Always"


@mutation("check_images")
def no_image_parameter(m):
    m["kustomization"]["images"] = []


@mutation("check_pdb")
def two_unavailable(m):
    pdb(m)["spec"]["maxUnavailable"] = 2


@mutation("check_pdb")
def pdb_selects_nothing(m):
    pdb(m)["spec"]["selector"]["matchLabels"] = {"app": "redis"}


@mutation("check_creator_variant")
def creator_drifted(m):
    creator_sts(m)["spec"]["replicas"] = 5


@mutation("check_creator_variant")
def main_drifted(m):
    pod_spec(sts(m))["terminationGracePeriodSeconds"] = 25


@mutation("check_creator_variant")
def creator_without_creator(m):
    del_env(only_container(creator_sts(m), "node"), "REDIS_CLUSTER_CREATOR")


@mutation("check_creator_variant")
def main_is_creator(m):
    set_env(node_c(m), "REDIS_CLUSTER_CREATOR", "yes")


@mutation("check_readme")
def readme_forgets_a_cap(m):
    m["readme"] = m["readme"].replace("CAP_KILL", "CAP_SOMETHING")


@mutation("check_readme")
def readme_forgets_next(m):
    m["readme"] = m["readme"].replace("`redis_password_next`", "the next password")


@mutation("check_readme")
def rotation_still_planned(m):
    m["readme"] = re.sub(r"^(#+ .*[Rr]otation.*)$", r"\1 (planned)", m["readme"], count=1, flags=re.M)


@mutation("check_tls_overlay")
def tls_secret_by_subpath(m):
    k = m["files"][TLS_OVERLAY][0]
    k["patches"][0]["patch"] = k["patches"][0]["patch"].replace(
        "mountPath: /etc/kvinit/tls\n", "mountPath: /etc/kvinit/tls\n    subPath: tls.crt\n", 1)


@mutation("check_tls_overlay")
def tls_job_without_tls(m):
    k = m["files"][TLS_OVERLAY][0]
    k["patches"] = k["patches"][:1]


@mutation("check_tls_overlay")
def tls_key_renamed(m):
    stringdata = m["files"][TLS_SECRET][0]["stringData"]
    stringdata["tls-key.pem"] = stringdata.pop("tls.key")


# --------------------------------------------------------------------------- tests

def yamllint(directory):
    exe = shutil.which("yamllint")
    assert exe, "yamllint is missing: apt-get install yamllint"
    return subprocess.run([exe, "--strict", "-f", "parsable", "-c", str(directory / ".yamllint"), str(directory)],
                          capture_output=True, text=True, check=False)


def test_yamllint_passes():
    r = yamllint(KDIR)
    assert r.returncode == 0, r.stdout + r.stderr


def test_yamllint_passes_on_the_tls_overlay():
    exe = shutil.which("yamllint")
    assert exe, "yamllint is missing: apt-get install yamllint"
    r = subprocess.run([exe, "--strict", "-f", "parsable", "-c", str(KDIR / ".yamllint"), str(TLS_DIR)],
                       capture_output=True, text=True, check=False)
    assert r.returncode == 0, r.stdout + r.stderr


def test_yamllint_catches_a_bad_file(tmp_path):
    copy_dir = tmp_path / "kubernetes"
    shutil.copytree(KDIR, copy_dir)
    path = copy_dir / "service.yaml"
    path.write_text(path.read_text() + "spec:\n  clusterIP: None \n")  # a duplicate key and a trailing space
    r = yamllint(copy_dir)
    assert r.returncode != 0 and "key-duplicates" in r.stdout and "trailing-spaces" in r.stdout, r.stdout


@pytest.mark.parametrize("name", sorted(CHECKS))
def test_check(model, name):
    CHECKS[name](copy.deepcopy(model))


@pytest.mark.parametrize("check_name,mutate", MUTATIONS,
                         ids=[f"{c.removeprefix('check_')}-{fn.__name__}" for c, fn in MUTATIONS])
def test_check_fails_on_mutation(model, check_name, mutate):
    mutated = copy.deepcopy(model)
    mutate(mutated)
    assert mutated != model, "the mutation changed nothing"
    with pytest.raises(AssertionError):
        CHECKS[check_name](mutated)


def test_every_check_can_fail():
    assert set(CHECKS) == {c for c, _ in MUTATIONS}, \
        f"checks without a mutation: {sorted(set(CHECKS) - {c for c, _ in MUTATIONS})}"
