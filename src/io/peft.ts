/**
 * LoRA adapters in Hugging Face PEFT's on-disk format, and merged full models in transformers' format.
 *
 * A PEFT adapter folder holds two files:
 * - `adapter_config.json`: PEFT's LoraConfig (peft_type "LORA", task_type "CAUSAL_LM", r, lora_alpha, lora_dropout,
 *   target_modules, use_rslora, bias, fan_in_fan_out, base_model_name_or_path, inference_mode, …);
 * - `adapter_model.safetensors`: for each targeted linear layer `<module>` (the HF module name, e.g.
 *   `model.layers.0.self_attn.q_proj` or `transformer.h.0.attn.c_attn`):
 *   `base_model.model.<module>.lora_A.weight` [r, in_features] and `base_model.model.<module>.lora_B.weight`
 *   [out_features, r]. PEFT stores the same shapes for GPT-2's Conv1D layers (fan_in_fan_out = true only says the
 *   base weight is [in, out]), so the tensors are saved as the engine holds them.
 * Such a folder loads with `PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), folder)`.
 *
 * RoPE layout. Hugging Face Llama checkpoints pair q/k dimensions (i, i + head_dim/2) ("half"); Meta's and
 * llama2.c's original weights pair adjacent dimensions ("interleaved"). A llama2.c model loaded with
 * ropeLayout 'half' (the default of parseLlama2cCheckpoint) already has its q_proj/k_proj rows permuted as
 * transformers' convert_llama_weights_to_hf.py does, so its adapters are HF-compatible as they are. For a model
 * kept in the 'interleaved' layout, ΔW = B·A has its output rows in that layout too: the export permutes the
 * rows of q_proj/k_proj lora_B (P·ΔW = (P·B)·A) — and of the merged q/k weights — into HF's layout, and the
 * import undoes it, so files are always in HF's layout and round trips are exact.
 *
 * Browser-safe: no node: imports.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { ModelConfig, RawTensor, RawTensors } from '../engine/config';
import { eosIds, hasLearnedPositions } from '../engine/config';
import { linearModules, paramShapes, type LinearModule } from '../engine/params';
import { loraParamName, type LoraAdapter } from '../engine/lora';
import { readTensor } from '../engine/readback';
import {
  defaultTargets,
  isTargetModules,
  loraFieldProblem,
  targetedModules,
  validateLoraConfig,
  type LoraConfig,
} from '../engine/lora-config';
import type { CausalLM } from '../engine/model';
import { toHfConfig } from './hf-config';
import { permuteRopeRows, unpermuteRopeRows } from './llama2c';
import { parseSafetensors, writeSafetensors } from './safetensors';
import type { FileSource } from './source';
import { checkRegexCost } from '../util/regex-cost';
import { preview } from '../util/preview';
import { checkFinite } from '../util/finite';

export const ADAPTER_CONFIG_FILE = 'adapter_config.json';
export const ADAPTER_WEIGHTS_FILE = 'adapter_model.safetensors';

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export interface PeftExportOptions {
  /** adapter_config.json base_model_name_or_path, e.g. "karpathy/tinyllamas" (default null). */
  baseModelNameOrPath?: string | null;
  /** PEFT's `revision` of the base model (default null). */
  revision?: string | null;
}

/** Unique short names of the modules an adapter targets, in the model's layer order (PEFT saves the expanded set). */
function shortNames(mods: LinearModule[]): string[] {
  return [...new Set(mods.map((m) => m.short))];
}

/**
 * The adapter_config.json PEFT writes for a LoRA on `modelCfg` (keys as peft.LoraConfig; values PEFT would save).
 * target_modules "all-linear" is written as the list of the short names it expands to, as PEFT does after
 * injecting the adapter; a user list is kept as given.
 */
