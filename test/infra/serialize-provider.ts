/**
 * Serializes a dynamic provider exactly as `pulumi.dynamic.Resource` does (closure
 * serialization, secrets allowed) and prints the module text the Pulumi provider host
 * would load. Run with tsx, like the program: `node --import tsx serialize-provider.ts publication`.
 */
import * as pulumi from '@pulumi/pulumi';
import { channelProvider } from '../../infra/providers.js';

const provider = channelProvider(process.argv[2] === 'subscription' ? 'subscription' : 'publication');
const sf = await pulumi.runtime.serializeFunction(() => provider, { allowSecrets: true });
process.stdout.write(sf.text);
