/** Test helper: the webtune command line run as a real subprocess (node bin/webtune.mjs …), stdout and stderr piped. */
import { spawn } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { ROOT } from '../helpers';

export const BIN = path.join(ROOT, 'bin', 'webtune.mjs');

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Run the CLI from a directory other than the repository, as an installed command would be. */
export function cli(args: string[], cwd = os.tmpdir()): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [BIN, ...args], { cwd, env: { ...process.env, NO_COLOR: '1' } });
    let stdout = '',
      stderr = '';
    p.stdout.on('data', (d) => (stdout += d));
    p.stderr.on('data', (d) => (stderr += d));
    p.on('error', reject);
    p.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}