export function peftAdapterConfig(
  modelCfg: ModelConfig,
  lora: LoraConfig,
  opts: PeftExportOptions = {},
): Record<string, unknown> {
  validateLoraConfig(lora);
  const mods = targetedModules(modelCfg, lora);
  const target = lora.target_modules === 'all-linear' ? shortNames(mods) : [...lora.target_modules];
  return {
    alpha_pattern: {},
    auto_mapping: null,
    base_model_name_or_path: opts.baseModelNameOrPath ?? null,
    bias: 'none',
    fan_in_fan_out: modelCfg.family === 'gpt2',
    inference_mode: true,
    init_lora_weights: true,
    layers_pattern: null,
    layers_to_transform: null,
    lora_alpha: lora.lora_alpha,
    lora_dropout: lora.lora_dropout,
    modules_to_save: null,
    peft_type: 'LORA',
    r: lora.r,
    rank_pattern: {},
    revision: opts.revision ?? null,
    target_modules: target,
    task_type: 'CAUSAL_LM',
    use_dora: false,
    use_rslora: lora.use_rslora,
  };
}

/** q_proj/k_proj of a model whose q/k rows are in the interleaved RoPE layout need permuting to/from HF's. */
function ropeRows(modelCfg: ModelConfig, module: LinearModule): number | null {
  if (hasLearnedPositions(modelCfg) || modelCfg.rope_layout !== 'interleaved') return null;
  if (module.short === 'q_proj') return modelCfg.num_attention_heads;
  if (module.short === 'k_proj') return modelCfg.num_key_value_heads;
  return null;
}

/** The adapter's tensors under PEFT names in HF's layout (see the RoPE note above). */
export async function adapterTensors(adapter: LoraAdapter): Promise<RawTensors> {
  const cfg = adapter.modelConfig;
  const out: RawTensors = new Map();
  for (const [name, layer] of adapter.layers) {
    const a = await readTensor(layer.A);
    let b = await readTensor(layer.B);
    const heads = ropeRows(cfg, layer.module);
    if (heads !== null) b = permuteRopeRows(b, heads, cfg.head_dim, adapter.config.r);
    out.set(loraParamName(name, 'A'), { shape: [...layer.A.shape], data: a });
    out.set(loraParamName(name, 'B'), { shape: [...layer.B.shape], data: b });
  }
  return out;
}

/**
 * The model's current adapter as PEFT files: adapter_config.json and adapter_model.safetensors (F32, metadata
 * {"format": "pt"} as PEFT writes). Works whether or not the adapter is merged (its A/B are unchanged by merging).
 */
export async function exportPeftAdapter(
  model: CausalLM,
  opts: PeftExportOptions = {},
): Promise<Map<string, Uint8Array>> {
  const adapter = model.adapter;
  if (!adapter) throw new Error('exportPeftAdapter: the model has no LoRA adapter attached');
  const config = peftAdapterConfig(model.config, adapter.config, opts);
  const tensors = await adapterTensors(adapter);
  const files = new Map<string, Uint8Array>();
  files.set(ADAPTER_CONFIG_FILE, encoder.encode(JSON.stringify(config, null, 2) + '\n'));
  files.set(ADAPTER_WEIGHTS_FILE, writeSafetensors(tensors, { format: 'pt' }));
  return files;
}

export interface PeftReadmeOptions {
  /** adapter_config.json base_model_name_or_path (a Hub id, or a local name); null when unknown. */
  baseModelNameOrPath: string | null;
  /** Where the base model is when it is not a transformers folder at that id (e.g. a llama2.c checkpoint in the repo). */
  baseModelNote?: string | null;
  /** The model's display name and the adapter's settings, for the heading. */
  modelName: string;
  lora: LoraConfig;
}

