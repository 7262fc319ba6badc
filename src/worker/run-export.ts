/**
 * Export the page's run for GPUs (src/train/export-run.ts): the data as the run trains on it, its template as Jinja,
 * train_trl.py, axolotl.yaml, accelerate_config.yaml, requirements.txt and a README, as one zip. The run is the
 * training the page started (its configuration and data as trained), else the loaded dataset with the page's settings.
 */
import { templateTokensOf } from '../data';
import { resolveFinetuneConfig } from '../train/config';
import { prepareSessionData } from '../train/dataset';
import { buildRunBundle } from '../train/export-run';
import type { ExportedFile, FinetuneConfig, ModelSource } from './api';
import { sessionData } from './dataset';
import { exportBaseName, exportedZip } from './exported-file';
import { exclusive, requireData, requireModel, type WorkerState } from './state';

const encoder = new TextEncoder();

/** Where the model came from, for the bundle's README (a llama2.c checkpoint is named by its .bin file). */
function modelSourceOf(src: ModelSource, baseModel: string): string {
  if (src.kind === 'hub' && src.format === 'llama2c') {
    const weights = src.files.find((f) => f.role === 'weights')?.path ?? src.files[0]?.path ?? '';
    return `${src.repo}/${weights}`;
  }
  if (src.kind === 'files') {
    const bin = src.files.find((f) => /\.bin$/i.test(f.path));
    if (bin) return bin.path;
  }
  return baseModel;
}

export function runExportApi(s: WorkerState) {
  return {
    /** One zip for TRL (accelerate launch) and Axolotl: the run's data, template and every setting. */
    exportRunBundle(settings: FinetuneConfig): Promise<ExportedFile> {
      return exclusive(s, async () => {
        const m = requireModel(s);
        const d = requireData(s);
        const session = s.job && !s.adapterOrigin ? s.job.session : null;
        let config: FinetuneConfig;
        let prepared;
        if (session) {
          config = session.config;
          prepared = session.data;
        } else {
          config = resolveFinetuneConfig(settings, m.model.config.max_position_embeddings).config;
          prepared = prepareSessionData(m.tokenizer, sessionData(d.input), config);
        }
        let eosAsToken: string | null = null;
        if (config.eos_token !== null) {
          const ids = m.tokenizer.encode(config.eos_token, { addBos: false });
          if (ids.length === 1) eosAsToken = m.tokenizer.idToToken(ids[0]) ?? null;
        }
        const bundle = buildRunBundle({
          runName: `${m.info.name} · ${d.name}`,
          baseModel: m.baseModel,
          modelSource: modelSourceOf(m.source, m.baseModel),
          modelConfig: m.model.config,
          config,
          template: prepared.template,
          tokens: templateTokensOf(m.tokenizer),
          eosAsToken,
          splits: { train: prepared.train.source, validation: prepared.validation.source, test: prepared.test.source },
          sourceFiles: d.input.files.map((f) => f.name),
        });
        const files = [...bundle.files].map(([name, text]) => [name, encoder.encode(text)] as const);
        return exportedZip(`${exportBaseName(s)}-trl-axolotl.zip`, files);
      });
    },
  };
}
