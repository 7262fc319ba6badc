/**
 * `webtune export-run`: write a run as a folder (or zip) for Hugging Face TRL and Axolotl (src/train/export-run.ts):
 * the data exactly as the run trains on it, its template as Jinja, train_trl.py, axolotl.yaml,
 * accelerate_config.yaml, requirements.txt and a README. Settings come from the training options (the same names
 * and defaults as `webtune train`), or from a saved run (--from-run: its checkpoint's configuration, whose dataset
 * hash must match the data given). No TensorFlow.js work: only the tokenizer is loaded.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import {
  CliError,
  COMMON,
  MODEL_OPTS,
  UsageError,
  loadProgress,
  num,
  parseOptionsArg,
  readDataFiles,
  resolveSpec,
  str,
  type Command,
} from './common';
import { configFromArgs, TRAIN_CONFIG_OPTS, TRAIN_DATA_OPTS } from './train';
import type { FinetuneConfig } from '../train/config';

export const EXPORT_RUN_USAGE = `Usage: webtune export-run --model <m> --data <file> [training options] --out <dir|file.zip>
       webtune export-run --from-run <run folder|checkpoint|file.webtune.safetensors> --model <m> --data <file> --out <dir>

Writes the run for GPUs: data/{train,validation,test}.jsonl (the rows after parsing and splitting, as trained),
chat_template.jinja, train_trl.py (TRL SFTTrainer + PEFT LoraConfig), accelerate_config.yaml (multi-GPU DDP),
axolotl.yaml, requirements.txt, README.md (commands, and every setting without an equivalent). Prints a JSON
summary on stdout.

Options:
  -m, --model <m>              the base model, as for webtune train (its tokenizer renders the data)
      --base-model <id>        the name train_trl.py and axolotl.yaml load (default: the model's Hub id, or --model)
  -d, --data <file>            training data (repeatable), with --format / --columns / --template … as for train
      --validation-data <f>    validation files (default: --val-size of the training data)
      --from-run <p>           take the configuration from a saved run (training options given still override)
      --save-steps <n>         TrainingArguments save_steps (default 500)
  -o, --out <dir|file.zip>     output folder (created), or a .zip file
  All of webtune train's training and LoRA options (--lr, --epochs, --r, --targets, --eos-token, …).
  -q, --quiet                  no progress on stderr
  -h, --help                   this help`;

/** The Hub id of a model argument ("https://huggingface.co/org/name/resolve/main" → "org/name"), else null. */
async function hubIdOf(arg: string): Promise<string | null> {
  const { parseHubUrl } = await import('./resolve');
  const u = /^https?:\/\//i.test(arg) ? parseHubUrl(arg) : null;
  return u ? u.repo : null;
}

