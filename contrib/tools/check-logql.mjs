// Parse LogQL expressions with Grafana's own LogQL grammar (@grafana/lezer-logql, the parser
// behind Grafana's Loki query editor). Lezer parsers recover from errors by inserting error
// nodes instead of throwing, so any error node in the tree is a syntax error.
//
// Usage: node check-logql.mjs FILE.json   (FILE: a JSON list of {"where": ..., "expr": ...})
// Exit 0 when every expression parses cleanly, 1 otherwise (each error printed on stderr).
import { readFileSync } from "node:fs";
import { parser } from "@grafana/lezer-logql";

let failed = false;
for (const { where, expr } of JSON.parse(readFileSync(process.argv[2], "utf8"))) {
  const tree = parser.parse(expr);
  const errors = [];
  tree.iterate({
    enter(node) {
      if (node.type.isError) errors.push(node.from);
    },
  });
  if (tree.topNode.type.name !== "LogQL" || errors.length > 0) {
    failed = true;
    for (const at of errors) {
      console.error(`${where}: syntax error at offset ${at}: ${expr.slice(0, at)} <HERE> ${expr.slice(at)}`);
    }
  } else {
    console.log(`${where}: ok`);
  }
}
process.exit(failed ? 1 : 0);
