// Validate Prometheus Operator custom resources (PodMonitor, ServiceMonitor, PrometheusRule, ...)
// against the schemas generated from the operator's CRDs (@kubernetes-models/prometheus-operator).
// kubernetes-validate only knows built-in kinds, so contrib's custom resources are checked here.
//
// Usage: node validate-crds.mjs FILE.json...   (each file: one object or a list of objects,
// already converted from YAML; tests/contrib/test_kubernetes.py does the conversion)
// Exit 0 when every object validates, 1 otherwise (each error printed on stderr).
import { readFileSync } from "node:fs";
import * as v1 from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1";

let failed = false;
for (const file of process.argv.slice(2)) {
  const data = JSON.parse(readFileSync(file, "utf8"));
  for (const obj of Array.isArray(data) ? data : [data]) {
    const name = `${file}: ${obj.kind}/${obj.metadata?.name}`;
    const Model = obj.apiVersion === "monitoring.coreos.com/v1" ? v1[obj.kind] : undefined;
    if (!Model) {
      console.error(`${name}: unknown kind ${obj.apiVersion}/${obj.kind}`);
      failed = true;
      continue;
    }
    try {
      new Model(obj).validate();
      console.log(`${name}: valid`);
    } catch (err) {
      console.error(`${name}: ${err.message}`);
      failed = true;
    }
  }
}
process.exit(failed ? 1 : 0);
