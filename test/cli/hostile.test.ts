/**
 * Hostile input on the command line (issue #12, round two): what is not a regular file, non-TTY progress,
 * divergence, non-finite JSON, adapters for another model. Each case: exit code and a message naming the
 * file/field, the value and the limit.
 */
import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeTinyHfCheckpoint } from '../tiny-checkpoint';
import { llamaStyleTokenizerConfig, llamaStyleTokenizerJson } from '../fixtures/tokenizers';
import { cli } from './run-cli';

let tmp: string;
beforeAll(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), 'webtune-hostile-'));
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

async function tinyModel(name: string, overrides: Record<string, unknown> = {}): Promise<string> {
  const dir = path.join(tmp, name);
  await writeTinyHfCheckpoint(dir, 'llama', {
    ...overrides,
    extraFiles: { 'tokenizer.json': llamaStyleTokenizerJson(), 'tokenizer_config.json': llamaStyleTokenizerConfig() },
  });
  return dir;
}

describe('what is not a regular file', () => {
  it('data on /dev/zero stops at the stream cap naming the file and the cap; a folder is named as one', async () => {
    const zero = await cli(['data', '-d', '/dev/zero']);
    expect(zero.code).toBe(1);
    expect(zero.stderr).toContain('dataset /dev/zero is a character device');
    expect(zero.stderr).toContain('256 MB');
    expect(zero.stderr).toContain('save the data to a regular file');
    const dir = await cli(['data', '-d', tmp]);
    expect(dir.code).toBe(1);
    expect(dir.stderr).toContain(`dataset ${tmp} is a folder`);
  });

  it('a dataset through a FIFO is read (it has no declared size)', async () => {
    const fifo = path.join(tmp, 'rows.fifo');
    execFileSync('mkfifo', [fifo]);
    const rows = JSON.stringify([
      { instruction: 'a', output: 'b' },
      { instruction: 'c', output: 'd' },
    ]);
    const writer = (async () => writeFile(fifo, rows))();
    const r = await cli(['data', '-d', fifo, '--format', 'alpaca']);
    await writer;
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout).examples).toBe(2);
  });

  it('model.safetensors that is a folder, a FIFO or /dev/zero is named as such, not as missing', async () => {
    for (const kind of ['folder', 'fifo', 'zero'] as const) {
      const dir = await tinyModel(`not-a-file-${kind}`);
      const f = path.join(dir, 'model.safetensors');
      await rm(f);
      if (kind === 'folder') await mkdir(f);
      else if (kind === 'fifo') execFileSync('mkfifo', [f]);
      else await symlink('/dev/zero', f);
      const r = await cli(['score', '--model', dir, '--text', 'hello']);
      expect(r.code, r.stderr).toBe(1);
      const what = { folder: 'a folder', fifo: 'a FIFO (named pipe)', zero: 'a character device' }[kind];
      expect(r.stderr).toContain(`${f} is ${what}, not a regular file`);
      expect(r.stderr).not.toMatch(/not found|missing/);
    }
  });
});