/** A short README.md for an exported adapter folder: what it is and how PEFT loads it. */
export function peftAdapterReadme(o: PeftReadmeOptions): string {
  const base = o.baseModelNameOrPath ?? '<the base model>';
  const lines = [
    `# LoRA adapter for ${o.modelName}`,
    '',
    `Trained with webtune. A PEFT LoRA adapter (r = ${o.lora.r}, lora_alpha = ${o.lora.lora_alpha}${o.lora.use_rslora ? ', rsLoRA' : ''}): ` +
      `\`${ADAPTER_CONFIG_FILE}\` and \`${ADAPTER_WEIGHTS_FILE}\` (float32, the names and layout PEFT saves).`,
    '',
    '## Load it with PEFT',
    '',
    '```python',
    'from transformers import AutoModelForCausalLM, AutoTokenizer',
    'from peft import PeftModel',
    '',
    `base = AutoModelForCausalLM.from_pretrained(${JSON.stringify(base)})`,
    `tokenizer = AutoTokenizer.from_pretrained(${JSON.stringify(base)})`,
    'model = PeftModel.from_pretrained(base, "path/to/this/folder")  # the unzipped folder',
    'model = model.merge_and_unload()  # optional: fold the adapter into the weights',
    '```',
    '',
  ];
  if (o.baseModelNote) lines.push(o.baseModelNote, '');
  lines.push(
    "webtune's merged-model export is the base model with this adapter folded in, as a transformers folder",
    '(`config.json`, `model.safetensors`, `tokenizer.json`): it loads with `AutoModelForCausalLM.from_pretrained` alone.',
    '',
  );
  return lines.join('\n');
}

// ---------------------------------------------------------------------------------------------------------
// Import

export interface ImportedPeftAdapter {
  /** The LoRA configuration to attach (target_modules as full module names when the file gave a regex). */
  config: LoraConfig;
  /** PEFT name → tensor, in the model's own layout (ready for LoraAdapter.assign). */
  tensors: RawTensors;
  baseModelNameOrPath: string | null;
  /** adapter_config.json as read. */
  raw: Record<string, unknown>;
  /** What was read but not applied (modules_to_save tensors), for the user to see. */
  warnings: string[];
}

export interface PeftFiles {
  /** adapter_config.json: bytes, text, or the parsed object. */
  config: Uint8Array | string | Record<string, unknown>;
  /** adapter_model.safetensors bytes. */
  weights: Uint8Array;
  /** Names used in error messages (default the PEFT file names, e.g. with a folder prefix). */
  configName?: string;
  weightsName?: string;
}

function isEmptyPattern(v: unknown): boolean {
  return (
    v === undefined ||
    v === null ||
    (typeof v === 'object' && !Array.isArray(v) && Object.keys(v as object).length === 0)
  );
}

function parseConfigJson(input: PeftFiles['config'], where: string): Record<string, unknown> {
  let j: unknown = input;
  if (input instanceof Uint8Array || typeof input === 'string') {
    const text = typeof input === 'string' ? input : decoder.decode(input);
    try {
      j = JSON.parse(text);
    } catch (e) {
      throw new Error(`${where}: not valid JSON (${(e as Error).message})`, { cause: e });
    }
  }
  if (typeof j !== 'object' || j === null || Array.isArray(j)) throw new Error(`${where}: expected a JSON object`);
  return j as Record<string, unknown>;
}

/** Longest target_modules pattern accepted (real ones are a few dozen characters). */
const MAX_TARGET_PATTERN = 1000;

