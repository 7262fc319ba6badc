/**
 * `webtune export-run` as a real subprocess on every shared dataset with stories260K: the bundle's YAML parses (the
 * `yaml` package), train_trl.py compiles (python3 -m py_compile), its settings read back equal the run's
 * configuration, and its data re-rendered with its template gives the ids and masks the run trains on. Also: a zip,
 * --from-run with a saved run, and clear refusals.
 */
import { execFileSync, spawn } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { unzipSync } from 'fflate';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseLlama2cTokenizer } from '../../src/io/tokenizer-llama2c';
import type { FinetuneConfig } from '../../src/train/config';
import { prepareSessionData } from '../../src/train/dataset';
import { DATASETS_DIR, HAVE_DATASETS, HAVE_STORIES, ROOT, STORIES_DIR, sharedMissing } from '../helpers';
import { expectAllSplits, expectSettingsRoundTrip } from '../train/export-check';

const BIN = path.join(ROOT, 'bin', 'webtune.mjs');
const STORIES_BIN = path.join(STORIES_DIR, 'stories260K.bin');

function cli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [BIN, ...args], { cwd: os.tmpdir(), env: { ...process.env, NO_COLOR: '1' } });
    let stdout = '',
      stderr = '';
    p.stdout.on('data', (d) => (stdout += d));
    p.stderr.on('data', (d) => (stderr += d));
    p.on('error', reject);
    p.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

async function readTree(dir: string, prefix = ''): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const rel = prefix + e.name;
    if (e.isDirectory()) for (const [k, v] of await readTree(path.join(dir, e.name), rel + '/')) out.set(k, v);
    else out.set(rel, await readFile(path.join(dir, e.name), 'utf8'));
  }
  return out;
}

function pyCompile(file: string): void {
  try {
    execFileSync('python3', ['-m', 'py_compile', file], { stdio: 'pipe' });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return; // no python3 on this machine
    throw new Error(String((err as { stderr?: Buffer }).stderr ?? err), { cause: err });
  }
}

let tmp: string;
beforeAll(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), 'webtune-export-cli-'));
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

const TRAINABLE = [
  'alpaca_en_demo.json',
  'code_alpaca_2k.json',
  'identity.json',
  'lima.json',
  'sharegpt_dummy_conversation.json',
  'c4_demo.jsonl',
  'gsm8k_test.jsonl',
  'self_instruct_seed_tasks.jsonl',
  'user_oriented_instructions.jsonl',
  'tinystories_sample.txt',
];

