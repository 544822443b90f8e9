// OUR schema of the Barman Cloud plugin's `barmancloud.cnpg.io/v1`
// `ObjectStore` -- written for this repository, NOT an upstream file.
//
// No package in the registries CI reaches ships this kind (k8s/schemas/
// README.md). Its spec is small: `configuration` is the barman-cloud
// library's BarmanObjectStoreConfiguration, the very Go type whose
// generated validator @kubernetes-models/cloudnative-pg ships (it is also
// the Cluster's in-tree `backup.barmanObjectStore`), so that part is checked
// by the registry package. Only the envelope around it is ours, written
// from the plugin's documented API (plugin-barman-cloud v0.14, "API
// reference": ObjectStoreSpec, InstanceSidecarConfiguration):
//
//   spec.configuration                  BarmanObjectStoreConfiguration, required
//   spec.retentionPolicy                string, ^[1-9][0-9]*[dwm]$ (e.g. 30d)
//   spec.instanceSidecarConfiguration   object:
//     env                               []core/v1 EnvVar
//     resources                         core/v1 ResourceRequirements
//     retentionPolicyIntervalSeconds    integer
//     logLevel                          error | warning | info | debug | trace
//     additionalContainerArgs           []string
//
// Unknown fields are found by crd_validate.mjs's strictness walk, as for
// every other kind: only the fields above are known. `status` is not
// listed: a manifest has none.

export const apiVersion = "barmancloud.cnpg.io/v1";
export const kind = "ObjectStore";
export const source =
  "k8s/schemas/objectstore.mjs (ours: plugin-barman-cloud v0.14 API) + BarmanObjectStoreConfiguration";

const RETENTION = /^[1-9][0-9]*[dwm]$/;
const LOG_LEVELS = ["error", "warning", "info", "debug", "trace"];

const isObject = (value) => value !== null && typeof value === "object" && !Array.isArray(value);

/**
 * A validator of ObjectStore objects: (doc) => [{ path, message, key }].
 * `check(Model, data, path)` runs a registry model's validator on a part;
 * `models` holds the registry models it needs.
 */
export function makeValidator({ check, models }) {
  return (doc) => {
    const errors = [];
    const err = (path, message) => errors.push({ path, message, key: `${path}|${message}` });
    if (!isObject(doc)) return [{ path: "", message: "must be object", key: "|object" }];
    // (An absent field and a field of the wrong type give different
    // errors: the strictness walk tells known fields by that.)
    for (const [name, value] of [["apiVersion", apiVersion], ["kind", kind]]) {
      if (doc[name] === undefined) err("", `must have required property '${name}'`);
      else if (typeof doc[name] !== "string") err(`/${name}`, "must be string");
      else if (doc[name] !== value) err(`/${name}`, `must be equal to "${value}"`);
    }
    if (doc.metadata === undefined) err("", "must have required property 'metadata'");
    else if (!isObject(doc.metadata)) err("/metadata", "must be object");
    else errors.push(...check(models.ObjectMeta, doc.metadata, "/metadata"));
    const spec = doc.spec;
    if (spec === undefined) err("", "must have required property 'spec'");
    else if (!isObject(spec)) err("/spec", "must be object");
    else {
      if (spec.configuration === undefined) err("/spec", "must have required property 'configuration'");
      else if (!isObject(spec.configuration)) err("/spec/configuration", "must be object");
      else errors.push(...check(models.BarmanObjectStoreConfiguration, spec.configuration, "/spec/configuration"));
      if (spec.retentionPolicy !== undefined) {
        if (typeof spec.retentionPolicy !== "string") err("/spec/retentionPolicy", "must be string");
        else if (!RETENTION.test(spec.retentionPolicy)) err("/spec/retentionPolicy", `must match pattern "${RETENTION.source}"`);
      }
      const sidecar = spec.instanceSidecarConfiguration;
      if (sidecar !== undefined) {
        const at = "/spec/instanceSidecarConfiguration";
        if (!isObject(sidecar)) err(at, "must be object");
        else {
          if (sidecar.env !== undefined) {
            if (!Array.isArray(sidecar.env)) err(`${at}/env`, "must be array");
            else
              sidecar.env.forEach((item, i) => {
                if (!isObject(item)) err(`${at}/env/${i}`, "must be object");
                else errors.push(...check(models.EnvVar, item, `${at}/env/${i}`));
              });
          }
          if (sidecar.resources !== undefined) {
            if (!isObject(sidecar.resources)) err(`${at}/resources`, "must be object");
            else errors.push(...check(models.ResourceRequirements, sidecar.resources, `${at}/resources`));
          }
          const seconds = sidecar.retentionPolicyIntervalSeconds;
          if (seconds !== undefined && !Number.isInteger(seconds)) err(`${at}/retentionPolicyIntervalSeconds`, "must be integer");
          if (sidecar.logLevel !== undefined && !LOG_LEVELS.includes(sidecar.logLevel))
            err(`${at}/logLevel`, `must be equal to one of the allowed values: ${LOG_LEVELS.join(", ")}`);
          const args = sidecar.additionalContainerArgs;
          if (args !== undefined) {
            if (!Array.isArray(args)) err(`${at}/additionalContainerArgs`, "must be array");
            else
              args.forEach((arg, i) => {
                if (typeof arg !== "string") err(`${at}/additionalContainerArgs/${i}`, "must be string");
              });
          }
        }
      }
    }
    return errors;
  };
}
