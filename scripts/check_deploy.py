#!/usr/bin/env python3
"""Structural checks of docker/ that no schema covers, run by
scripts/check-deploy.sh (which has already linted the files and validated
them against the Kubernetes and compose schemas):

  python3 scripts/check_deploy.py HELP_TEXT METRICS_TEXT

HELP_TEXT is `prism serve --help` (the PRISM_* names the binary accepts),
METRICS_TEXT a live server's /metrics (the metric names that exist). Prints
one line per failed check and exits 1 if there is any.
"""
import json
import re
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
D = ROOT / "docker"
errors = []


def check(ok, msg):
    if not ok:
        errors.append(msg)
    return ok


help_text = Path(sys.argv[1]).read_text()
metrics_text = Path(sys.argv[2]).read_text()
PRISM_VARS = set(re.findall(r"env (PRISM_[A-Z_]+)", help_text))
check(len(PRISM_VARS) > 10, f"too few PRISM_* names in prism serve --help: {sorted(PRISM_VARS)}")
SERIES = set(re.findall(r"^(prism_[a-z_]+)", metrics_text, re.M))

# -- every file says what it is for
for f in sorted(D.rglob("*")) + [ROOT / ".dockerignore"]:
    if f.is_file() and f.suffix != ".json":
        first = f.read_text().lstrip().splitlines()[0]
        if first.startswith("#!"):
            first = f.read_text().splitlines()[1]
        check(first.startswith("#"), f"{f.relative_to(ROOT)}: does not start with a comment")

# -- PRISM_* names used anywhere in docker/ are names the binary accepts
for f in sorted(D.rglob("*")):
    if f.is_file():
        for name in set(re.findall(r"\bPRISM_[A-Z_]+\b", f.read_text())):
            if name in ("PRISM_NATIVE", "PRISM_CUDA", "PRISM_TESTS", "PRISM_MODEL_DIR"):
                continue  # cmake options; compose's host-side variable
            check(name in PRISM_VARS, f"{f.relative_to(ROOT)}: {name} is not a prism serve variable")