describe.skipIf(!HAVE_STORIES || !HAVE_DATASETS)(
  HAVE_STORIES && HAVE_DATASETS ? 'export-run on the shared datasets' : sharedMissing('export-run'),
  () => {
    it('each dataset: YAML parses, train_trl.py compiles, settings round-trip, data re-renders identically', async () => {
      const tok = parseLlama2cTokenizer(await readFile(path.join(STORIES_DIR, 'tok512.bin')), 'tok512.bin');
      const summary: Record<string, unknown> = {};
      for (const [k, name] of TRAINABLE.entries()) {
        const out = path.join(tmp, `run-${k}`);
        const dataFile = path.join(DATASETS_DIR, name);
        const r = await cli([
          'export-run',
          '--model',
          STORIES_BIN,
          '--base-model',
          'org/bigger-llama',
          '--data',
          dataFile,
          '--template',
          'instruction',
          '--eos-token',
          '\\n',
          '--max-length',
          '256',
          '--targets',
          'all-linear',
          '--r',
          '4',
          '--rslora',
          '--lr',
          '0.001',
          '--scheduler',
          'cosine',
          '--warmup-steps',
          '3',
          '--test-size',
          '0.1',
          '--save-steps',
          '7',
          '--out',
          out,
        ]);
        expect(r.code, r.stderr).toBe(0);
        const s = JSON.parse(r.stdout) as { train_examples: number; row_kind: string };
        const files = await readTree(out);
        pyCompile(path.join(out, 'train_trl.py'));
        const { config } = JSON.parse(files.get('webtune_run.json')!) as { config: FinetuneConfig };
        expect(config).toMatchObject({
          r: 4,
          use_rslora: true,
          learning_rate: 0.001,
          warmup_steps: 3,
          eos_token: '\n',
        });
        const data = prepareSessionData(tok, { train: [{ name, bytes: await readFile(dataFile) }] }, config);
        const trained = {
          train: data.train.examples,
          validation: data.validation.examples,
          test: data.test.examples,
        };
        expectSettingsRoundTrip({ files, config, trained }, { baseModel: 'org/bigger-llama', saveSteps: 7 });
        summary[name] = { rows: expectAllSplits(tok, { files, config, trained }), kind: s.row_kind };
        expect(s.train_examples).toBe(data.train.examples.length);
      }
      console.log('export-run bundles re-rendered identically:', summary);
    }, 300_000);

    it('questions-only files are refused naming the file; a .zip holds the same files', async () => {
      const q = await cli([
        'export-run',
        '-m',
        STORIES_BIN,
        '-d',
        path.join(DATASETS_DIR, 'mt_bench_question.jsonl'),
        '-o',
        path.join(tmp, 'q'),
      ]);
      expect(q.code).toBe(1);
      expect(q.stderr).toMatch(/mt_bench_question\.jsonl/);
      expect(q.stderr).not.toMatch(/\n\s+at /);

      const zip = path.join(tmp, 'bundle.zip');
      const r = await cli(['export-run', '-m', STORIES_BIN, '-d', path.join(DATASETS_DIR, 'identity.json'), '-o', zip]);
      expect(r.code, r.stderr).toBe(0);
      const entries = unzipSync(new Uint8Array(await readFile(zip)));
      expect(Object.keys(entries).sort()).toEqual((JSON.parse(r.stdout) as { files: string[] }).files.sort());
      expect(Object.keys(entries)).toContain('axolotl.yaml');
    }, 120_000);

    it("--from-run takes a saved run's settings and refuses data that is not the data it trained on", async () => {
      const data = path.join(DATASETS_DIR, 'identity.json');
      const run = path.join(tmp, 'saved-run');
      const t = await cli([
        'train',
        '-m',
        STORIES_BIN,
        '-d',
        data,
        '--template',
        'alpaca',
        '--max-length',
        '256',
        '--batch-size',
        '2',
        '--max-steps',
        '1',
        '--save-steps',
        '1',
        '--r',
        '3',
        '--alpha',
        '5',
        '--lr',
        '0.003',
        '-q',
        '-o',
        run,
      ]);
      expect(t.code, t.stderr).toBe(0);
      const out = path.join(tmp, 'from-run');
      const r = await cli([
        'export-run',
        '-m',
        STORIES_BIN,
        '-d',
        data,
        '--from-run',
        path.join(run, 'checkpoints'),
        '-o',
        out,
      ]);
      expect(r.code, r.stderr).toBe(0);
      const files = await readTree(out);
      const { config } = JSON.parse(files.get('webtune_run.json')!) as { config: FinetuneConfig };
      expect(config).toMatchObject({ r: 3, lora_alpha: 5, learning_rate: 0.003, max_length: 256, max_steps: 1 });
      expect(config.template).toEqual({ kind: 'alpaca' });
      const other = await cli([
        'export-run',
        '-m',
        STORIES_BIN,
        '-d',
        path.join(DATASETS_DIR, 'alpaca_en_demo.json'),
        '--from-run',
        path.join(run, 'checkpoints'),
        '-o',
        path.join(tmp, 'other'),
      ]);
      expect(other.code).toBe(1);
      expect(other.stderr).toMatch(/does not tokenize to the data the run .* trained on \(dataset hash/);
    }, 180_000);
  },
);
