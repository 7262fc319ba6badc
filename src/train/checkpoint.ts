/**
 * Checkpoints of a FinetuneSession for exact resume ("runs that survive").
 *
 * A checkpoint holds everything the next step depends on:
 *   - the LoRA weights (PEFT names) and AdamW's moments (exp_avg, exp_avg_sq) with every per-parameter step count;
 *   - the global step, hence the schedule position (the learning rate of the next step is recorded and checked);
 *   - the data cursor: epoch, step and micro-batch position within the epoch, and a hash of that epoch's batch order
 *     (makeBatches(seed, epoch) is deterministic, so the cursor plus the order hash pin the next batch exactly);
 *   - the RNG state (dropout seeds are Rng(seed).derive(step, micro): a pure function of key and step);
 *   - the metrics history, the logging window not yet flushed and the last evaluated step, so that the resumed run
 *     logs exactly what the uninterrupted run would have logged;
 *   - the full run configuration (FinetuneConfig, the resolved LoraConfig), the model id and config, a model hash and a
 *     dataset hash. Restoring refuses, with a message saying what differs, when the hashes or the config differ.
 *
 * Model hash ("sha256:…", the default): SHA-256 over the lines `name<TAB>shape<TAB>dtype<TAB>sha256(bytes)` of every
 * base weight sorted by name, where sha256(bytes) is the digest of the tensor's float32 values (little-endian). It is
 * exact (any changed value changes it) and backend-independent (the same float32 values everywhere); each tensor's
 * digest is cached per tensor object, so only the first checkpoint of a session reads the weights back.
 * "sampled:…" is the cheap variant for very large models: the same lines but each digest covers at most 4,096 values
 * spread evenly over the tensor (first and last included) — it tells models, shapes and fine-tunes apart, but not a
 * change confined to unsampled values.
 * Dataset hash: SHA-256 of the tokenized train, validation and test examples (input ids and labels, in order) — what
 * training actually sees, so the same files read with another tokenizer, template or max_length are refused too.
 *
 * Serialisation:
 *   - two files: `checkpoint.json` (everything but tensors, plus the SHA-256 of the tensor file so a mismatched or
 *     torn pair is detected) and `tensors.safetensors` (F32: `lora/<peft name>`, `optimizer/exp_avg/<peft name>`,
 *     `optimizer/exp_avg_sq/<peft name>`);
 *   - one file for export/import: the same safetensors tensors with checkpoint.json in the header's __metadata__
 *     under "webtune.checkpoint" (any safetensors reader opens it).
 *
 * SHA-256 comes from ../util/sha256.ts (crypto.subtle when present, else a streaming implementation).
 *
 * Browser-safe: no node: imports.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { ModelConfig, RawTensor, RawTensors } from '../engine/config';
import type { CompactWeight } from '../engine/frozen';
import type { LoraConfig } from '../engine/lora-config';
import type { TokenizedExample } from '../data';
import { parseSafetensors, writeSafetensors } from '../io/safetensors';
import type { RngState } from '../util/rng';
import { Sha256, sha256Hex, toHex } from '../util/sha256';
import type { FinetuneConfig } from './config';
import { validateSessionHistory } from './checkpoint-history';
import type { LogEntry, StepRecord } from './metrics';

export const CHECKPOINT_FORMAT = 'webtune-checkpoint';
export const CHECKPOINT_VERSION = 1;
export const CHECKPOINT_JSON = 'checkpoint.json';
export const CHECKPOINT_TENSORS = 'tensors.safetensors';
/** safetensors __metadata__ key holding checkpoint.json in a single-file bundle. */
export const BUNDLE_METADATA_KEY = 'webtune.checkpoint';
/** Suggested file name suffix of a single-file bundle. */
export const BUNDLE_EXTENSION = '.webtune.safetensors';

export type ModelHashMethod = 'sha256' | 'sampled';