/** adapter_config.json → LoraConfig for `modelCfg`, refusing what the engine cannot represent. */
export function parsePeftAdapterConfig(
  json: Record<string, unknown>,
  modelCfg: ModelConfig,
  where = ADAPTER_CONFIG_FILE,
): LoraConfig {
  const fail = (field: string, msg: string): never => {
    throw new Error(`${where}: "${field}" ${msg}`);
  };
  const peftType = json.peft_type ?? 'LORA';
  if (peftType !== 'LORA') fail('peft_type', `is ${preview(peftType)}; only LoRA adapters ("LORA") are supported`);
  const task = json.task_type;
  if (task !== undefined && task !== null && task !== 'CAUSAL_LM')
    fail('task_type', `is ${preview(task)}; only "CAUSAL_LM" adapters apply to a causal language model`);
  // PEFT's LoraConfig defaults for absent fields
  const r = json.r ?? 8;
  const alpha = json.lora_alpha ?? 8;
  const dropout = json.lora_dropout ?? 0;
  const rslora = json.use_rslora ?? false;
  const bad = loraFieldProblem({ r, lora_alpha: alpha, lora_dropout: dropout, use_rslora: rslora });
  if (bad) fail(bad.field, `must be ${bad.want}, got ${preview(bad.value)}`);
  if (json.use_dora === true) fail('use_dora', 'is true: DoRA adapters are not supported');
  if (json.bias !== undefined && json.bias !== 'none')
    fail('bias', `is ${preview(json.bias)}: only adapters without trained biases ("none") are supported`);
  if (json.lora_bias === true) fail('lora_bias', 'is true: LoRA biases are not supported');
  // modules_to_save (fully trained copies of e.g. embed_tokens / lm_head, as Axolotl's lora_modules_to_save writes)
  // is reported by parsePeftAdapter and its tensors are skipped: see modulesToSaveWarning.
  if (!isEmptyPattern(json.rank_pattern)) fail('rank_pattern', 'sets per-layer ranks, which are not supported');
  if (!isEmptyPattern(json.alpha_pattern)) fail('alpha_pattern', 'sets per-layer alphas, which are not supported');
  if (json.layers_to_transform != null)
    fail('layers_to_transform', 'restricts the adapter to some layers, which is not supported');
  if (json.exclude_modules != null) fail('exclude_modules', 'is not supported');

  const tm = json.target_modules;
  let target: LoraConfig['target_modules'];
  if (tm === undefined || tm === null) target = defaultTargets(modelCfg);
  else if (tm === 'all-linear') target = 'all-linear';
  else if (typeof tm === 'string') {
    // PEFT: a string other than "all-linear" is a regular expression matched against whole module names.
    if (tm.length > MAX_TARGET_PATTERN)
      fail('target_modules', `is a pattern of ${tm.length} characters (at most ${MAX_TARGET_PATTERN} are accepted)`);
    let re: RegExp;
    try {
      re = new RegExp(`^(?:${tm})$`);
    } catch (e) {
      return fail('target_modules', `is not a valid regular expression: ${(e as Error).message}`);
    }
    // re.fullmatch on every module name: a pattern with exponential backtracking is refused before it runs.
    checkRegexCost(`^(?:${tm})$`, '', `${where}: "target_modules"`);
    const names = linearModules(modelCfg)
      .map((m) => m.name)
      .filter((n) => re.test(n));
    if (names.length === 0)
      fail(
        'target_modules',
        `(regular expression ${preview(tm)}) matches no linear layer of this ${modelCfg.architecture}`,
      );
    target = names;
  } else if (isTargetModules(tm)) target = tm;
  else
    return fail(
      'target_modules',
      `must be a list of module names, "all-linear" or a regular expression, got ${preview(tm)}`,
    );

  const config: LoraConfig = {
    r: r as number,
    lora_alpha: alpha as number,
    lora_dropout: dropout as number,
    target_modules: target,
    use_rslora: rslora as boolean,
  };
  try {
    targetedModules(modelCfg, config);
  } catch (e) {
    fail('target_modules', `does not fit the base model: ${(e as Error).message}`);
  }
  return config;
}

const KEY = /^base_model\.model\.(.+)\.lora_([AB])\.weight$/;
/** PEFT's names for the fully trained copies of modules_to_save (and the originals it keeps beside them). */
const MODULES_TO_SAVE_KEY = /^base_model\.model\..+\.(modules_to_save|original_module)(\.[^.]+)?\.(weight|bias)$/;

/**
 * A tensor of a modules_to_save module: PEFT saves `base_model.model.<module>.weight` (the "modules_to_save." part of
 * the in-memory name dropped), older files keep `….modules_to_save.weight` / `….original_module.weight`.
 */
function isModulesToSaveKey(key: string, modules: unknown): boolean {
  if (MODULES_TO_SAVE_KEY.test(key)) return true;
  if (!Array.isArray(modules) || !key.startsWith('base_model.model.') || KEY.test(key)) return false;
  const module = key.replace(/\.(weight|bias)$/, '');
  return modules.some((n) => typeof n === 'string' && (module === `base_model.model.${n}` || module.endsWith(`.${n}`)));
}

