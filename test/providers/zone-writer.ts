/**
 * Child process for the file DNS provider's concurrency test: upserts `count` records
 * named w<worker>-<i>.<zone> and exits. Run as: node --import tsx zone-writer.ts PATH ZONE WORKER COUNT
 */
import { FileDnsProvider } from '../../src/providers/dns/file.js';

const [path, zone, worker, count] = process.argv.slice(2);
if (!path || !zone || !worker || !count) throw new Error('usage: zone-writer PATH ZONE WORKER COUNT');
const dns = new FileDnsProvider({ path, zone, lockTimeoutMs: 30_000 });
for (let i = 0; i < Number(count); i++) {
  await dns.upsert(`w${worker}-${i}.${zone}`, { region: `r${worker}`, host: '127.0.0.1', port: 1000 + i }, 5);
}