/** checkpoint.json. Field names follow the HF trainer_state.json style (snake_case). */
export interface CheckpointMeta {
  format: typeof CHECKPOINT_FORMAT;
  version: number;
  /** ISO time of the snapshot. */
  created: string;
  model: {
    /** Hub id or path of the base model (the session's baseModelName), for people; not checked. */
    id: string | null;
    /** "sha256:<hex>" or "sampled:<hex>" (see the module comment). */
    hash: string;
    config: ModelConfig;
  };
  dataset: { hash: string; train_examples: number; validation_examples: number; test_examples: number };
  config: FinetuneConfig;
  lora: LoraConfig;
  progress: {
    global_step: number;
    max_steps: number;
    /** Fractional epoch, global_step / steps_per_epoch. */
    epoch: number;
    status: 'idle' | 'stopped' | 'completed';
  };
  optimizer: {
    /** AdamW.stepCount. */
    step: number;
    /** Per-parameter step counts (torch state[p]['step']). */
    param_steps: Record<string, number>;
  };
  schedule: {
    lr_scheduler_type: string;
    warmup_steps: number;
    /** Learning rate of the last step taken (null before the first). */
    last_lr: number | null;
    /** Learning rate the next step will use. */
    next_lr: number;
  };
  data_cursor: {
    /** Epoch of the next step (0-based). */
    epoch: number;
    /** Update steps of that epoch already taken. */
    step_in_epoch: number;
    /** Index of the next micro-batch within the epoch's batches. */
    batch_in_epoch: number;
    batches_per_epoch: number;
    steps_per_epoch: number;
    /** SHA-256 of that epoch's batch order (rows of every batch). */
    order_hash: string;
  };
  rng: RngState;
  session: {
    history: LogEntry[];
    /** Steps since the last logged window (logged when the window completes). */
    window: StepRecord[];
    /** Last step whose validation/sample hooks ran (-1: none). */
    last_eval_step: number;
  };
  /** Filled by encodeCheckpointFiles: the tensor file and its digest. */
  tensors?: { file: string; sha256: string; bytes: number };
}

export interface SessionCheckpoint {
  meta: CheckpointMeta;
  /** LoRA weights by PEFT name. */
  lora: RawTensors;
  /** AdamW first moments by PEFT name. */
  expAvg: RawTensors;
  /** AdamW second moments by PEFT name. */
  expAvgSq: RawTensors;
}

export interface CheckpointOptions {
  /** Base model id recorded in the checkpoint (default: the session's baseModelName). */
  modelId?: string | null;
  /** Default 'sha256' (exact). */
  modelHash?: ModelHashMethod;
}

/** Restore refused: the checkpoint does not belong to this model, data or configuration. */
export class CheckpointMismatchError extends Error {
  constructor(
    message: string,
    readonly what: 'model' | 'dataset' | 'config' | 'data-order' | 'schedule' | 'tensors',
  ) {
    super(message);
    this.name = 'CheckpointMismatchError';
  }
}

/** A checkpoint file is malformed or damaged. */
export class CheckpointFormatError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CheckpointFormatError';
  }
}

function bytesOf(a: ArrayBufferView): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

// ---------------------------------------------------------------------------------------------------------
// Hashes of model, data and data order

const tensorDigests: Record<ModelHashMethod, WeakMap<tf.Tensor, string>> = {
  sha256: new WeakMap(),
  sampled: new WeakMap(),
};
const SAMPLE_VALUES = 4096;

async function tensorDigest(t: tf.Tensor, method: ModelHashMethod): Promise<string> {
  const cache = tensorDigests[method];
  const hit = cache.get(t);
  if (hit) return hit;
  let values: ArrayBufferView;
  if (method === 'sampled' && t.size > SAMPLE_VALUES) {
    const idx = new Int32Array(SAMPLE_VALUES);
    for (let i = 0; i < SAMPLE_VALUES; i++) idx[i] = Math.round((i * (t.size - 1)) / (SAMPLE_VALUES - 1));
    const picked = tf.tidy(() => tf.gather(tf.reshape(t, [-1]), tf.tensor1d(idx, 'int32')));
    values = (await picked.data()) as ArrayBufferView;
    picked.dispose();
  } else {
    values = (await t.data()) as ArrayBufferView;
  }
  const d = await sha256Hex(bytesOf(values));
  cache.set(t, d);
  return d;
}

/**
 * Hash of a model's base weights: "sha256:<hex>" (exact) or "sampled:<hex>" (see the module comment).
 * Per-tensor digests are cached by tensor object.
 */
