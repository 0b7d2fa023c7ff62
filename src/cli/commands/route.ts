import { type Command, InvalidArgumentError, Option } from 'commander';
import { parseLatLon } from '../../routing/geo.js';
import { formatOption, specOption } from '../options.js';

export function registerRoute(program: Command): void {
  program
    .command('route')
    .description('Show where reads go: per region (or for a point) the replica or primary that serves them')
    .addOption(specOption())
    .addOption(
      new Option('--region <region>', 'where the reader is: a region of regions.yaml').conflicts('near'),
    )
    .addOption(
      new Option('--near <lat,lon>', 'where the reader is: a point in degrees, e.g. 48.85,2.35')
        .argParser((v: string) => {
          const p = parseLatLon(v);
          if (!p) throw new InvalidArgumentError('--near takes LAT,LON in degrees, e.g. 48.85,2.35');
          return p;
        })
        .conflicts('region'),
    )
    .option('--class <class>', 'read class (readRouting.classes); default: the staleness budget')
    .option('--fresh', 'observe the regions now instead of reading the published routing document')
    .addOption(formatOption(['text', 'json'], 'text'))
    .addHelpText(
      'after',
      `
By default route prints the routing document the leading reconciler publishes every
pass (\`regionctl reconcile --watch\`; readRouting.document), which is what the client
library and the read DNS records follow. Without one, or with --fresh, it observes the
regions once and computes the table (hysteresis state from the control store).

Examples:
  regionctl route
  regionctl route --region ap-southeast-1 --class catalog
  regionctl route --near 48.85,2.35 --format json`,
    )
    .action(
      async (opts: {
        spec: string;
        region?: string;
        near?: { lat: number; lon: number };
        class?: string;
        fresh?: boolean;
        format: string;
      }) => {
        const { runRoute } = await import('../run-route.js');
        process.exitCode = await runRoute(opts);
      },
    );
}
