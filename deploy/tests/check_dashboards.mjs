// Type-checks Grafana dashboard JSON against the pinned @grafana/schema TypeScript types.
//
// usage: node check_dashboards.mjs <npm-cache-dir> <dashboard.json>...
//
// For each dashboard a TypeScript module is generated in which the JSON is an object
// literal assigned to `Json<Dashboard>`; each panel's `options` and
// `fieldConfig.defaults.custom` are also assigned to the panel plugin's own types
// (timeseries, gauge, stat, piechart: Partial<Options>, Partial<FieldConfig>). tsc then
// rejects unknown keys (excess-property checks), wrong value types and bad enum values.
// `Json<T>` only turns string enums into the unions of their values, as JSON holds plain
// strings. Then a few structural rules that types cannot express are checked here.
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";

const [cacheDir, ...files] = process.argv.slice(2);
if (!cacheDir || files.length === 0) {
  console.error("usage: node check_dashboards.mjs <npm-cache-dir> <dashboard.json>...");
  process.exit(2);
}

const PLUGIN = {
  timeseries: "TimeSeriesPanelCfg_types.gen",
  gauge: "GaugePanelCfg_types.gen",
  stat: "StatPanelCfg_types.gen",
  piechart: "PieChartPanelCfg_types.gen",
};

const problems = [];
let src = `import type { Dashboard } from "@grafana/schema";\n`;
for (const [type, mod] of Object.entries(PLUGIN)) {
  src += `import type * as ${type} from "@grafana/schema/dist/esm/raw/composable/${type}/panelcfg/x/${mod}";\n`;
}
src += `
type Json<T> = T extends string
  ? \`\${T}\`
  : T extends number | boolean | null | undefined
    ? T
    : T extends Array<infer U>
      ? Array<Json<U>>
      : T extends object
        ? { [K in keyof T]: Json<T[K]> }
        : T;
interface PromTarget {
  refId: string;
  expr: string;
  legendFormat?: string;
  editorMode?: "code" | "builder";
  range?: boolean;
  instant?: boolean;
  hide?: boolean;
  datasource?: { type?: string; uid?: string };
}
`;

files.forEach((file, fi) => {
  const d = JSON.parse(fs.readFileSync(file, "utf8"));
  src += `\n// ${file}\nexport const dashboard${fi}: Json<Dashboard> = ${JSON.stringify(d, null, 1)};\n`;
  const ids = new Set();
  const dsVars = new Set((d.templating?.list ?? []).filter((v) => v.type === "datasource").map((v) => v.name));
  const allVars = new Set((d.templating?.list ?? []).map((v) => v.name));
  const flat = [];
  for (const p of d.panels ?? []) {
    flat.push(p);
    for (const c of p.panels ?? []) flat.push(c);
  }
  flat.forEach((p, pi) => {
    const where = `${file}: panel ${JSON.stringify(p.title)}`;
    if (ids.has(p.id)) problems.push(`${where}: duplicate id ${p.id}`);
    ids.add(p.id);
    const g = p.gridPos;
    if (!g || g.x < 0 || g.w < 1 || g.x + g.w > 24 || g.h < 1) problems.push(`${where}: bad gridPos`);
    if (p.type === "row") return;
    if (!(p.type in PLUGIN)) problems.push(`${where}: panel type ${p.type} not checked/allowed`);
    else {
      src += `export const d${fi}p${pi}opts: Json<Partial<${p.type}.Options>> = ${JSON.stringify(p.options ?? {})};\n`;
      const custom = p.fieldConfig?.defaults?.custom;
      if (custom) src += `export const d${fi}p${pi}custom: Json<Partial<${p.type}.FieldConfig>> = ${JSON.stringify(custom)};\n`;
    }
    if (!p.targets?.length) problems.push(`${where}: no targets`);
    (p.targets ?? []).forEach((t, ti) => {
      src += `export const d${fi}p${pi}t${ti}: PromTarget = ${JSON.stringify(t)};\n`;
      for (const m of (t.expr ?? "").matchAll(/\$\{?(\w+)/g)) {
        if (!m[1].startsWith("__") && !allVars.has(m[1])) problems.push(`${where}: expr uses undefined variable $${m[1]}`);
      }
    });
    const uid = p.datasource?.uid ?? "";
    const dv = uid.match(/^\$\{(\w+)\}$/);
    if (!dv || !dsVars.has(dv[1])) problems.push(`${where}: datasource must be a datasource variable, got ${uid}`);
  });
});

const work = fs.mkdtempSync(path.join(cacheDir, "tscheck-"));
try {
  fs.writeFileSync(path.join(work, "dashboards.ts"), src);
  fs.writeFileSync(
    path.join(work, "tsconfig.json"),
    JSON.stringify({
      compilerOptions: {
        strict: true,
        noEmit: true,
        target: "es2022",
        module: "esnext",
        moduleResolution: "bundler",
        skipLibCheck: true,
        types: [],
      },
      files: ["dashboards.ts"],
    }),
  );
  const tsc = path.join(cacheDir, "node_modules", "typescript", "bin", "tsc");
  try {
    execFileSync(process.execPath, [tsc, "-p", work], { stdio: "pipe", encoding: "utf8" });
  } catch (e) {
    problems.push(`tsc rejected the dashboards:\n${e.stdout}${e.stderr}`);
  }
} finally {
  if (!process.env.KEEP_TSCHECK) fs.rmSync(work, { recursive: true, force: true });
  else console.error(`kept ${work}`);
}

if (problems.length) {
  for (const p of problems) console.error(`FAIL ${p}`);
  process.exit(1);
}
console.log(`ok: ${files.length} dashboard(s) type-check against @grafana/schema`);
