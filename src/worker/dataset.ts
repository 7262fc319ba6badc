/**
 * The dataset in the worker: the page's files as a session's data, parsed, split and tokenized for the loaded model
 * (loadDataset), and its held-out examples for generation and evaluation.
 */
import { promptAndReference } from '../train/evaluate';
import { resolveFinetuneConfig } from '../train/config';
import { prepareSessionData, type SessionData } from '../train/dataset';
import type { DatasetInfo, DatasetInput, FinetuneConfig } from './api';
import { assertNoRun, exclusive, requireModel, type LoadedData, type WorkerState } from './state';

/** The page's dataset files as a session's data (by role). */
export function sessionData(input: DatasetInput): SessionData {
  const of = (role: string) => input.files.filter((f) => f.role === role).map((f) => ({ name: f.name, bytes: f.data }));
  const train = of('train');
  if (train.length === 0) throw new Error('No training file was given.');
  const validation = of('validation');
  const test = of('test');
  return { train, validation: validation.length ? validation : undefined, test: test.length ? test : undefined };
}

/** Held-out examples for generation: the test split, else validation. */
export function heldOut(d: LoadedData) {
  return d.prepared.test.source.length ? d.prepared.test.source : d.prepared.validation.source;
}

/** The API's dataset part. */
export function datasetApi(s: WorkerState) {
  return {
    /** Parse, split and tokenize a dataset as a run with `settings` will (template, max_length, eos_token, splits). */
    loadDataset(input: DatasetInput, settings: FinetuneConfig): Promise<DatasetInfo> {
      return exclusive(s, async () => {
        assertNoRun(s, 'change the dataset');
        const { model, tokenizer } = requireModel(s);
        const { config, warnings } = resolveFinetuneConfig(settings, model.config.max_position_embeddings);
        const prepared = prepareSessionData(tokenizer, sessionData(input), config);
        const data: LoadedData = { input, name: input.files.map((f) => f.name).join(', '), config, prepared };
        s.data = data;
        if (prepared.dropped.length)
          warnings.push(
            `${prepared.dropped.length} example(s) dropped during tokenization (first: ${prepared.dropped[0].message})`,
          );
        const prompts: DatasetInfo['prompts'] = [];
        for (const ex of heldOut(data)) {
          const pr = promptAndReference(ex);
          const user = pr?.messages.filter((m) => m.role === 'user').pop();
          if (!pr || !user) continue;
          prompts.push({
            instruction: user.instruction ?? user.content,
            input: user.input ?? '',
            reference: pr.reference,
          });
        }
        return { name: input.files.map((f) => f.name).join(', '), report: prepared.report, prompts, warnings };
      });
    },
  };
}