# -- Dockerfiles
def stages(path):
    text = re.sub(r"\\\n", " ", path.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        word, _, rest = line.partition(" ")
        if word.upper() == "FROM":
            out.append({"from": rest, "ins": []})
        elif out:
            out[-1]["ins"].append((word.upper(), rest))
    return out


for name, base_build, base_run, extra in (
    ("Dockerfile", "debian:bookworm", "debian:bookworm-slim", "-DPRISM_CUDA=OFF"),
    ("Dockerfile.cuda", "nvidia/cuda:${CUDA_VERSION}-devel", "nvidia/cuda:${CUDA_VERSION}-runtime",
     "-DPRISM_CUDA=ON"),
):
    st = stages(D / name)
    where = f"docker/{name}"
    if not check(len(st) >= 2, f"{where}: not multi-stage"):
        continue
    build, run = st[0], st[-1]
    check(build["from"].startswith(base_build), f"{where}: build stage is not {base_build}")
    check(run["from"].startswith(base_run), f"{where}: runtime stage is not {base_run}")
    runs = " ; ".join(r for w, r in build["ins"] if w == "RUN")
    # the scripts CI runs (scripts/test.sh calls the same two)
    check(re.search(r"(^|[ ;&])scripts/install-deps\.sh( |$|&)", runs),
          f"{where}: build stage does not run scripts/install-deps.sh")
    check(re.search(r"(^|[ ;&])scripts/build\.sh ", runs), f"{where}: build stage does not run scripts/build.sh")
    check("-DPRISM_NATIVE=OFF" in runs, f"{where}: build without -DPRISM_NATIVE=OFF (not portable)")
    check(extra in runs, f"{where}: build without {extra}")
    check("scripts/runtime-deps.sh build/prism" in runs, f"{where}: runtime packages not from scripts/runtime-deps.sh")
    rruns = " ; ".join(r for w, r in run["ins"] if w == "RUN")
    check("install-deps.sh" not in rruns and "-dev" not in rruns, f"{where}: runtime stage installs build packages")
    check("runtime-packages.txt" in rruns, f"{where}: runtime stage does not install the runtime packages")
    users = [r for w, r in run["ins"] if w == "USER"]
    check(users and users[-1].split(":")[0] not in ("root", "0"), f"{where}: runtime stage runs as root")
    hc = [r for w, r in run["ins"] if w == "HEALTHCHECK"]
    check(hc and "prism-healthcheck" in hc[0], f"{where}: no HEALTHCHECK running prism-healthcheck")
    check(any(w == "COPY" and r.startswith("docker/healthcheck.sh ") for w, r in run["ins"]),
          f"{where}: healthcheck script not copied")
    check(any(w == "COPY" and "--from=build /src/build/prism " in r for w, r in run["ins"]),
          f"{where}: binary not copied from the build stage")
    envs = " ".join(r for w, r in run["ins"] if w == "ENV")
    check("PRISM_HOST=0.0.0.0" in envs and "PRISM_MODEL=/models" in envs,
          f"{where}: runtime ENV lacks PRISM_HOST=0.0.0.0 / PRISM_MODEL=/models")
    check(any(w == "VOLUME" and "/models" in r for w, r in run["ins"]), f"{where}: no /models volume")
    check(any(w == "ENTRYPOINT" and "prism" in r for w, r in run["ins"]), f"{where}: no prism ENTRYPOINT")

# -- compose
compose = yaml.safe_load((D / "compose.yaml").read_text())
svc = compose.get("services", {})
for s in ("prism", "prometheus", "grafana"):
    check(s in svc, f"compose.yaml: no {s} service")
p = svc.get("prism", {})
check((ROOT / p.get("build", {}).get("dockerfile", "?")).is_file(), "compose.yaml: prism build.dockerfile missing")
check(any(isinstance(v, dict) and v.get("target") == "/models" and v.get("read_only") for v in p.get("volumes", [])),
      "compose.yaml: /models not mounted read-only")
penv = p.get("environment", {})
check(penv.get("PRISM_HOST") == "0.0.0.0", "compose.yaml: prism does not listen on 0.0.0.0")
grace = float(str(p.get("stop_grace_period", "10s")).rstrip("s"))
check(grace > float(penv.get("PRISM_REQUEST_TIMEOUT", 30)) + 5, "compose.yaml: stop_grace_period <= drain time")
check("./prometheus.yml:/etc/prometheus/prometheus.yml:ro" in svc.get("prometheus", {}).get("volumes", []),
      "compose.yaml: prometheus.yml not mounted")
gvols = svc.get("grafana", {}).get("volumes", [])
check("./grafana/provisioning:/etc/grafana/provisioning:ro" in gvols, "compose.yaml: grafana provisioning not mounted")
gpu = yaml.safe_load((D / "compose.gpu.yaml").read_text())["services"]["prism"]
devs = gpu.get("deploy", {}).get("resources", {}).get("reservations", {}).get("devices", [])
check(devs and devs[0].get("driver") == "nvidia" and "gpu" in devs[0].get("capabilities", []),
      "compose.gpu.yaml: no nvidia GPU device reservation")
check(gpu.get("build", {}).get("dockerfile") == "docker/Dockerfile.cuda", "compose.gpu.yaml: not the CUDA image")

# -- Prometheus and Grafana
prom = yaml.safe_load((D / "prometheus.yml").read_text())
job = [j for j in prom.get("scrape_configs", []) if j.get("job_name") == "prism"]
check(job and job[0].get("metrics_path", "/metrics") == "/metrics"
      and "prism:8080" in job[0]["static_configs"][0]["targets"], "prometheus.yml: no prism:8080/metrics job")
ds = yaml.safe_load((D / "grafana/provisioning/datasources/prometheus.yaml").read_text())["datasources"][0]
check(ds["url"] == "http://prometheus:9090", "grafana datasource does not point at the compose Prometheus")
prov = yaml.safe_load((D / "grafana/provisioning/dashboards/prism.yaml").read_text())["providers"][0]
check(f"./grafana/dashboards:{prov['options']['path']}:ro" in gvols, "grafana dashboard path is not mounted")
dash = json.loads((D / "grafana/dashboards/prism.json").read_text())
exprs = [t["expr"] for pnl in dash["panels"] for t in pnl.get("targets", [])]
for pnl in dash["panels"]:
    for t in pnl.get("targets", []):
        check(t["datasource"]["uid"] == ds["uid"], f"dashboard panel '{pnl['title']}': unknown datasource")
used = set()
for e in exprs:
    used |= set(re.findall(r"\bprism_[a-z_]+", e))
for m in sorted(used):
    check(m in SERIES, f"dashboard: {m} is not in prism's /metrics")
for what, pat in (("request rate", r"rate\(prism_http_requests_total"),
                  ("latency percentiles", r"histogram_quantile\(0\.99, .*prism_http_request_duration_seconds_bucket"),
                  ("batch sizes", r"prism_batch_size_"), ("queue depth", r"prism_queue_depth"),
                  ("errors", r'status=~"[^"]*5\.\.')):
    check(any(re.search(pat, e) for e in exprs), f"dashboard: no {what} panel")

# -- Kubernetes
docs = {}
for f in sorted((D / "k8s").rglob("*.yaml")):
    for doc in yaml.safe_load_all(f.read_text()):
        docs[(f.relative_to(D / "k8s").as_posix(), doc["kind"])] = doc
cm = docs[("configmap.yaml", "ConfigMap")]
timeout = float(cm["data"].get("PRISM_REQUEST_TIMEOUT", 30))
check(cm["data"].get("PRISM_HOST") == "0.0.0.0", "k8s configmap: PRISM_HOST is not 0.0.0.0")
svc_sel = docs[("service.yaml", "Service")]["spec"]["selector"]
for key in ("deployment.yaml", "cuda/deployment.yaml"):
    dep = docs[(key, "Deployment")]
    where = f"k8s/{key}"
    pod = dep["spec"]["template"]["spec"]
    labels = dep["spec"]["template"]["metadata"]["labels"]
    check(all(labels.get(k) == v for k, v in svc_sel.items()), f"{where}: pods not selected by the Service")
    ann = dep["spec"]["template"]["metadata"].get("annotations", {})
    check(ann.get("prometheus.io/scrape") == "true" and ann.get("prometheus.io/path") == "/metrics",
          f"{where}: no prometheus.io scrape annotations")
    c = pod["containers"][0]
    check(c["livenessProbe"]["httpGet"]["path"] == "/healthz", f"{where}: liveness is not /healthz")
    check(c["readinessProbe"]["httpGet"]["path"] == "/readyz", f"{where}: readiness is not /readyz")
    res = c.get("resources", {})
    check(res.get("requests", {}).get("cpu") and res.get("limits", {}).get("memory"), f"{where}: no resources")
    pre = c.get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds", 0)
    check(pod.get("terminationGracePeriodSeconds", 30) > pre + timeout + 5,
          f"{where}: terminationGracePeriodSeconds <= preStop + drain (request timeout + 5 s)")
    check(pod.get("securityContext", {}).get("runAsNonRoot") is True, f"{where}: runAsNonRoot not set")
    check(pod["securityContext"].get("runAsUser", 0) != 0, f"{where}: runs as uid 0")
    check(c.get("securityContext", {}).get("readOnlyRootFilesystem") is True, f"{where}: root filesystem writable")
    mounts = {m["mountPath"]: m for m in c.get("volumeMounts", [])}
    check(mounts.get("/models", {}).get("readOnly") is True, f"{where}: /models not mounted read-only")
    check({"configMapRef": {"name": cm["metadata"]["name"]}} in c.get("envFrom", []), f"{where}: no ConfigMap envFrom")
    check(str(res.get("limits", {}).get("cpu")) == cm["data"].get("PRISM_THREADS"),
          f"{where}: PRISM_THREADS differs from the CPU limit")
    gpus = res.get("limits", {}).get("nvidia.com/gpu")
    check((gpus == 1) == key.startswith("cuda/"), f"{where}: nvidia.com/gpu: 1 only and always in the CUDA variant")
deployments = {d["metadata"]["name"] for (_, k), d in docs.items() if k == "Deployment"}
for (key, kind), hpa in docs.items():
    if kind == "HorizontalPodAutoscaler":
        check(hpa["apiVersion"] == "autoscaling/v2", f"k8s/{key}: not autoscaling/v2")
        check(hpa["spec"]["scaleTargetRef"]["name"] in deployments, f"k8s/{key}: targets no Deployment")
        check(any(m.get("resource", {}).get("name") == "cpu" for m in hpa["spec"]["metrics"]), f"k8s/{key}: no CPU target")
        for m in hpa["spec"]["metrics"]:
            if m["type"] == "Pods":
                check(m["pods"]["metric"]["name"] in SERIES, f"k8s/{key}: {m['pods']['metric']['name']} not in /metrics")
scrape = yaml.safe_load(docs[("prometheus-scrape.yaml", "ConfigMap")]["data"]["prism-scrape.yml"])
check(scrape["scrape_configs"][0]["kubernetes_sd_configs"][0]["role"] == "pod", "k8s scrape job is not pod discovery")

for e in errors:
    print("check-deploy:", e)
print(f"check-deploy: structure: {len(errors)} problem(s)")
sys.exit(1 if errors else 0)
