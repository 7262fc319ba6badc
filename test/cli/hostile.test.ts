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
import { linearModules } from '../../src/engine/params';
import { writeSafetensors } from '../../src/io/safetensors';
import type { RawTensors } from '../../src/engine/config';
import { writeTinyHfCheckpoint, type TinyCheckpoint } from '../tiny-checkpoint';
import { LLAMA_VOCAB_SIZE, llamaStyleTokenizerConfig, llamaStyleTokenizerJson } from '../fixtures/tokenizers';
import { cli } from './run-cli';

let tmp: string;
beforeAll(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), 'webtune-hostile-'));
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

async function tinyModel(name: string): Promise<string> {
  return (await tinyModelWithConfig(name)).dir;
}

async function tinyModelWithConfig(name: string): Promise<{ dir: string; ck: TinyCheckpoint }> {
  const dir = path.join(tmp, name);
  const ck = await writeTinyHfCheckpoint(dir, 'llama', {
    vocab: LLAMA_VOCAB_SIZE,
    extraFiles: { 'tokenizer.json': llamaStyleTokenizerJson(), 'tokenizer_config.json': llamaStyleTokenizerConfig() },
  });
  return { dir, ck };
}

/** A PEFT LoRA adapter folder (r = 2 on q_proj) for `ck` with every A and B value `value`. */
async function writeAdapter(
  dir: string,
  ck: TinyCheckpoint,
  value: number,
  config: Record<string, unknown> = {},
): Promise<string> {
  await mkdir(dir, { recursive: true });
  const r = 2;
  const tensors: RawTensors = new Map();
  for (const m of linearModules(ck.config).filter((x) => x.short === 'q_proj')) {
    tensors.set(`base_model.model.${m.name}.lora_A.weight`, {
      shape: [r, m.inFeatures],
      data: new Float32Array(r * m.inFeatures).fill(value),
    });
    tensors.set(`base_model.model.${m.name}.lora_B.weight`, {
      shape: [m.outFeatures, r],
      data: new Float32Array(m.outFeatures * r).fill(value),
    });
  }
  const cfg = { peft_type: 'LORA', task_type: 'CAUSAL_LM', r, lora_alpha: 2, target_modules: ['q_proj'], ...config };
  await writeFile(path.join(dir, 'adapter_config.json'), JSON.stringify(cfg));
  await writeFile(path.join(dir, 'adapter_model.safetensors'), writeSafetensors(tensors, { format: 'pt' }));
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

describe('adapters and non-finite results', () => {
  it('score with an adapter whose finite values overflow the logits: exit 1 naming mean_nll, never "mean_nll": null', async () => {
    const { dir, ck } = await tinyModelWithConfig('nll-model');
    const ad = await writeAdapter(path.join(tmp, 'huge-adapter'), ck, 1e30, { base_model_name_or_path: 'nll-model' });
    const r = await cli(['score', '--model', dir, '--text', 'hello world', '--adapter', ad, '--backend', 'cpu']);
    expect(r.code, r.stderr).toBe(1);
    expect(r.stdout).not.toContain('null');
    expect(r.stderr).toMatch(/the mean NLL of the text is (NaN|Infinity)/);
    expect(r.stderr).toContain(`with adapter ${ad}`);
    expect(r.stderr).toContain('mean_nll and perplexity cannot be reported');
  });

  it('an adapter for another base model: a warning naming both; same shapes, so it loads', async () => {
    const { dir, ck } = await tinyModelWithConfig('base-a');
    const ad = await writeAdapter(path.join(tmp, 'other-adapter'), ck, 0.01, {
      base_model_name_or_path: 'someone/other-model',
    });
    const r = await cli(['score', '--model', dir, '--text', 'hello world', '--adapter', ad, '--backend', 'cpu']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain('warning');
    expect(r.stderr).toContain('"someone/other-model"');
    expect(r.stderr).toContain('the loaded model is "base-a"');
    expect(Number.isFinite(JSON.parse(r.stdout).mean_nll)).toBe(true);
    // The same adapter naming this model (as a path ending in its folder name): no warning.
    const same = await writeAdapter(path.join(tmp, 'same-adapter'), ck, 0.01, {
      base_model_name_or_path: '/models/base-a/',
    });
    const r2 = await cli(['score', '--model', dir, '--text', 'hello world', '--adapter', same, '--backend', 'cpu']);
    expect(r2.code, r2.stderr).toBe(0);
    expect(r2.stderr).not.toContain('warning');
  });

  it('target_modules as a regular expression with exponential backtracking is refused naming the field', async () => {
    const { dir, ck } = await tinyModelWithConfig('re-model');
    const ad = await writeAdapter(path.join(tmp, 'regex-adapter'), ck, 0.01, { target_modules: '(a+)+b|.*q_proj' });
    const r = await cli(['score', '--model', dir, '--text', 'hello', '--adapter', ad, '--backend', 'cpu']);
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toContain('adapter_config.json: "target_modules"');
    expect(r.stderr).toContain('exponential time');
    // A benign pattern (PEFT re.fullmatch) selects the q_proj layers.
    const ok = await writeAdapter(path.join(tmp, 'regex-ok'), ck, 0.01, { target_modules: '.*\\.q_proj' });
    const r2 = await cli(['score', '--model', dir, '--text', 'hello', '--adapter', ok, '--backend', 'cpu']);
    expect(r2.code, r2.stderr).toBe(0);
  });
});

describe('progress when stderr is not a terminal', () => {
  it('data with a model on 6000 rows prints plain progress lines (no escape codes) while tokenizing', async () => {
    const dir = await tinyModel('progress-model');
    const rows = Array.from({ length: 6000 }, (_, i) => ({ instruction: `Say ${i}`, output: `Number ${i}.` }));
    const data = path.join(tmp, 'rows-6000.json');
    await writeFile(data, JSON.stringify(rows));
    const r = await cli(['data', '--model', dir, '-d', data, '--validation', '0']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr.includes('\r') || r.stderr.includes('\u001b')).toBe(false);
    const lines = r.stderr.split('\n').filter((l) => l.startsWith('tokenizing train:'));
    expect(lines.length).toBeGreaterThanOrEqual(5);
    for (const l of lines) expect(l).toMatch(/^tokenizing train: \d+ \/ 6000 examples \(\d+%\)$/);
    expect(lines[0]).toBe('tokenizing train: 1000 / 6000 examples (17%)');
    expect(lines[lines.length - 1]).toBe('tokenizing train: 6000 / 6000 examples (100%)');
    // A small dataset stays silent.
    const small = path.join(tmp, 'rows-10.json');
    await writeFile(small, JSON.stringify(rows.slice(0, 10)));
    const r2 = await cli(['data', '--model', dir, '-d', small, '--validation', '0']);
    expect(r2.code, r2.stderr).toBe(0);
    expect(r2.stderr).toBe('');
  });
});
