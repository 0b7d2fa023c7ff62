// What the Pulumi provider host does with a serialized dynamic provider
// (@pulumi/pulumi/cmd/dynamic-provider: requireFromString(text).handler()), in a plain
// Node process with no TypeScript loader: argv = provider file, operation; stdin = JSON args.
const { readFileSync } = require('node:fs');
const requireFromString = require('require-from-string');

const [file, op] = process.argv.slice(2);
const provider = requireFromString(readFileSync(file, 'utf8')).handler();
const args = JSON.parse(readFileSync(0, 'utf8'));
provider[op](...args).then(
  (r) => process.stdout.write(JSON.stringify(r ?? null)),
  (e) => {
    process.stderr.write(`${e.code ?? ''} ${e.message}\n`);
    process.exitCode = 1;
  },
);
