/** Reading what etcd holds, and refusing what a caller must not write. */
import type { IKeyValue, ITxnResponse } from 'etcd3';
import { RegionctlError } from '../errors.js';
import { REGION_NAME_PATTERN } from '../spec/patterns.js';

export function text(kv: IKeyValue | undefined): string | undefined {
  return kv ? kv.value.toString('utf8') : undefined;
}

export function json<T>(kv: IKeyValue | undefined, key: string): T | undefined {
  const t = text(kv);
  if (t === undefined) return undefined;
  try {
    return JSON.parse(t) as T;
  } catch {
    throw new RegionctlError(
      'E_AUTHORITY_CORRUPT',
      `the value at etcd key ${key} is not JSON: it was not written by regionctl`,
      `inspect it (\`etcdctl get ${key}\`) and delete it if it is garbage`,
    );
  }
}

/** The single kv of the i-th range operation of a transaction, if any. */
export function rangeKv(res: ITxnResponse, i: number): IKeyValue | undefined {
  return res.responses[i]?.response_range?.kvs[0];
}

export function invalid(message: string): RegionctlError {
  return new RegionctlError('E_AUTHORITY_INVALID', message, 'a bug in the caller: fix the arguments');
}

/** Region names become key segments: the spec's rule keeps them free of `/`. */
export function checkRegion(region: string): void {
  if (!new RegExp(REGION_NAME_PATTERN).test(region)) throw invalid(`'${region}' is not a region name`);
}

export function checkEpoch(epoch: number, what: string): void {
  if (!Number.isSafeInteger(epoch) || epoch < 1)
    throw invalid(`${what} ${epoch} is not an epoch (an integer ≥ 1)`);
}