/**
 * The report of an adapter's modules_to_save (PEFT trains full copies of these modules, e.g. Axolotl's
 * lora_modules_to_save: [embed_tokens, lm_head] when it adds tokens): webtune applies the LoRA weights only, so the
 * tuned model differs from PEFT's by those modules. Null when there are none.
 */
function modulesToSaveWarning(modules: unknown, keys: string[], where: string): string | null {
  const listed = Array.isArray(modules) && modules.length > 0 ? modules.map(String) : [];
  if (listed.length === 0 && keys.length === 0) return null;
  const names = listed.length
    ? listed.join(', ')
    : [...new Set(keys.map((k) => k.replace(/\.(modules_to_save|original_module).*$/, '')))].join(', ');
  return (
    `${where}: modules_to_save [${names}] (${keys.length} fully trained tensor${keys.length === 1 ? '' : 's'}) ` +
    "not applied: webtune applies the LoRA weights only, so generations can differ from PEFT's for this adapter"
  );
}

function keyHint(key: string): string {
  if (/lora_embedding_[AB]/.test(key)) return ' (LoRA on embedding layers is not supported)';
  if (/lora_magnitude_vector/.test(key)) return ' (DoRA is not supported)';
  if (/\.bias$/.test(key)) return ' (trained biases are not supported)';
  if (/modules_to_save|original_module/.test(key)) return ' (modules_to_save is not supported)';
  if (/\.lora_[AB]\.[^.]+\.weight$/.test(key)) return ' (the key carries an adapter name; PEFT saves keys without it)';
  if (!key.startsWith('base_model.model.')) return ' (PEFT keys start with "base_model.model.")';
  return '';
}

/**
 * Parse a PEFT LoRA adapter for a base model of config `modelCfg`: check adapter_config.json and every tensor
 * (names, ranks and shapes against the base model), and return the config and tensors in the model's layout.
 */
export function parsePeftAdapter(modelCfg: ModelConfig, files: PeftFiles): ImportedPeftAdapter {
  const cName = files.configName ?? ADAPTER_CONFIG_FILE;
  const wName = files.weightsName ?? ADAPTER_WEIGHTS_FILE;
  const raw = parseConfigJson(files.config, cName);
  const config = parsePeftAdapterConfig(raw, modelCfg, cName);
  const { tensors: fileTensors } = parseSafetensors(files.weights, wName);
  checkFinite(
    fileTensors,
    wName,
    'adapter weights must be finite numbers (the adapter was saved from a run that diverged, or the file is damaged)',
  );

  const all = new Map(linearModules(modelCfg).map((m) => [m.name, m] as const));
  const targeted = new Map(targetedModules(modelCfg, config).map((m) => [m.name, m] as const));
  const out: RawTensors = new Map();
  const skipped: string[] = [];
  for (const [key, t] of fileTensors) {
    if (isModulesToSaveKey(key, raw.modules_to_save)) {
      skipped.push(key);
      continue;
    }
    const m = KEY.exec(key);
    if (!m)
      throw new Error(
        `${wName}: unexpected tensor "${key}": not a LoRA weight of the form base_model.model.<module>.lora_A.weight / lora_B.weight${keyHint(key)}`,
      );
    const [, moduleName, which] = m;
    const mod = targeted.get(moduleName);
    if (!mod) {
      if (all.has(moduleName)) {
        throw new Error(
          `${wName}: tensor "${key}" is for module "${moduleName}", which ${cName} target_modules ${preview(raw.target_modules ?? null)} does not target`,
        );
      }
      throw new Error(
        `${wName}: tensor "${key}" is for module "${moduleName}", which is not a linear layer of this ${modelCfg.architecture} (${modelCfg.num_hidden_layers} layers; linear layers are named like "${[...all.keys()][0]}")`,
      );
    }
    if (t.shape.length !== 2) throw new Error(`${wName}: tensor "${key}" has shape [${t.shape}], expected a matrix`);
    const rank = which === 'A' ? t.shape[0] : t.shape[1];
    if (rank !== config.r) {
      throw new Error(
        `${wName}: r mismatch: tensor "${key}" has shape [${t.shape}] (rank ${rank}) but ${cName} says r = ${config.r}`,
      );
    }
    const want = which === 'A' ? [config.r, mod.inFeatures] : [mod.outFeatures, config.r];
    if (t.shape[0] !== want[0] || t.shape[1] !== want[1]) {
      const what = which === 'A' ? `r × in_features (${mod.inFeatures})` : `out_features (${mod.outFeatures}) × r`;
      throw new Error(
        `${wName}: tensor "${key}" has shape [${t.shape}], but the base model's ${moduleName} needs [${want}] (${what}); was the adapter trained on a different base model?`,
      );
    }
    // parseSafetensors may return views of the file's bytes: keep copies, not views of a large buffer
    const heads = which === 'B' ? ropeRows(modelCfg, mod) : null;
    const data =
      heads !== null ? unpermuteRopeRows(t.data, heads, modelCfg.head_dim, config.r) : Float32Array.from(t.data);
    out.set(key, { shape: [...t.shape], data });
  }
  for (const name of targeted.keys()) {
    for (const which of ['A', 'B'] as const) {
      const key = loraParamName(name, which);
      if (!out.has(key))
        throw new Error(`${wName}: missing tensor "${key}" (module "${name}" is targeted by ${cName} target_modules)`);
    }
  }
  const base = raw.base_model_name_or_path;
  const warning = modulesToSaveWarning(raw.modules_to_save, skipped, wName);
  return {
    config,
    tensors: out,
    baseModelNameOrPath: typeof base === 'string' ? base : null,
    raw,
    warnings: warning ? [warning] : [],
  };
}

