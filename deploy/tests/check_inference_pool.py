"""Checks deploy/kubernetes/inference-pool.yaml (InferencePool + InferenceObjective).

1. Each object against inference_extension_schema.json: a schema DERIVED from the Inference
   Extension's published API reference (the official CRDs are in no reachable registry), with
   unknown fields rejected, plus the reference's rules JSON Schema cannot state.
2. Consistency with the rest of the kit: the pool selects deployment.yaml's pods and targets
   their API port; the objective and the HTTPRoute point at this pool.
3. The checker itself: broken copies (a misspelt field, port 0, a missing required field, a
   duplicate port) must be rejected, so a schema that accepts everything fails this test.

usage: python check_inference_pool.py   (from the repository root; prints PASS/FAIL lines)
"""
import copy
import json
import sys
from pathlib import Path

import jsonschema
import yaml

HERE = Path(__file__).resolve().parent
KUBE = HERE.parent / "kubernetes"
SCHEMA = json.loads((HERE / "inference_extension_schema.json").read_text())
failures = 0


def report(ok, name, detail=""):
    global failures
    print(f"{'PASS' if ok else 'FAIL'} {name}" + (f": {detail}" if detail and not ok else ""))
    failures += not ok


def problems(obj):
    """Every schema violation and reference rule broken by one InferencePool/InferenceObjective."""
    kind = obj.get("kind")
    if kind not in ("InferencePool", "InferenceObjective"):
        return [f"no derived schema for kind {kind!r}"]
    schema = dict(SCHEMA[kind], **{"$defs": SCHEMA["$defs"]})
    found = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
             for e in jsonschema.Draft202012Validator(schema).iter_errors(obj)]
    if kind == "InferencePool" and not found:
        numbers = [p["number"] for p in obj["spec"]["targetPorts"]]
        if len(set(numbers)) != len(numbers):
            found.append(f"spec/targetPorts: port numbers must be unique, got {numbers}")
    return found


docs = [d for d in yaml.safe_load_all((KUBE / "inference-pool.yaml").read_text()) if d]
by_kind = {d["kind"]: d for d in docs}
report(set(by_kind) == {"InferencePool", "InferenceObjective", "HTTPRoute"} and len(docs) == 3,
       "inference-pool.yaml holds one InferencePool, InferenceObjective and HTTPRoute", sorted(by_kind))
pool, objective, route = by_kind["InferencePool"], by_kind["InferenceObjective"], by_kind["HTTPRoute"]
for obj in (pool, objective):
    errs = problems(obj)
    report(not errs, f"derived schema: {obj['kind']} {obj['metadata']['name']}", "; ".join(errs))

# ---- consistency with deployment.yaml ---------------------------------------------------
deployment = next(d for d in yaml.safe_load_all((KUBE / "deployment.yaml").read_text())
                  if d and d["kind"] == "Deployment")
pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
selector = pool["spec"]["selector"]["matchLabels"]
report(all(pod_labels.get(k) == v for k, v in selector.items()),
       "the pool's selector matches deployment.yaml's pod labels", f"{selector} vs {pod_labels}")
container = deployment["spec"]["template"]["spec"]["containers"][0]
api_port = next(p["containerPort"] for p in container["ports"] if p["name"] == "http")
report([p["number"] for p in pool["spec"]["targetPorts"]] == [api_port],
       "the pool targets the container's API port", f"{pool['spec']['targetPorts']} vs {api_port}")
same_ns = {o["metadata"].get("namespace") for o in docs}
report(len(same_ns) == 1, "all three objects share a namespace (pool references are namespace-local)", same_ns)
ref = objective["spec"]["poolRef"]
report(ref["name"] == pool["metadata"]["name"] and ref.get("kind", "InferencePool") == "InferencePool"
       and ref.get("group", "inference.networking.k8s.io") == "inference.networking.k8s.io",
       "the InferenceObjective's poolRef names the pool", ref)
backends = [b for r in route["spec"]["rules"] for b in r["backendRefs"]]
report(backends == [{"group": "inference.networking.k8s.io", "kind": "InferencePool",
                     "name": pool["metadata"]["name"]}],
       "the HTTPRoute's backend is the pool", backends)

# ---- the checker rejects broken objects --------------------------------------------------
def broken(obj, path, value):
    bad = copy.deepcopy(obj)
    *parents, last = path
    node = bad
    for p in parents:
        node = node[p]
    if value is KeyError:
        del node[last]
    else:
        node[last] = value
    return bad


mutants = {
    "misspelt field (targetPort)": broken(pool, ["spec", "targetPort"], [{"number": 8000}]),
    "port 0": broken(pool, ["spec", "targetPorts"], [{"number": 0}]),
    "nine ports": broken(pool, ["spec", "targetPorts"], [{"number": 8000 + i} for i in range(9)]),
    "duplicate port": broken(pool, ["spec", "targetPorts"], [{"number": 8000}, {"number": 8000}]),
    "no endpointPickerRef": broken(pool, ["spec", "endpointPickerRef"], KeyError),
    "unknown failureMode": broken(pool, ["spec", "endpointPickerRef", "failureMode"], "FailSometimes"),
    "matchExpressions (the pool's selector takes matchLabels only)":
        broken(pool, ["spec", "selector", "matchExpressions"], []),
    "objective without poolRef": broken(objective, ["spec", "poolRef"], KeyError),
    "objective with string priority": broken(objective, ["spec", "priority"], "high"),
    "objective at the pool's apiVersion": broken(objective, ["apiVersion"], "inference.networking.k8s.io/v1"),
}
for name, bad in mutants.items():
    report(bool(problems(bad)), f"derived schema rejects: {name}")

print(f"{failures} failure(s)")
sys.exit(1 if failures else 0)
