#!/usr/bin/env python3
"""Render loopback copies of the deploy/ configs for local runs and tests.

The files under deploy/ are written for a real deployment (service names, standard
paths). deploy/stack.sh and deploy/tests/* run the real binaries on 127.0.0.1 with
copies made by this script, which changes only addresses, ports, paths and timings;
expressions, routes, rules and proxy settings are kept as they are.

  render.py nginx --out FILE --prefix DIR --listen 127.0.0.1:P --upstream 127.0.0.1:A ...
            [--model NAME=127.0.0.1:B ...]   # several models: one upstream per model
  render.py prometheus --out-dir DIR --listen 127.0.0.1:P --target 127.0.0.1:A ...
            [--alertmanager 127.0.0.1:M] [--interval 15s] [--remote-write URL]
  render.py alertmanager --out FILE --webhook URL [--fast]
  render.py prometheusrule [--check]   # (re)writes deploy/kubernetes/prometheusrule.yaml

Needs PyYAML.
"""
import argparse
import pathlib
import re
import shutil
import sys

import yaml

DEPLOY = pathlib.Path(__file__).resolve().parent.parent


def loopback(hostport):
    host = hostport.rsplit(":", 1)[0]
    if host not in ("127.0.0.1", "localhost", "[::1]"):
        sys.exit(f"render.py: {hostport} is not a loopback address")
    return hostport


# Where distributions put njs (ngx_http_js_module.so): nginx.conf loads it relative to
# nginx's prefix, which a rendered copy run with `-p DIR` no longer has.
NJS_MODULE_DIRS = ["/usr/lib/nginx/modules", "/usr/share/nginx/modules", "/etc/nginx/modules",
                   "/usr/lib64/nginx/modules"]


def between_markers(text, name, body):
    """Replaces the lines between `# BEGIN corvid NAME` and `# END corvid NAME`."""
    out, n = re.subn(
        rf"(        # BEGIN corvid {name}\n).*?(        # END corvid {name}\n)",
        lambda m: m.group(1) + body + m.group(2),
        text,
        flags=re.S,
    )
    assert n == 1, f"BEGIN/END corvid {name} markers not found in nginx.conf"
    return out


def server_lines(addrs):
    return "".join(f"        server {loopback(u)} max_fails=3 fail_timeout=10s;\n" for u in addrs)


def models_arg(items):
    """--model NAME=HOST:PORT (repeatable, one per replica) -> {NAME: [HOST:PORT, ...]} in
    the order given."""
    models = {}
    for item in items:
        name, sep, addr = item.rpartition("=")
        if not sep or not name or '"' in name or "\\" in name:
            sys.exit(f"render.py: --model {item!r}: want NAME=HOST:PORT (no quotes in NAME)")
        models.setdefault(name, []).append(loopback(addr))
    return models


def route_by_model(text, models):
    """One upstream per model (a copy of `upstream corvid`, renamed, with that model's
    replicas) after the fleet-wide one, the map lines routing each model to its own (a
    model no upstream serves maps to "": the gateway's 404), and every model's upstream in
    $corvid_pools (GET /v1/models lists them all)."""
    block = re.search(r"(?ms)^    upstream corvid \{\n.*?^    \}\n", text).group(0)
    copies = ""
    lines = '        ""  corvid;\n'
    for i, (name, addrs) in enumerate(models.items(), 1):
        copy = block.replace("upstream corvid {", f"upstream corvid_model{i} {{", 1)
        copies += "\n" + between_markers(copy, "replicas", server_lines(addrs))
        lines += f'        "{name}"  corvid_model{i};\n'
    lines += '        default  "";\n'
    text = text.replace(block, block + copies, 1)
    pools = " ".join(f"corvid_model{i}" for i in range(1, len(models) + 1))
    text, n = re.subn(r'(?m)^    js_var \$corvid_pools "[^"]*";$', f'    js_var $corvid_pools "{pools}";', text)
    assert n == 1, "js_var $corvid_pools not found in nginx.conf"
    return between_markers(text, "models", lines)


def njs_module():
    for d in NJS_MODULE_DIRS:
        path = pathlib.Path(d) / "ngx_http_js_module.so"
        if path.exists():
            return str(path)
    sys.exit("render.py: njs (ngx_http_js_module.so) not found: install libnginx-mod-http-js")