/** Read adapter_config.json and adapter_model.safetensors from a folder / Hub repository and parse them. */
export async function readPeftAdapter(src: FileSource, modelCfg: ModelConfig): Promise<ImportedPeftAdapter> {
  if (!(await src.has(ADAPTER_CONFIG_FILE)))
    throw new Error(`${src.describe}: no ${ADAPTER_CONFIG_FILE} (is this a PEFT adapter folder?)`);
  if (!(await src.has(ADAPTER_WEIGHTS_FILE))) {
    const hint = (await src.has('adapter_model.bin'))
      ? ' (only adapter_model.bin is present: PyTorch pickles are not supported, save with safe_serialization=True)'
      : '';
    throw new Error(`${src.describe}: no ${ADAPTER_WEIGHTS_FILE}${hint}`);
  }
  return parsePeftAdapter(modelCfg, {
    config: await src.read(ADAPTER_CONFIG_FILE),
    weights: await src.read(ADAPTER_WEIGHTS_FILE),
    configName: `${src.describe}: ${ADAPTER_CONFIG_FILE}`,
    weightsName: `${src.describe}: ${ADAPTER_WEIGHTS_FILE}`,
  });
}

/** The last path segment of a model name or path, lower-cased: "meta-llama/Llama-2-7b-hf/" → "llama-2-7b-hf". */
function modelStem(name: string): string {
  const parts = name
    .replace(/\\/g, '/')
    .split('/')
    .filter((p) => p !== '' && p !== '.');
  return (parts[parts.length - 1] ?? '').toLowerCase();
}

/**
 * A warning when the adapter names another base model (adapter_config.json base_model_name_or_path) than the one
 * loaded (`modelName`, its folder or repository name), or null when they agree or the adapter names none. Shapes
 * are checked by parsePeftAdapter (a mismatch is refused); an adapter of the same shapes for another model loads
 * but may do nothing useful, hence a warning.
 */
export function adapterBaseModelWarning(imported: ImportedPeftAdapter, modelName: string): string | null {
  const base = imported.baseModelNameOrPath?.trim();
  if (!base || !modelName.trim()) return null;
  const a = modelStem(base);
  const b = modelStem(modelName);
  if (a === b || a === '' || b === '') return null;
  return `the adapter was trained on "${base}" (adapter_config.json base_model_name_or_path), but the loaded model is "${modelName}": its shapes fit, but its values may not suit this model; load it on "${base}" if that is what you meant`;
}

