/**
 * Checks shared by the export tests (test/train/export-run.test.ts in-process, test/cli/export-run.test.ts through
 * the command): a bundle's data re-rendered with its own chat template gives the ids and masks the run trained on,
 * and its settings read back from train_trl.py and axolotl.yaml equal the run's configuration field by field.
 */
import { expect } from 'vitest';
import { parse as parseYaml } from 'yaml';
import {
  parseDataset,
  templateTokensOf,
  tokenizeDataset,
  tokenizeSegments,
  type TemplateSpec,
  type TokenizedExample,
} from '../../src/data';
import type { Tokenizer } from '../../src/io/tokenizer';
import type { FinetuneConfig } from '../../src/train/config';
import { CHAT_TEMPLATE_FILE } from '../../src/train/export-run';
import { hasGenerationBlocks } from '../../src/train/export-jinja';

/** A bundle's files with the configuration and tokenized splits of the run it came from. */
export interface Exported {
  files: Map<string, string>;
  config: FinetuneConfig;
  trained: Record<'train' | 'validation' | 'test', TokenizedExample[]>;
}

/** What the bundle's files say about themselves (the row kind, whether there is a validation file, …). */
function planOf(files: Map<string, string>) {
  const first = JSON.parse(files.get('data/train.jsonl')!.split('\n')[0]) as Record<string, unknown>;
  const mainKind = 'messages' in first ? 'messages' : 'prompt' in first ? 'prompt_completion' : 'text';
  const jinja = files.get(CHAT_TEMPLATE_FILE);
  return {
    mainKind,
    files: { validation: files.has('data/validation.jsonl') ? 'data/validation.jsonl' : null },
    generationBlocks: jinja !== undefined && hasGenerationBlocks(jinja),
  };
}

/** Re-render a split from the bundle alone (its rows, its chat template) and compare ids and labels. */
export function expectSameIdsAndMasks(tok: Tokenizer, e: Exported, split: 'train' | 'validation' | 'test'): number {
  const files = e.files;
  const want = e.trained[split];
  const file = `data/${split}.jsonl`;
  if (want.length === 0) {
    expect(files.has(file)).toBe(false);
    return 0;
  }
  const rows = parseDataset(files.get(file)!, file).examples;
  const jinja = files.get(CHAT_TEMPLATE_FILE);
  const spec: TemplateSpec = jinja !== undefined ? { kind: 'chat_template', template: jinja } : { kind: 'raw' };
  const base = templateTokensOf(tok);
  const tokens = e.config.eos_token !== null ? { ...base, eosToken: e.config.eos_token } : base;
  const opts = { maxLength: e.config.max_length, trainOnInputs: e.config.train_on_inputs };
  const got = tokenizeDataset(tok, rows, spec, { ...opts, tokens });
  expect(got.dropped).toEqual([]);
  expect(got.examples.length).toBe(want.length);
  for (let i = 0; i < want.length; i++) {
    expect(Array.from(got.examples[i].inputIds), `${split}[${i}] ids`).toEqual(Array.from(want[i].inputIds));
    expect(Array.from(got.examples[i].labels), `${split}[${i}] labels`).toEqual(Array.from(want[i].labels));
  }
  // Axolotl's input_output segments (raw-template runs) tokenize to the same ids and labels too.
  const segFile = files.get(`data/${split}.segments.jsonl`);
  if (segFile !== undefined) {
    const segRows = segFile
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { segments: { text: string; label: boolean }[] });
    expect(segRows.length).toBe(want.length);
    segRows.forEach((r, i) => {
      const t = tokenizeSegments(
        tok,
        r.segments.map((s) => ({ text: s.text, train: s.label })),
        opts,
      );
      expect(Array.from(t.inputIds)).toEqual(Array.from(want[i].inputIds));
      expect(Array.from(t.labels)).toEqual(Array.from(want[i].labels));
    });
  }
  return want.length;
}

export function expectAllSplits(tok: Tokenizer, e: Exported): number {
  return (['train', 'validation', 'test'] as const).reduce((n, s) => n + expectSameIdsAndMasks(tok, e, s), 0);
}

/** train_trl.py's keyword arguments of one call, read back as JSON values. */
export function pyKwargs(script: string, call: string): Record<string, unknown> {
  const start = script.indexOf(`${call}(\n`);
  expect(start, `${call}( in train_trl.py`).toBeGreaterThanOrEqual(0);
  const body = script.slice(start + call.length + 2, script.indexOf('\n)', start));
  const out: Record<string, unknown> = {};
  for (const line of body.split('\n')) {
    const m = /^ {4}(\w+)=(.*),$/.exec(line);
    expect(m, `kwarg line ${JSON.stringify(line)}`).not.toBeNull();
    const json = m![2]
      .replace(/\bTrue\b/g, 'true')
      .replace(/\bFalse\b/g, 'false')
      .replace(/\bNone\b/g, 'null');
    out[m![1]] = JSON.parse(json);
  }
  return out;
}

