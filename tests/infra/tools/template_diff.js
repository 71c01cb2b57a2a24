// What CloudFormation does to each resource when OLD is updated to NEW, as the CDK CLI's own diff sees it
// (@aws-cdk/cloudformation-diff: the resource specification's replacement rules).
// Usage: node template_diff.js OLD.template.json NEW.template.json  ->  {"<logical id>": {"impact", "type"}}
const fs = require("fs");
const { fullDiff } = require("@aws-cdk/cloudformation-diff");

const [oldPath, newPath] = process.argv.slice(2);
const diff = fullDiff(JSON.parse(fs.readFileSync(oldPath, "utf8")), JSON.parse(fs.readFileSync(newPath, "utf8")));
const out = {};
diff.resources.forEachDifference((logicalId, change) => {
  out[logicalId] = { impact: change.changeImpact, type: change.newResourceType || change.oldResourceType };
});
process.stdout.write(JSON.stringify(out));