export async function hashModelWeights(
  weights: Map<string, tf.Tensor>,
  method: ModelHashMethod = 'sha256',
  compact: Map<string, CompactWeight> = new Map(),
): Promise<string> {
  const names = [...weights.keys(), ...compact.keys()].sort();
  let lines = '';
  for (const n of names) {
    const t = weights.get(n);
    if (t) {
      lines += `${n}\t${t.shape.join('x')}\t${t.dtype}\t${await tensorDigest(t, method)}\n`;
    } else {
      const c = compact.get(n)!;
      lines += `${n}\t${c.shape.join('x')}\t${c.format}\t${await compactDigest(c, method)}\n`;
    }
  }
  return `${method}:${await sha256Hex(lines)}`;
}

const compactDigests: Record<ModelHashMethod, WeakMap<CompactWeight, string>> = {
  sha256: new WeakMap(),
  sampled: new WeakMap(),
};

/** Digest of a compact frozen weight's stored values (and int8 scales), sampled like tensorDigest when asked. */
async function compactDigest(c: CompactWeight, method: ModelHashMethod): Promise<string> {
  const hit = compactDigests[method].get(c);
  if (hit) return hit;
  let values: ArrayBufferView = c.data;
  if (method === 'sampled' && c.data.length > SAMPLE_VALUES) {
    const picked = new (c.data.constructor as Uint16ArrayConstructor | Int8ArrayConstructor)(SAMPLE_VALUES);
    for (let i = 0; i < SAMPLE_VALUES; i++)
      picked[i] = c.data[Math.round((i * (c.data.length - 1)) / (SAMPLE_VALUES - 1))];
    values = picked;
  }
  let d = await sha256Hex(bytesOf(values));
  if (c.scales) d = await sha256Hex(d + (await sha256Hex(bytesOf(c.scales))));
  compactDigests[method].set(c, d);
  return d;
}

/** The method of a model hash string ("sha256:…" / "sampled:…"). */
export function modelHashMethod(hash: string): ModelHashMethod {
  const m = /^(sha256|sampled):[0-9a-f]{64}$/.exec(hash);
  if (!m)
    throw new CheckpointFormatError(`model hash ${JSON.stringify(hash)} is not "sha256:<hex>" or "sampled:<hex>"`);
  return m[1] as ModelHashMethod;
}

/** SHA-256 of the tokenized splits (input ids and labels of every example, in order). */
export function hashDataset(splits: {
  train: readonly TokenizedExample[];
  validation: readonly TokenizedExample[];
  test: readonly TokenizedExample[];
}): string {
  const h = new Sha256();
  const u32 = new Uint8Array(4);
  const dv = new DataView(u32.buffer);
  const num = (x: number) => {
    dv.setUint32(0, x >>> 0, true);
    h.update(u32);
  };
  for (const [name, ex] of [
    ['train', splits.train],
    ['validation', splits.validation],
    ['test', splits.test],
  ] as const) {
    h.update(name);
    num(ex.length);
    for (const e of ex) {
      num(e.inputIds.length);
      h.update(bytesOf(e.inputIds));
      h.update(bytesOf(e.labels));
    }
  }
  return `sha256:${toHex(h.digest())}`;
}

/** SHA-256 of an epoch's batch order: each batch's padded length and rows (example indices). */
export function hashBatchOrder(batches: readonly { seqLen: number; rows: number[][] }[]): string {
  return `sha256:${toHex(new Sha256().update(JSON.stringify(batches.map((b) => [b.seqLen, b.rows]))).digest())}`;
}

// ---------------------------------------------------------------------------------------------------------
// Compatibility checks