/** Every run setting, read back from train_trl.py and axolotl.yaml, equals the run's configuration. */
export function expectSettingsRoundTrip(e: Exported, want: { baseModel: string; saveSteps: number }): void {
  const c = e.config;
  const files = e.files;
  const plan = planOf(files);
  const lora = pyKwargs(files.get('train_trl.py')!, 'LoraConfig');
  expect(lora).toMatchObject({
    r: c.r,
    lora_alpha: c.lora_alpha,
    lora_dropout: c.lora_dropout,
    use_rslora: c.use_rslora,
    target_modules: c.target_modules ?? ['q_proj', 'v_proj'],
  });
  const sft = pyKwargs(files.get('train_trl.py')!, 'SFTConfig');
  const hasEval = plan.files.validation !== null && c.eval_strategy !== 'no';
  expect(sft).toMatchObject({
    learning_rate: c.learning_rate,
    lr_scheduler_type: c.lr_scheduler_type,
    warmup_ratio: c.warmup_ratio,
    warmup_steps: c.warmup_steps,
    weight_decay: c.weight_decay,
    max_grad_norm: c.max_grad_norm,
    adam_beta1: c.adam_beta1,
    adam_beta2: c.adam_beta2,
    adam_epsilon: c.adam_epsilon,
    per_device_train_batch_size: c.per_device_train_batch_size,
    per_device_eval_batch_size: c.per_device_eval_batch_size,
    gradient_accumulation_steps: c.gradient_accumulation_steps,
    num_train_epochs: c.num_train_epochs,
    max_steps: c.max_steps,
    max_length: c.max_length,
    packing: c.packing,
    pad_to_multiple_of: c.pad_to_multiple_of,
    group_by_length: c.group_by_length,
    gradient_checkpointing: c.gradient_checkpointing,
    seed: c.seed,
    logging_steps: c.logging_steps,
    eval_strategy: hasEval ? c.eval_strategy : 'no',
    eval_steps: c.eval_steps ?? c.logging_steps,
    save_steps: want.saveSteps,
  });
  if (plan.mainKind === 'messages') expect(sft.assistant_only_loss).toBe(!c.train_on_inputs && plan.generationBlocks);
  if (plan.mainKind === 'prompt_completion') expect(sft.completion_only_loss).toBe(!c.train_on_inputs);
  if (plan.mainKind === 'text') expect(sft.dataset_text_field).toBe('text');

  const y = parseYaml(files.get('axolotl.yaml')!) as Record<string, unknown>;
  expect(y).toMatchObject({
    base_model: want.baseModel,
    adapter: 'lora',
    lora_r: c.r,
    lora_alpha: c.lora_alpha,
    lora_dropout: c.lora_dropout,
    peft_use_rslora: c.use_rslora,
    sequence_len: c.max_length,
    sample_packing: c.packing,
    micro_batch_size: c.per_device_train_batch_size,
    eval_batch_size: c.per_device_eval_batch_size,
    gradient_accumulation_steps: c.gradient_accumulation_steps,
    num_epochs: c.num_train_epochs,
    learning_rate: c.learning_rate,
    lr_scheduler: c.lr_scheduler_type,
    optimizer: 'adamw_torch',
    adam_beta1: c.adam_beta1,
    adam_beta2: c.adam_beta2,
    adam_epsilon: c.adam_epsilon,
    weight_decay: c.weight_decay,
    max_grad_norm: c.max_grad_norm,
    train_on_inputs: c.train_on_inputs,
    val_set_size: 0,
    seed: c.seed,
    logging_steps: c.logging_steps,
    save_steps: want.saveSteps,
    gradient_checkpointing: c.gradient_checkpointing,
    group_by_length: c.group_by_length,
    output_dir: 'out-axolotl',
  });
  if (c.max_steps > 0) expect(y.max_steps).toBe(c.max_steps);
  else expect(y).not.toHaveProperty('max_steps');
  if (c.warmup_steps > 0) expect(y.warmup_steps).toBe(c.warmup_steps);
  else expect(y.warmup_ratio).toBe(c.warmup_ratio);
  const targets = c.target_modules ?? ['q_proj', 'v_proj'];
  if (targets === 'all-linear') expect(y.lora_target_linear).toBe(true);
  else expect(y.lora_target_modules).toEqual(targets);
  const jinja = files.get(CHAT_TEMPLATE_FILE);
  if (jinja !== undefined) {
    expect(y.chat_template).toBe('jinja');
    expect((y.chat_template_jinja as string).trimEnd()).toBe(jinja.trimEnd());
  }
  const datasets = y.datasets as Record<string, unknown>[];
  expect(datasets[0].path).toBe(
    plan.mainKind === 'prompt_completion' ? 'data/train.segments.jsonl' : 'data/train.jsonl',
  );
  if (plan.files.validation !== null) expect((y.test_datasets as unknown[]).length).toBe(1);
  const run = JSON.parse(files.get('webtune_run.json')!) as { config: FinetuneConfig };
  expect(run.config).toEqual(c);
}
