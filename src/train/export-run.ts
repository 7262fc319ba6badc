/**
 * Export a run for Hugging Face TRL (SFTTrainer, `accelerate launch` for multi-GPU DDP / FSDP) and Axolotl
 * (`axolotl train`): a pure function from the run's configuration, its split examples (as trained: after parsing,
 * splitting and tokenization's drops) and its template to the files of one folder:
 *
 *   data/{train,validation,test}.jsonl   the rows in the format the targets read (src/train/export-rows.ts)
 *   data/*.alpaca.json                   Stanford Alpaca JSON, for instruction-template runs
 *   data/*.segments.jsonl                rendered text + trained flags (Axolotl input_output), for raw-template runs
 *   chat_template.jinja                  the run's template as Jinja (src/train/export-jinja.ts)
 *   train_trl.py, accelerate_config.yaml LoraConfig + SFTConfig (src/train/export-trl.ts)
 *   axolotl.yaml                         the same settings under Axolotl's names (src/train/export-axolotl.ts)
 *   requirements.txt, README.md          versions, exact commands, and every setting without an equivalent
 *   webtune_run.json                     the run's FinetuneConfig and template as webtune resolved them
 *
 * Browser-safe: no node: imports.
 */
import { defaultTargets } from '../engine/lora-config';
import { isText, type Example, type TemplateSpec, type TemplateTokens } from '../data';
import { accelerateConfig, trlScript } from './export-trl';
import { axolotlYaml } from './export-axolotl';
import { hasGenerationBlocks, templateToJinja } from './export-jinja';
import type { ExportPlan, RunExportInput } from './export-plan';

export type { RunExportInput } from './export-plan';
import { alpacaRecord, exportRow, rowKind, segmentsRow, toJsonl, type RowKind } from './export-rows';
import { exportReadme } from './export-readme';

export const EXPORT_FORMAT_VERSION = 1;
export const CHAT_TEMPLATE_FILE = 'chat_template.jinja';
export const RUN_CONFIG_FILE = 'webtune_run.json';

export interface RunBundle {
  /** Bundle path → text. */
  files: Map<string, string>;
  plan: ExportPlan;
}

const SPLITS = ['train', 'validation', 'test'] as const;

function mainKindOf(examples: Example[], template: TemplateSpec): RowKind {
  const counts = new Map<RowKind, number>();
  for (const ex of examples) counts.set(rowKind(ex, template), (counts.get(rowKind(ex, template)) ?? 0) + 1);
  let best: RowKind = 'messages';
  let n = -1;
  for (const [k, c] of counts)
    if (c > n) {
      best = k;
      n = c;
    }
  return best;
}

/** Build the bundle of a run (pure: no I/O). */
export function buildRunBundle(input: RunExportInput): RunBundle {
  const c = input.config;
  const template = input.template;
  const files = new Map<string, string>();
  const notes: string[] = [];
  const mainKind = mainKindOf(input.splits.train, template);
  const eosOverride = c.eos_token;
  const tokensForRender: TemplateTokens =
    eosOverride !== null ? { ...input.tokens, eosToken: eosOverride } : input.tokens;

  // --- data
  const paths: Record<(typeof SPLITS)[number], string | null> = { train: null, validation: null, test: null };
  for (const split of SPLITS) {
    const examples = input.splits[split];
    if (examples.length === 0) continue;
    const main = examples.filter((ex) => rowKind(ex, template) === mainKind);
    const other = examples.filter((ex) => rowKind(ex, template) !== mainKind);
    const path = `data/${split}.jsonl`;
    files.set(path, toJsonl(main.map((ex) => exportRow(ex, template))));
    paths[split] = path;
    if (other.length > 0) {
      const byKind = new Map<RowKind, Example[]>();
      for (const ex of other) byKind.set(rowKind(ex, template), [...(byKind.get(rowKind(ex, template)) ?? []), ex]);
      for (const [kind, exs] of byKind) {
        const p = `data/${split}.${kind}.jsonl`;
        files.set(p, toJsonl(exs.map((ex) => exportRow(ex, template))));
        notes.push(
          `${split}: ${exs.length} row(s) are ${kind === 'text' ? 'plain texts' : kind} while the rest are ${mainKind}; ` +
            `TRL's SFTTrainer and one Axolotl dataset entry take one format, so they are written to ${p} and not read ` +
            `by train_trl.py or axolotl.yaml (add ${p} as a second Axolotl dataset to train on them too).`,
        );
      }
    }
    if (mainKind === 'prompt_completion')
      files.set(`data/${split}.segments.jsonl`, toJsonl(main.map((ex) => segmentsRow(ex, template, tokensForRender))));
    if (['alpaca', 'instruction', 'custom'].includes(template.kind) && mainKind === 'messages') {
      const recs = main.map(alpacaRecord);
      const ok = recs.filter((r) => r !== null);
      files.set(`data/${split}.alpaca.json`, JSON.stringify(ok, null, 1) + '\n');
      if (ok.length < recs.length)
        notes.push(
          `${split}: ${recs.length - ok.length} conversation(s) have no Stanford Alpaca form (an untrained turn, or turns that do not alternate) ` +
            `and are only in ${path}.`,
        );
    }
  }
  if (paths.train === null) throw new Error('export: the run has no training example');

  // --- template
  const jinja = mainKind === 'messages' ? templateToJinja(template, input.tokens, eosOverride) : null;
  if (jinja !== null) files.set(CHAT_TEMPLATE_FILE, jinja.endsWith('\n') ? jinja : jinja + '\n');
  const generationBlocks = jinja !== null && hasGenerationBlocks(jinja);

  const targetModules = c.target_modules ?? defaultTargets(input.modelConfig);
  const plan: ExportPlan = {
    runName: input.runName,
    baseModel: input.baseModel,
    config: c,
    targetModules,
    mainKind,
    files: { train: paths.train, validation: paths.validation, test: paths.test },
    chatTemplateFile: jinja !== null ? CHAT_TEMPLATE_FILE : null,
    generationBlocks,
    trlEosToken: eosOverride !== null ? (input.eosAsToken ?? null) : null,
    saveSteps: input.saveSteps ?? 500,
    notes,
  };
  addSettingNotes(plan, input);

  files.set('train_trl.py', trlScript(plan));
  files.set('accelerate_config.yaml', accelerateConfig());
  files.set('axolotl.yaml', axolotlYaml(plan, jinja));
  files.set('requirements.txt', REQUIREMENTS);
  files.set(
    RUN_CONFIG_FILE,
    JSON.stringify(
      { format_version: EXPORT_FORMAT_VERSION, base_model: input.baseModel, template, config: c },
      null,
      2,
    ) + '\n',
  );
  files.set('README.md', exportReadme(plan, input));
  return { files, plan };
}