export const exportRun: Command = {
  name: 'export-run',
  summary: 'write a run for TRL (accelerate launch) and Axolotl: data, template, train_trl.py, axolotl.yaml',
  usage: EXPORT_RUN_USAGE,
  options: {
    ...COMMON,
    ...MODEL_OPTS,
    ...TRAIN_DATA_OPTS,
    ...TRAIN_CONFIG_OPTS,
    'validation-data': { type: 'string', multiple: true },
    'base-model': { type: 'string' },
    'from-run': { type: 'string' },
    'save-steps': { type: 'string' },
    out: { type: 'string', short: 'o' },
  },
  async run(v, io) {
    const out = str(v, 'out', true)!;
    if (out.trim() === '') throw new UsageError('--out must name a folder or a .zip file');
    if (!(v.data as string[] | undefined)?.length) throw new UsageError('--data is required');
    const given = await configFromArgs(v);
    const saveSteps = v['save-steps'] === undefined ? null : num(v, 'save-steps', { int: true, min: 1 })!;
    const parse = await parseOptionsArg(v);
    const { resolveFinetuneConfig } = await import('../train/config');

    // A saved run's configuration, overridden by the options given.
    let fromRun: { config: FinetuneConfig; modelId: string | null; datasetHash: string; source: string } | null = null;
    const runPath = str(v, 'from-run');
    if (runPath !== undefined) {
      const { loadCheckpointFromPath } = await import('../store/node');
      try {
        const loaded = await loadCheckpointFromPath(path.resolve(runPath));
        const meta = loaded.checkpoint.meta;
        fromRun = {
          config: meta.config,
          modelId: meta.model.id,
          datasetHash: meta.dataset.hash,
          source: loaded.source,
        };
      } catch (e) {
        throw new CliError(`cannot read the run ${runPath}: ${(e as Error).message}`, e);
      }
    }
    const partial: Partial<FinetuneConfig> = { ...(fromRun?.config ?? {}), ...given };
    try {
      resolveFinetuneConfig(partial);
    } catch (e) {
      throw new UsageError((e as Error).message);
    }
    const files = await readDataFiles(v);
    const valFiles = (v['validation-data'] as string[] | undefined)?.length
      ? await readDataFiles({ data: v['validation-data'] })
      : [];

    const { spec, arg } = await resolveSpec(v);
    const { loadModelTokenizer } = await import('../io/load-model');
    let tk: Awaited<ReturnType<typeof loadModelTokenizer>>;
    try {
      tk = await loadModelTokenizer(spec, loadProgress(io, !!v.quiet));
    } catch (e) {
      throw new CliError(`cannot load model ${arg}: ${(e as Error).message}`, e);
    }
    // As webtune train: TRL's max_length 1024 clipped to the context; 5% validation when there are ≥ 10 examples.
    if (partial.max_length === undefined) partial.max_length = Math.min(1024, tk.config.max_position_embeddings);
    const { config } = resolveFinetuneConfig(partial, tk.config.max_position_embeddings);
    const { prepareSessionData } = await import('../train/dataset');
    const sources = (fs: { name: string; data: Uint8Array }[]) =>
      fs.map((f) => ({ name: f.name, bytes: f.data, options: parse }));
    const trainSources = sources(files);
    if (fromRun === null && given.val_size === undefined && valFiles.length === 0) {
      const { parseDataset } = await import('../data');
      let n = 0;
      for (const f of files) n += parseDataset(f.data, f.name, parse).examples.length;
      config.val_size = n >= 10 ? 0.05 : 0;
    }
    let data;
    try {
      data = prepareSessionData(
        tk.tokenizer,
        { train: trainSources, ...(valFiles.length ? { validation: sources(valFiles) } : {}) },
        config,
      );
    } catch (e) {
      throw new CliError((e as Error).message, e);
    }
    if (fromRun !== null) {
      const { hashDataset } = await import('../train/checkpoint');
      const hash = hashDataset({
        train: data.train.examples,
        validation: data.validation.examples,
        test: data.test.examples,
      });
      if (hash !== fromRun.datasetHash)
        throw new CliError(
          `the data given does not tokenize to the data the run ${fromRun.source} trained on (dataset hash ${hash.slice(0, 19)}… ≠ ${fromRun.datasetHash.slice(0, 19)}…): give the same --data files and options`,
        );
    }

    let eosAsToken: string | null = null;
    if (config.eos_token !== null) {
      const ids = tk.tokenizer.encode(config.eos_token, { addBos: false });
      if (ids.length === 1) eosAsToken = tk.tokenizer.idToToken(ids[0]) ?? null;
    }
    const baseModel = str(v, 'base-model') ?? fromRun?.modelId ?? (await hubIdOf(arg)) ?? arg;
    const { buildRunBundle } = await import('../train/export-run');
    const { templateTokensOf } = await import('../data');
    const bundle = buildRunBundle({
      runName: `${tk.name} · ${files.map((f) => f.name).join(', ')}`,
      baseModel,
      modelSource: arg,
      modelConfig: tk.config,
      config,
      template: data.template,
      tokens: templateTokensOf(tk.tokenizer),
      eosAsToken,
      splits: { train: data.train.source, validation: data.validation.source, test: data.test.source },
      saveSteps,
      sourceFiles: files.map((f) => f.name),
    });

    const target = path.resolve(out);
    try {
      if (/\.zip$/i.test(out)) {
        const { zipFiles } = await import('../io/zip');
        await mkdir(path.dirname(target), { recursive: true });
        const enc = new TextEncoder();
        await writeFile(target, zipFiles([...bundle.files].map(([n, t]) => [n, enc.encode(t)] as const)));
      } else {
        for (const [name, text] of bundle.files) {
          const file = path.join(target, name);
          await mkdir(path.dirname(file), { recursive: true });
          await writeFile(file, text);
        }
      }
    } catch (e) {
      throw new CliError(`cannot write ${out}: ${(e as Error).message}`, e);
    }
    if (!v.quiet) {
      io.err(`wrote ${bundle.files.size} files to ${target}\n`);
      for (const n of bundle.plan.notes) io.err(`note: ${n}\n`);
    }
    io.out(
      JSON.stringify({
        out: target,
        base_model: baseModel,
        files: [...bundle.files.keys()],
        train_examples: data.train.examples.length,
        validation_examples: data.validation.examples.length,
        test_examples: data.test.examples.length,
        row_kind: bundle.plan.mainKind,
        notes: bundle.plan.notes.length,
      }) + '\n',
    );
  },
};
