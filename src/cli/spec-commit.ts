/** The git commit of the spec file, for plan headers and the audit trail (null outside git). */
import { execFile } from 'node:child_process';
import { dirname } from 'node:path';

export function specCommit(specFile: string): Promise<string | null> {
  return new Promise((resolve) => {
    execFile('git', ['log', '-n1', '--format=%H', '--', specFile], { cwd: dirname(specFile) }, (err, out) =>
      resolve(err || !out.trim() ? null : out.trim()),
    );
  });
}