/** The settings TRL or Axolotl cannot take as they are, each with what the bundle does instead. */
function addSettingNotes(p: ExportPlan, input: RunExportInput): void {
  const c = p.config;
  const n = p.notes;
  if (p.mainKind === 'messages' && !c.train_on_inputs && !p.generationBlocks)
    n.push(
      "train_on_inputs = false: the run's chat template has no {% generation %} blocks, which TRL's assistant_only_loss " +
        'needs, so train_trl.py trains on every token of the conversation (assistant_only_loss=False). Axolotl finds ' +
        'the assistant turns itself (roles_to_train: [assistant]) and reproduces the mask.',
    );
  if (c.eos_token !== null) {
    if (p.trlEosToken === null)
      n.push(
        `eos_token ${JSON.stringify(c.eos_token)} is not one token of the vocabulary, so SFTConfig keeps the tokenizer's EOS; ` +
          `the chat template writes ${JSON.stringify(c.eos_token)} after each response itself.`,
      );
    else if (p.trlEosToken !== c.eos_token)
      n.push(
        `eos_token ${JSON.stringify(c.eos_token)} is the vocabulary token ${JSON.stringify(p.trlEosToken)}: SFTConfig(eos_token=${JSON.stringify(p.trlEosToken)}).`,
      );
    if (p.mainKind === 'messages')
      n.push(
        `eos_token ${JSON.stringify(c.eos_token)}: the chat template writes it literally after each response (not the tokenizer's eos_token); ` +
          'Axolotl trains it as part of the assistant turn.',
      );
  }
  if (p.files.validation === null && c.eval_strategy !== 'no')
    n.push(
      `eval_strategy = ${JSON.stringify(c.eval_strategy)} but the run had no validation split: no evaluation is configured.`,
    );
  if (c.pad_to_multiple_of !== null)
    n.push(
      `pad_to_multiple_of = ${c.pad_to_multiple_of} (fewer kernel shapes in the browser): SFTConfig takes it; Axolotl has no such key ` +
        '(padding does not change the loss).',
    );
  if (c.eval_strategy === 'epoch')
    n.push('eval_strategy = "epoch": Axolotl evaluates once per epoch with evals_per_epoch: 1.');
  if (input.saveSteps == null)
    n.push(
      "save_steps: the webtune run kept no intermediate checkpoints; the bundle uses TrainingArguments' default 500 (checkpoint-500, …).",
    );
  n.push(
    'webtune trains in float32 on one device; the configs keep float32 (bf16: false, mixed_precision: no). On several GPUs the ' +
      'effective batch is per_device_train_batch_size × gradient_accumulation_steps × the number of GPUs: divide ' +
      "gradient_accumulation_steps by N to keep the run's batch.",
  );
  n.push(
    "lora_dropout, data order and adapter initialisation use PyTorch's random generators, not webtune's: the same seed gives " +
      'a statistically equivalent run, not bit-identical weights.',
  );
  if (p.mainKind !== 'text' && input.splits.train.some(isText))
    n.push('Plain-text rows are trained whole (continued pre-training) in webtune; see the data notes above.');
}

const REQUIREMENTS = `# Tested names: TRL >= 0.20 (SFTConfig max_length, assistant_only_loss, completion_only_loss)
torch>=2.4
transformers>=4.56
trl>=0.20
peft>=0.17
datasets>=3.0
accelerate>=1.10
safetensors>=0.4
# Axolotl (optional, for axolotl.yaml): pip install axolotl>=0.12
`;
