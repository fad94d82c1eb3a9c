// Validates custom resources (prometheus-operator ServiceMonitor/PrometheusRule, KEDA
// ScaledObject, Gateway API HTTPRoute) against the schemas published in the npm packages
// @kubernetes-models/prometheus-operator, @kubernetes-models/keda and
// @kubernetes-models/gateway-api (generated from the projects' own CRDs):
//   1. each object's validate() (JSON schema: required fields, types, enums, formats);
//   2. a TypeScript check of the object as a literal of the package's interface
//      (IServiceMonitor, IPrometheusRule, IScaledObject, IHTTPRoute), which also rejects unknown or
//      misspelt fields, like `kubectl apply --validate=strict` would.
//
// usage: node check_crds.mjs <npm-cache-dir> <manifest.json>...
// (the JSON files hold the YAML documents as an array; run.sh converts them)
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { createRequire } from "node:module";

const [cacheDir, ...files] = process.argv.slice(2);
const KINDS = {
  "monitoring.coreos.com/v1/ServiceMonitor": ["@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1", "ServiceMonitor"],
  "monitoring.coreos.com/v1/PrometheusRule": ["@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1", "PrometheusRule"],
  "keda.sh/v1alpha1/ScaledObject": ["@kubernetes-models/keda/keda.sh/v1alpha1", "ScaledObject"],
  "gateway.networking.k8s.io/v1/HTTPRoute": ["@kubernetes-models/gateway-api/gateway.networking.k8s.io/v1", "HTTPRoute"],
};
// Kinds with no published schema in any reachable registry: checked elsewhere
// (check_inference_pool.py, against a schema derived from the API reference).
const ELSEWHERE = new Set([
  "inference.networking.k8s.io/v1/InferencePool",
  "inference.networking.x-k8s.io/v1alpha2/InferenceObjective",
]);

const problems = [];
let checked = 0;
let src = "";
const imports = new Set();
const objs = [];
for (const file of files) {
  for (const obj of JSON.parse(fs.readFileSync(file, "utf8"))) {
    if (!obj) continue;
    const key = `${obj.apiVersion}/${obj.kind}`;
    const where = `${path.basename(file)}: ${key} ${obj.metadata?.name}`;
    if (ELSEWHERE.has(key)) continue;
    if (!(key in KINDS)) {
      problems.push(`${where}: no schema for this kind here`);
      continue;
    }
    objs.push({ where, key, obj });
  }
}

const work = fs.mkdtempSync(path.join(cacheDir, "crdcheck-"));
try {
  for (const { where, key, obj } of objs) {
    const [mod, cls] = KINDS[key];
    const m = await import(path.join(cacheDir, "node_modules", mod, "index.js"));
    try {
      new m[cls](obj).validate();
      console.log(`PASS crd schema: ${where}`);
    } catch (e) {
      problems.push(`${where}: ${e.message}`);
    }
    imports.add(`import type { I${cls} } from "${mod}";`);
    src += `export const o${checked}: I${cls} = ${JSON.stringify(obj, null, 1)};\n`;
    checked++;
  }
  fs.writeFileSync(path.join(work, "crds.ts"), [...imports].join("\n") + "\n" + src);
  fs.writeFileSync(
    path.join(work, "tsconfig.json"),
    JSON.stringify({
      compilerOptions: { strict: true, noEmit: true, target: "es2022", module: "esnext",
                         moduleResolution: "bundler", skipLibCheck: true, types: [] },
      files: ["crds.ts"],
    }),
  );
  try {
    execFileSync(process.execPath, [path.join(cacheDir, "node_modules", "typescript", "bin", "tsc"), "-p", work],
      { stdio: "pipe", encoding: "utf8" });
    console.log(`PASS crd types: ${checked} object(s) have no unknown or mistyped field`);
  } catch (e) {
    problems.push(`tsc rejected the custom resources:\n${e.stdout}${e.stderr}`);
  }
} finally {
  fs.rmSync(work, { recursive: true, force: true });
}
for (const p of problems) console.log(`FAIL crd: ${p}`);
process.exit(problems.length || checked === 0 ? 1 : 0);