def render_nginx(a):
    src = (DEPLOY / "nginx" / "nginx.conf").read_text()
    prefix = pathlib.Path(a.prefix).resolve()
    (prefix / "logs").mkdir(parents=True, exist_ok=True)
    models = models_arg(a.model)
    fleet = list(a.upstream) + [u for addrs in models.values() for u in addrs]
    if not fleet:
        sys.exit("render.py nginx: give --upstream or --model")
    out = between_markers(src, "replicas", server_lines(fleet))
    if models:
        out = route_by_model(out, models)
    subs = [
        (r"(?m)^load_module modules/ngx_http_js_module\.so;$", f"load_module {njs_module()};"),
        (r"(?m)^worker_processes .*;$", "worker_processes 1;"),
        (r"(?m)^pid .*;$", f"pid {prefix}/nginx.pid;"),
        (r"(?m)^error_log \S+", f"error_log {prefix}/logs/error.log"),
        (r"(?m)^(\s*access_log )\S+", rf"\g<1>{prefix}/logs/access.log"),
        (r"(?m)^(\s*listen )8080;", rf"\g<1>{loopback(a.listen)};"),
    ]
    for pat, rep in subs:
        out, n = re.subn(pat, rep, out)
        assert n == 1, f"pattern {pat} matched {n} times"
    # temp files of this private instance live under its prefix
    temp = "".join(
        f"    {d}_temp_path {prefix}/{d}_temp;\n"
        for d in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    out = out.replace("http {\n", "http {\n" + temp, 1)
    import os

    if os.geteuid() == 0:  # workers would run as nobody and could not use the temp dirs
        out = "user root;\n" + out
    pathlib.Path(a.out).write_text(out)
    # js_import resolves corvid_route.js next to the configuration file
    shutil.copyfile(DEPLOY / "nginx" / "corvid_route.js",
                    pathlib.Path(a.out).resolve().parent / "corvid_route.js")


def remote_write_example(text):
    """The commented `remote_write:` example at the end of prometheus.yml, uncommented and
    parsed, so a rendered config ships samples with exactly the settings users are shown
    (its keep-list of series, queue and headers); only the URL is replaced."""
    lines = text.split("\n")
    start = next(i for i, ln in enumerate(lines) if ln.startswith("# remote_write:"))
    block = []
    for ln in lines[start:]:
        if not ln.startswith("#"):
            break
        block.append(ln[2:])
    return yaml.safe_load("\n".join(block))["remote_write"]


def render_prometheus(a):
    src_dir = DEPLOY / "prometheus"
    out_dir = pathlib.Path(a.out_dir).resolve()
    (out_dir / "rules").mkdir(parents=True, exist_ok=True)
    cfg = yaml.safe_load((src_dir / "prometheus.yml").read_text())
    cfg["global"]["scrape_interval"] = a.interval
    cfg["global"]["evaluation_interval"] = a.interval
    if "scrape_timeout" in cfg["global"]:
        cfg["global"]["scrape_timeout"] = a.interval
    cfg["global"]["external_labels"] = {"cluster": "local"}
    rule_files = []
    for rf in cfg["rule_files"]:
        dst = out_dir / rf
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src_dir / rf, dst)
        rule_files.append(str(dst))
    cfg["rule_files"] = rule_files
    if a.alertmanager:
        cfg["alerting"]["alertmanagers"] = [
            {"static_configs": [{"targets": [loopback(a.alertmanager)]}]}
        ]
    else:
        cfg.pop("alerting", None)
    jobs = []
    for job in cfg["scrape_configs"]:
        if job["job_name"] == "corvid":
            job["static_configs"] = [
                {"targets": [loopback(t) for t in a.target], "labels": {"env": "local"}}
            ]
        elif job["job_name"] == "prometheus":
            job["static_configs"] = [{"targets": [loopback(a.listen)]}]
        elif job["job_name"] == "alertmanager":
            if not a.alertmanager:
                continue
            job["static_configs"] = [{"targets": [loopback(a.alertmanager)]}]
        else:
            continue
        jobs.append(job)
    cfg["scrape_configs"] = jobs
    if a.remote_write:
        rw = remote_write_example((src_dir / "prometheus.yml").read_text())
        assert len(rw) == 1, "one remote_write example expected"
        rw[0]["url"] = a.remote_write
        rw[0].setdefault("queue_config", {})["batch_send_deadline"] = a.interval
        cfg["remote_write"] = rw
    (out_dir / "prometheus.yml").write_text(yaml.safe_dump(cfg, sort_keys=False))


