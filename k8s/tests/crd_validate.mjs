// Validates custom resources against the schemas of registry packages
// (k8s/schemas/README.md): the validators that @kubernetes-models/* (npm,
// pinned in k8s/tools/package-lock.json) generate from the operators' Go API
// types, plus our ObjectStore schema (k8s/schemas/objectstore.mjs).
//
// Usage: node crd_validate.mjs NODE_MODULES < objects.json
//   objects.json: [{"id": "...", "doc": {...}}, ...]
// Prints JSON: {"kinds": {"<apiVersion> <kind>": "<source>"} (of the API
//               versions the input uses),
//               "results": [{"id", "source" (null: no schema), "errors": [...]}]}
//
// Strictness. The generated schemas list every field but do not reject
// others (no `additionalProperties: false`), so a misspelt field would pass.
// The walk below finds them with the schema itself: a field is known when
// the validator's verdict on the object changes between the field holding a
// value no schema accepts (a function: not a string, number, boolean, array,
// object or null) and the field being absent; when it does not change, the
// schema does not look at that field, and it is reported unknown -- what the
// API server's strict field validation does. Known limit: keys inside a
// free-form field (one whose schema accepts anything) are reported unknown
// too; no object here has one.

import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const PACKAGES = [
  "@kubernetes-models/cloudnative-pg",
  "@kubernetes-models/gateway-api",
  "@kubernetes-models/external-secrets",
  "@kubernetes-models/prometheus-operator",
];
const OURS = fileURLToPath(new URL("../schemas/objectstore.mjs", import.meta.url));

const nodeModules = process.argv[2];
if (!nodeModules || !existsSync(nodeModules)) {
  console.error(`usage: node crd_validate.mjs NODE_MODULES < objects.json (no ${nodeModules})`);
  process.exit(2);
}
const load = (path) => import(pathToFileURL(join(nodeModules, path)).href);
const versionOf = (pkg) => JSON.parse(readFileSync(join(nodeModules, pkg, "package.json"), "utf8")).version;

/** Errors of a registry model's validator on `data`, paths prefixed. */
function check(Model, data, prefix = "") {
  try {
    new Model(data).validate();
    return [];
  } catch (error) {
    if (!Array.isArray(error.errors)) throw error;
    return error.errors.map((e) => {
      const path = prefix + e.instancePath;
      return { path, message: e.message ?? e.keyword, key: `${path}|${e.keyword}|${JSON.stringify(e.params)}` };
    });
  }
}

// --- the schemas: every kind the packages define -------------------------
// Only the API groups and versions the input uses are loaded (a package's
// kinds live under <group>/<version>/), which keeps a run under a second.
const objects = JSON.parse(readFileSync(0, "utf8"));
const apiVersions = new Set(objects.map(({ doc }) => doc?.apiVersion).filter((v) => typeof v === "string"));
const kinds = new Map(); // "<apiVersion> <kind>" -> {source, validate(doc) -> errors}
for (const pkg of PACKAGES) {
  const source = `${pkg}@${versionOf(pkg)}`;
  for (const apiVersion of apiVersions) {
    // API groups are directories named like DNS names (github.com holds the
    // Go packages' shared types, not kinds).
    const [group, version] = apiVersion.split("/");
    if (!version || !group.includes(".") || group === "github.com") continue;
    const index = join(pkg, group, version, "index.js");
    if (!existsSync(join(nodeModules, index))) continue;
    for (const Model of Object.values(await load(index))) {
      if (typeof Model === "function" && Model.apiVersion === apiVersion && typeof Model.kind === "string") {
        kinds.set(`${Model.apiVersion} ${Model.kind}`, { source, validate: (doc) => check(Model, doc) });
      }
    }
  }
}
const objectStore = await import(pathToFileURL(OURS).href);
if (apiVersions.has(objectStore.apiVersion)) {
  const cnpg = `@kubernetes-models/cloudnative-pg@${versionOf("@kubernetes-models/cloudnative-pg")}`;
  const models = {
    ObjectMeta: (await load("@kubernetes-models/apimachinery/apis/meta/v1/ObjectMeta.js")).ObjectMeta,
    BarmanObjectStoreConfiguration: (
      await load("@kubernetes-models/cloudnative-pg/github.com/cloudnative-pg/barman-cloud/pkg/api/BarmanObjectStoreConfiguration.js")
    ).BarmanObjectStoreConfiguration,
    EnvVar: (await load("kubernetes-models/v1/EnvVar.js")).EnvVar,
    ResourceRequirements: (await load("kubernetes-models/v1/ResourceRequirements.js")).ResourceRequirements,
  };
  kinds.set(`${objectStore.apiVersion} ${objectStore.kind}`, {
    source: `${objectStore.source} of ${cnpg}`,
    validate: objectStore.makeValidator({ check, models }),
  });
}

// --- strictness -------------------------------------------------------------
const NO_SCHEMA_ACCEPTS = function notAValue() {};

function sameVerdict(a, b) {
  if (a.length !== b.length) return false;
  const keys = a.map((e) => e.key).sort();
  return b
    .map((e) => e.key)
    .sort()
    .every((key, i) => key === keys[i]);
}

/** Paths of the fields of `doc` that the schema does not know. */
function unknownFields(validate, doc) {
  const unknown = [];
  const walk = (node, path) => {
    if (Array.isArray(node)) {
      node.forEach((item, i) => walk(item, `${path}/${i}`));
      return;
    }
    if (node === null || typeof node !== "object") return;
    for (const key of Object.keys(node)) {
      const value = node[key];
      node[key] = NO_SCHEMA_ACCEPTS;
      const withBadValue = validate(doc);
      delete node[key];
      const without = validate(doc);
      node[key] = value; // (order of keys is irrelevant to the schemas)
      const at = `${path}/${key.replaceAll("~", "~0").replaceAll("/", "~1")}`;
      if (sameVerdict(withBadValue, without)) unknown.push(at);
      else walk(value, at);
    }
  };
  walk(doc, "");
  return unknown;
}

// --- main -------------------------------------------------------------------
const results = objects.map(({ id, doc }) => {
  const entry = kinds.get(`${doc?.apiVersion} ${doc?.kind}`);
  if (!entry) return { id, source: null, errors: [] };
  const copy = structuredClone(doc);
  const errors = entry.validate(copy).map((e) => `${e.path || "/"}: ${e.message}`);
  for (const path of unknownFields(entry.validate, copy)) errors.push(`${path}: unknown field (not in the schema)`);
  return { id, source: entry.source, errors: [...new Set(errors)] };
});
process.stdout.write(
  JSON.stringify({ kinds: Object.fromEntries([...kinds].map(([k, v]) => [k, v.source])), results }) + "\n",
);