/** JSON with object keys sorted (for comparing configurations). */
export function canonicalJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(',')}]`;
  if (v && typeof v === 'object') {
    const o = v as Record<string, unknown>;
    return `{${Object.keys(o)
      .filter((k) => o[k] !== undefined)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonicalJson(o[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(v) ?? 'null';
}

const short = (h: string) => (h.length > 23 ? `${h.slice(0, 23)}…` : h);

/** The fields of two FinetuneConfigs that differ, as "field: checkpoint → current" lines. */
export function configDifferences(ck: FinetuneConfig, cur: FinetuneConfig): string[] {
  const keys = [...new Set([...Object.keys(ck), ...Object.keys(cur)])].sort();
  const out: string[] = [];
  for (const k of keys) {
    const a = (ck as unknown as Record<string, unknown>)[k],
      b = (cur as unknown as Record<string, unknown>)[k];
    if (canonicalJson(a) !== canonicalJson(b))
      out.push(`${k}: ${canonicalJson(a)} in the checkpoint, ${canonicalJson(b)} now`);
  }
  return out;
}

export interface CheckpointTarget {
  modelHash: string;
  modelId: string | null;
  datasetHash: string;
  counts: { train: number; validation: number; test: number };
  config: FinetuneConfig;
}

/** Throws CheckpointMismatchError when the checkpoint was made with another model, other data or another configuration. */
export function checkCheckpointTarget(meta: CheckpointMeta, cur: CheckpointTarget): void {
  if (meta.model.hash !== cur.modelHash) {
    throw new CheckpointMismatchError(
      `cannot resume: the checkpoint was made with a different base model (${meta.model.id ?? 'unnamed'}, hash ${short(meta.model.hash)}) ` +
        `than the one loaded now (${cur.modelId ?? 'unnamed'}, hash ${short(cur.modelHash)}). Load the same model weights to resume.`,
      'model',
    );
  }
  if (meta.dataset.hash !== cur.datasetHash) {
    const d = meta.dataset,
      c = cur.counts;
    throw new CheckpointMismatchError(
      `cannot resume: the training data differ from the checkpoint's (dataset hash ${short(d.hash)} vs ${short(cur.datasetHash)}; ` +
        `examples train/validation/test: ${d.train_examples}/${d.validation_examples}/${d.test_examples} in the checkpoint, ${c.train}/${c.validation}/${c.test} now). ` +
        'Resume needs the same data files, tokenizer, template and data options.',
      'dataset',
    );
  }
  const diff = configDifferences(meta.config, cur.config);
  if (diff.length) {
    throw new CheckpointMismatchError(
      `cannot resume: the configuration differs from the checkpoint's — ${diff.join('; ')}`,
      'config',
    );
  }
}

// ---------------------------------------------------------------------------------------------------------
// Validation of checkpoint.json

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isInt = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

/** Check the shape of a parsed checkpoint.json; throws CheckpointFormatError naming the field. */
export function validateCheckpointMeta(j: unknown, where = CHECKPOINT_JSON): CheckpointMeta {
  const bad = (what: string): never => {
    throw new CheckpointFormatError(`${where}: ${what}`);
  };
  if (!isObj(j)) bad('not a JSON object');
  const m = j as Record<string, unknown>;
  if (m.format !== CHECKPOINT_FORMAT) bad(`not a webtune checkpoint (format ${JSON.stringify(m.format)})`);
  if (m.version !== CHECKPOINT_VERSION)
    bad(
      `checkpoint version ${JSON.stringify(m.version)} is not supported (this build reads version ${CHECKPOINT_VERSION})`,
    );
  for (const k of [
    'model',
    'dataset',
    'config',
    'lora',
    'progress',
    'optimizer',
    'schedule',
    'data_cursor',
    'rng',
    'session',
  ] as const) {
    if (!isObj(m[k])) bad(`"${k}" is missing or not an object`);
  }
  const model = m.model as Record<string, unknown>;
  if (typeof model.hash !== 'string') bad('model.hash is missing');
  modelHashMethod(model.hash as string);
  if (typeof (m.dataset as Record<string, unknown>).hash !== 'string') bad('dataset.hash is missing');
  const p = m.progress as Record<string, unknown>;
  if (!isInt(p.global_step) || !isInt(p.max_steps) || (p.global_step as number) > (p.max_steps as number))
    bad('progress.global_step / max_steps are invalid');
  const o = m.optimizer as Record<string, unknown>;
  if (!isInt(o.step) || !isObj(o.param_steps) || !Object.values(o.param_steps).every(isInt))
    bad('optimizer.step / param_steps are invalid');
  const s = m.session as Record<string, unknown>;
  if (!Array.isArray(s.history) || !Array.isArray(s.window) || typeof s.last_eval_step !== 'number')
    bad('session.history / window / last_eval_step are invalid');
  validateSessionHistory(s as { history: unknown[]; window: unknown[] }, p.global_step as number, bad);
  const r = m.rng as Record<string, unknown>;
  if (!Array.isArray(r.key) || r.key.length !== 2 || !Array.isArray(r.s) || r.s.length !== 4)
    bad('rng is not { key: [2], s: [4] }');
  return j as unknown as CheckpointMeta;
}

// ---------------------------------------------------------------------------------------------------------
// Serialisation

const PREFIX = { lora: 'lora/', expAvg: 'optimizer/exp_avg/', expAvgSq: 'optimizer/exp_avg_sq/' } as const;

function tensorMap(ck: SessionCheckpoint): Map<string, RawTensor> {
  const out = new Map<string, RawTensor>();
  for (const part of ['lora', 'expAvg', 'expAvgSq'] as const) {
    for (const [n, t] of ck[part]) out.set(PREFIX[part] + n, t);
  }
  return out;
}

function splitTensors(tensors: RawTensors, meta: CheckpointMeta, where: string): Omit<SessionCheckpoint, 'meta'> {
  const parts = { lora: new Map(), expAvg: new Map(), expAvgSq: new Map() } as Omit<SessionCheckpoint, 'meta'>;
  for (const [key, t] of tensors) {
    // longest prefix first: optimizer/exp_avg_sq/ also starts with optimizer/exp_avg
    const part = (['expAvgSq', 'expAvg', 'lora'] as const).find((p) => key.startsWith(PREFIX[p]));
    if (!part)
      throw new CheckpointFormatError(
        `${where}: unexpected tensor "${key}" (expected lora/…, optimizer/exp_avg/…, optimizer/exp_avg_sq/…)`,
      );
    // copy: parseSafetensors returns views of the file's bytes
    parts[part].set(key.slice(PREFIX[part].length), { shape: t.shape, data: Float32Array.from(t.data) });
  }
  const names = [...parts.lora.keys()].sort().join('\n');
  if (parts.lora.size === 0) throw new CheckpointFormatError(`${where}: no LoRA tensors`);
  for (const part of ['expAvg', 'expAvgSq'] as const) {
    if ([...parts[part].keys()].sort().join('\n') !== names)
      throw new CheckpointFormatError(
        `${where}: the optimizer moments do not cover the same parameters as the LoRA weights`,
      );
    for (const [n, t] of parts[part]) {
      if (t.shape.join(',') !== parts.lora.get(n)!.shape.join(','))
        throw new CheckpointFormatError(
          `${where}: ${PREFIX[part]}${n} has shape [${t.shape}], the weight has [${parts.lora.get(n)!.shape}]`,
        );
    }
  }
  const steps = Object.keys(meta.optimizer.param_steps).sort().join('\n');
  if (steps !== names)
    throw new CheckpointFormatError(`${where}: optimizer.param_steps does not list the same parameters as the tensors`);
  return parts;
}

/** The two files of a checkpoint: checkpoint.json (with the tensor file's SHA-256) and tensors.safetensors. */
export async function encodeCheckpointFiles(ck: SessionCheckpoint): Promise<Map<string, Uint8Array>> {
  const tensors = writeSafetensors(tensorMap(ck), { format: CHECKPOINT_FORMAT });
  const meta: CheckpointMeta = {
    ...ck.meta,
    tensors: { file: CHECKPOINT_TENSORS, sha256: await sha256Hex(tensors), bytes: tensors.length },
  };
  const json = new TextEncoder().encode(JSON.stringify(meta, null, 1));
  return new Map([
    [CHECKPOINT_JSON, json],
    [CHECKPOINT_TENSORS, tensors],
  ]);
}

/** Parse the two files of encodeCheckpointFiles; checks the tensor file's digest and every name and shape. */
export async function decodeCheckpointFiles(
  files: { json: Uint8Array | string; tensors: Uint8Array },
  where = 'checkpoint',
): Promise<SessionCheckpoint> {
  let j: unknown;
  try {
    j = JSON.parse(typeof files.json === 'string' ? files.json : new TextDecoder().decode(files.json));
  } catch (e) {
    throw new CheckpointFormatError(`${where}/${CHECKPOINT_JSON}: not valid JSON (${(e as Error).message})`);
  }
  const meta = validateCheckpointMeta(j, `${where}/${CHECKPOINT_JSON}`);
  if (!meta.tensors || typeof meta.tensors.sha256 !== 'string')
    throw new CheckpointFormatError(
      `${where}/${CHECKPOINT_JSON}: "tensors" (digest of ${CHECKPOINT_TENSORS}) is missing`,
    );
  if (files.tensors.length !== meta.tensors.bytes || (await sha256Hex(files.tensors)) !== meta.tensors.sha256) {
    throw new CheckpointFormatError(
      `${where}/${CHECKPOINT_TENSORS}: does not match ${CHECKPOINT_JSON} (${files.tensors.length} bytes, expected ${meta.tensors.bytes} with SHA-256 ${short(meta.tensors.sha256)}) — a damaged or mismatched checkpoint`,
    );
  }
  let parsed: RawTensors;
  try {
    parsed = parseSafetensors(files.tensors, `${where}/${CHECKPOINT_TENSORS}`).tensors;
  } catch (e) {
    throw new CheckpointFormatError((e as Error).message);
  }
  return { meta, ...splitTensors(parsed, meta, `${where}/${CHECKPOINT_TENSORS}`) };
}

/** One self-contained file: the tensors as safetensors, checkpoint.json in __metadata__["webtune.checkpoint"]. */
export function encodeCheckpointBundle(ck: SessionCheckpoint, extra: Record<string, string> = {}): Uint8Array {
  const { tensors: _t, ...meta } = ck.meta;
  return writeSafetensors(tensorMap(ck), {
    ...extra,
    format: CHECKPOINT_FORMAT,
    [BUNDLE_METADATA_KEY]: JSON.stringify(meta),
  });
}

/** Parse a bundle; `metadata` returns the other __metadata__ entries (e.g. a run name). */
export function decodeCheckpointBundle(
  bytes: Uint8Array,
  where = 'checkpoint bundle',
): SessionCheckpoint & { metadata: Record<string, string> } {
  let parsed: { tensors: RawTensors; metadata: Record<string, string> };
  try {
    parsed = parseSafetensors(bytes, where);
  } catch (e) {
    throw new CheckpointFormatError((e as Error).message);
  }
  const text = parsed.metadata[BUNDLE_METADATA_KEY];
  if (text === undefined)
    throw new CheckpointFormatError(
      `${where}: a safetensors file but not a webtune checkpoint (no "${BUNDLE_METADATA_KEY}" metadata)`,
    );
  let j: unknown;
  try {
    j = JSON.parse(text);
  } catch (e) {
    throw new CheckpointFormatError(`${where}: checkpoint metadata is not valid JSON (${(e as Error).message})`);
  }
  const meta = validateCheckpointMeta(j, where);
  const { [BUNDLE_METADATA_KEY]: _m, format: _f, ...metadata } = parsed.metadata;
  return { meta, ...splitTensors(parsed.tensors, meta, where), metadata };
}

/** Whether bytes look like a checkpoint bundle (a safetensors header mentioning the metadata key). */
export function isCheckpointBundle(bytes: Uint8Array): boolean {
  if (bytes.length < 8) return false;
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n = dv.getUint32(0, true);
  if (dv.getUint32(4, true) !== 0 || n > bytes.length - 8 || n < 2) return false;
  const head = new TextDecoder().decode(bytes.subarray(8, 8 + Math.min(n, 4096)));
  return head.startsWith('{') && head.includes(`"${BUNDLE_METADATA_KEY}"`);
}

/** One line for people: "step 40/120 (epoch 1.33), loss 1.234, model stories260K, 2024-…". */
export function describeCheckpoint(meta: CheckpointMeta): string {
  const p = meta.progress;
  const lastLoss = [...meta.session.history].reverse().find((h) => h.loss !== undefined)?.loss;
  return (
    `step ${p.global_step}/${p.max_steps} (epoch ${p.epoch.toFixed(2)})` +
    `${lastLoss !== undefined ? `, loss ${lastLoss.toFixed(4)}` : ''}, model ${meta.model.id ?? 'unnamed'}, saved ${meta.created}`
  );
}
