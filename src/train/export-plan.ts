/**
 * What an exported run is made of, decided once for both targets (TRL's train_trl.py and Axolotl's axolotl.yaml):
 * the resolved configuration, the base model's name, the target modules PEFT will wrap, the row kind the data is
 * written as, the data files, the chat template file, and the notes on every setting that has no exact equivalent
 * in a target (listed in the bundle's README, never dropped silently).
 *
 * Browser-safe: no node: imports.
 */
import type { ModelConfig } from '../engine/config';
import type { Example, TemplateSpec, TemplateTokens } from '../data';
import type { FinetuneConfig } from './config';
import type { RowKind } from './export-rows';

export interface ExportFiles {
  /** Bundle paths of the splits in the main row kind ("data/train.jsonl" …); null when the split is empty. */
  train: string;
  validation: string | null;
  test: string | null;
}

export interface ExportPlan {
  runName: string;
  /** transformers' from_pretrained name: a Hub id or a folder. */
  baseModel: string;
  config: FinetuneConfig;
  /** PEFT target_modules: the short names of the run's targets, or "all-linear". */
  targetModules: string[] | 'all-linear';
  /** The row kind of the data files the configs read. */
  mainKind: RowKind;
  files: ExportFiles;
  /** Bundle path of the Jinja chat template; null for prompt/completion or text runs. */
  chatTemplateFile: string | null;
  /** The chat template marks assistant tokens with {% generation %} (TRL's assistant_only_loss needs it). */
  generationBlocks: boolean;
  /** TRL's SFTConfig eos_token: the run's eos_token as the vocabulary token it encodes to; null = the tokenizer's. */
  trlEosToken: string | null;
  /** transformers' save_steps (webtune's --save-steps, else the TrainingArguments default 500). */
  saveSteps: number;
  /** Settings without an exact equivalent: what was done instead. */
  notes: string[];
}

export interface RunExportInput {
  /** A name for the run (the README's title). */
  runName: string;
  /** The base model as transformers' from_pretrained takes it (a Hub id or a folder). */
  baseModel: string;
  /** The model webtune trained (for the default target modules and notes). */
  modelConfig: Pick<ModelConfig, 'family' | 'max_position_embeddings'>;
  /** Where the base model came from in webtune (a catalog id, folder or URL), for the README. */
  modelSource?: string;
  /** The resolved configuration. */
  config: FinetuneConfig;
  /** The template the run used (resolved: never null). */
  template: TemplateSpec;
  /** The tokenizer's template tokens (eos_token not applied). */
  tokens: TemplateTokens;
  /** The run's eos_token as one vocabulary token (e.g. "<0x0A>" for "\n"), or null when it is not one token. */
  eosAsToken?: string | null;
  /** The examples of each split, as trained. */
  splits: { train: Example[]; validation: Example[]; test: Example[] };
  /** webtune's --save-steps (default: TrainingArguments' 500). */
  saveSteps?: number | null;
  /** The dataset files the run read, for the README. */
  sourceFiles?: string[];
}