/** Attach an imported adapter to the model (replacing any unmerged adapter) with its values. */
export function loadPeftAdapter(model: CausalLM, imported: ImportedPeftAdapter): LoraAdapter {
  const adapter = model.attachLora(imported.config);
  adapter.assign(imported.tensors);
  return adapter;
}

// ---------------------------------------------------------------------------------------------------------
// Merged model

const RESERVED = new Set([
  'config.json',
  'model.safetensors',
  'model.safetensors.index.json',
  'generation_config.json',
]);

/**
 * A full Hugging Face model folder with the adapter folded in (PEFT's merge_and_unload): config.json (toHfConfig),
 * generation_config.json, model.safetensors (F32, canonical HF names; lm_head.weight only when the embeddings are
 * untied) and the given tokenizer files. Merged weights are W + ΔW with ΔW = scaling·B·A (transposed for
 * Conv1D) — the values CausalLM.mergeAdapter computes — read without modifying the model, so its base weights stay
 * bit-for-bit intact (merging and unmerging in place would leave float rounding behind). Without an adapter
 * (or with a merged one) the current weights are written. q/k in the interleaved RoPE layout are permuted to HF's.
 */
export async function exportMergedModel(
  model: CausalLM,
  tokenizerFiles?: Record<string, Uint8Array | string> | Map<string, Uint8Array | string>,
): Promise<Map<string, Uint8Array>> {
  const cfg = model.config;
  const interleaved = !hasLearnedPositions(cfg) && cfg.rope_layout === 'interleaved';
  const outCfg: ModelConfig = interleaved ? { ...cfg, rope_layout: 'half' } : cfg;
  const hfConfig = toHfConfig(outCfg);
  const ad = model.adapter && !model.adapter.merged ? model.adapter : null;
  const tensors = new Map<string, RawTensor>();
  for (const [name, shape] of paramShapes(cfg)) {
    if (!model.weights.has(name) && !model.compact.has(name))
      throw new Error(`exportMergedModel: the model has no weight ${name}`);
    const module = name.endsWith('.weight') ? name.slice(0, -'.weight'.length) : null;
    // compact frozen weights (frozen_dtype float16/int8) are written as their float32 expansion
    let data = await model.weightValues(name);
    if (ad && module !== null && ad.layers.has(module)) {
      const merged = tf.tidy(() => tf.add(tf.tensor(data, shape), ad.deltaWeight(module)));
      try {
        data = await readTensor(merged);
      } finally {
        merged.dispose();
      }
    }
    if (interleaved && /\.self_attn\.[qk]_proj\.weight$/.test(name)) {
      const heads = name.includes('.q_proj.') ? cfg.num_attention_heads : cfg.num_key_value_heads;
      data = permuteRopeRows(data, heads, cfg.head_dim, shape[1]);
    }
    tensors.set(name, { shape: [...shape], data });
  }
  const files = new Map<string, Uint8Array>();
  files.set('config.json', encoder.encode(JSON.stringify(hfConfig, null, 2) + '\n'));
  const gen: Record<string, unknown> = { _from_model_config: true };
  if (cfg.bos_token_id !== null) gen.bos_token_id = cfg.bos_token_id;
  const eos = eosIds(cfg);
  if (eos.length) gen.eos_token_id = eos.length === 1 ? eos[0] : eos;
  files.set('generation_config.json', encoder.encode(JSON.stringify(gen, null, 2) + '\n'));
  files.set('model.safetensors', writeSafetensors(tensors, { format: 'pt' }));
  const extra = tokenizerFiles instanceof Map ? [...tokenizerFiles] : Object.entries(tokenizerFiles ?? {});
  for (const [name, content] of extra) {
    if (RESERVED.has(name))
      throw new Error(`exportMergedModel: tokenizer file "${name}" would overwrite the model's own ${name}`);
    files.set(name, typeof content === 'string' ? encoder.encode(content) : content);
  }
  return files;
}