def render_alertmanager(a):
    cfg = yaml.safe_load((DEPLOY / "alertmanager" / "alertmanager.yml").read_text())
    # No mail and no outside URL: every receiver becomes a webhook to the local receiver,
    # tagged with the receiver's name. The routing tree and inhibit rules are unchanged.
    for key in list(cfg["global"]):
        if key.startswith("smtp_"):
            del cfg["global"][key]
    for r in cfg["receivers"]:
        name = r["name"]
        for k in list(r):
            if k.endswith("_configs"):
                del r[k]
        r["webhook_configs"] = [{"url": f"{a.webhook}?receiver={name}", "send_resolved": True}]
    if a.fast:
        def speed(route):
            for k, v in (("group_wait", "1s"), ("group_interval", "2s"), ("repeat_interval", "1h")):
                if k in route or route is cfg["route"]:
                    route[k] = v
            for child in route.get("routes", []):
                speed(child)
        speed(cfg["route"])
    pathlib.Path(a.out).write_text(yaml.safe_dump(cfg, sort_keys=False, allow_unicode=True))


RULE_FILES = ["corvid-recording.rules.yml", "corvid-alerts.rules.yml"]


def prometheusrule_text():
    head = """# prometheus-operator PrometheusRule with the same groups as
# deploy/prometheus/rules/*.rules.yml (recording rules, then alerts).
# GENERATED by `python3 deploy/lib/render.py prometheusrule`: edit the rule files and
# regenerate; deploy/tests/run.sh fails when this file is out of date.
# The `release` label must match your Prometheus' ruleSelector.
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata:
  name: corvid
  namespace: llm
  labels:
    app.kubernetes.io/name: corvid
    release: kube-prometheus-stack
spec:
  groups:
"""
    body = []
    for name in RULE_FILES:
        text = (DEPLOY / "prometheus" / "rules" / name).read_text()
        lines = text.splitlines()
        start = lines.index("groups:") + 1
        body.append(f"    # ---- from deploy/prometheus/rules/{name}")
        body.extend(("  " + ln) if ln.strip() else "" for ln in lines[start:])
    return head + "\n".join(body).rstrip() + "\n"


def render_prometheusrule(a):
    path = DEPLOY / "kubernetes" / "prometheusrule.yaml"
    text = prometheusrule_text()
    if a.check:
        groups = []
        for name in RULE_FILES:
            groups += yaml.safe_load((DEPLOY / "prometheus" / "rules" / name).read_text())["groups"]
        current = path.read_text() if path.exists() else ""
        if current != text or yaml.safe_load(current)["spec"]["groups"] != groups:
            sys.exit(f"{path} is out of date: run python3 deploy/lib/render.py prometheusrule")
        return
    path.write_text(text)


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    n = sub.add_parser("nginx")
    n.add_argument("--out", required=True)
    n.add_argument("--prefix", required=True)
    n.add_argument("--listen", required=True)
    n.add_argument("--upstream", action="append", default=[],
                   help="a replica serving the one model (every model routes to all of them)")
    n.add_argument("--model", action="append", default=[], metavar="NAME=HOST:PORT",
                   help="a replica serving model NAME (repeat per replica): one upstream per "
                   "model, routed by the request's model; unknown models get the gateway's 404")
    pr = sub.add_parser("prometheus")
    pr.add_argument("--out-dir", required=True)
    pr.add_argument("--listen", required=True)
    pr.add_argument("--target", action="append", required=True)
    pr.add_argument("--alertmanager")
    pr.add_argument("--interval", default="15s")
    pr.add_argument(
        "--remote-write",
        help="enable the remote_write example, sending to this URL (e.g. a receiver "
        "Prometheus' /api/v1/write standing in for Thanos Receive or Mimir)",
    )
    am = sub.add_parser("alertmanager")
    am.add_argument("--out", required=True)
    am.add_argument("--webhook", required=True)
    am.add_argument("--fast", action="store_true")
    pr = sub.add_parser("prometheusrule")
    pr.add_argument("--check", action="store_true")
    a = p.parse_args()
    {"nginx": render_nginx, "prometheus": render_prometheus, "alertmanager": render_alertmanager,
     "prometheusrule": render_prometheusrule}[a.cmd](a)


if __name__ == "__main__":
    main()
