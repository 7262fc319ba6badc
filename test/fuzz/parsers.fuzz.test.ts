/**
 * Seeded, time-bounded fuzz suite over every parser (issue "Hostile input"): safetensors, config.json,
 * whole HF checkpoints, llama2.c checkpoints and tokenizers, tokenizer.json, the tokenizer sniffing entry
 * point, datasets and CSV. Every case must return (valid input, invariants checked) or throw an Error whose
 * message names the file, within FUZZ_CASE_MS and with heap growth bounded by the input size.
 * Prints per-parser counts and bounds, and the total number of cases. See harness.ts for the environment knobs.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Rng } from '../../src/util/rng';
import { allocate, FUZZ, FuzzRunner, type Target } from './harness';
import { dataTargets } from './targets-data';
import { hfTargets, prepareCheckpoints } from './targets-hf';
import { hostileTargets, startHostileServer, stopHostileServer } from './targets-hostile';
import { llama2cTargets } from './targets-llama2c';
import { safetensorsTargets } from './targets-safetensors';
import { tokenizerTargets } from './targets-tokenizers';

const all: Target[] = [
  ...safetensorsTargets,
  ...hfTargets,
  ...llama2cTargets,
  ...tokenizerTargets,
  ...dataTargets,
  ...hostileTargets,
];
const targets = all.filter((t) => t.name.toLowerCase().includes(FUZZ.only.toLowerCase()));
const counts = allocate(targets, FUZZ.cases);
const runner = new FuzzRunner();
const rng = new Rng(FUZZ.seed);

describe('fuzz: hostile input to every parser', () => {
  beforeAll(async () => {
    await prepareCheckpoints();
    await startHostileServer();
  });

  afterAll(async () => {
    console.log(runner.report());
    await runner.close();
    await stopHostileServer();
  });

  for (const t of targets) {
    it(`${t.name}: ${counts.get(t)} cases end in a result or a clear error, in bounded time and memory`, async () => {
      const s = await runner.runTarget(t, rng, counts.get(t)!);
      const shown = s.failures.slice(0, 25).join('\n');
      const more = s.failures.length > 25 ? `\n… and ${s.failures.length - 25} more` : '';
      expect(
        s.failures.length,
        `${s.failures.length} of ${s.cases} cases failed (seed ${FUZZ.seed}):\n${shown}${more}`,
      ).toBe(0);
      expect(s.cases).toBe(counts.get(t));
    }, 600_000);
  }
});
