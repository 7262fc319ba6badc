/**
 * The loaded model's LoRA adapter: what it is, PEFT import, and export — each export one zip: the PEFT adapter folder
 * (with a README on loading it), or the model with the adapter merged in as a transformers folder (with the tokenizer
 * files transformers needs: a llama2.c tokenizer.bin becomes tokenizer.json + tokenizer_config.json).
 */
import { chooseAdapterFiles } from '../io/peft-layout';
import {
  adapterBaseModelWarning,
  exportMergedModel,
  exportPeftAdapter,
  loadPeftAdapter,
  parsePeftAdapter,
  peftAdapterReadme,
} from '../io/peft';
import { llama2cToHfTokenizer } from '../io/tokenizer-llama2c-hf';
import type { AdapterInfo, ExportedFile } from './api';
import { exportBaseName, exportedZip } from './exported-file';
import { assertIdle, assertNoRun, exclusive, requireModel, type LoadedModel, type WorkerState } from './state';

const encoder = new TextEncoder();

function adapterInfo(s: WorkerState): AdapterInfo | null {
  const ad = s.loaded?.model.adapter;
  if (!ad) return null;
  return {
    config: ad.config,
    trainableParams: ad.numTrainable(),
    modules: ad.layers.size,
    origin: s.adapterOrigin || 'trained here',
    warnings: s.adapterOrigin ? s.adapterWarnings : [],
  };
}

/** What the adapter README says about a base model that is not a transformers folder at base_model_name_or_path. */
function baseModelNote(m: LoadedModel): string | null {
  const src = m.source;
  if (src.kind === 'hub' && src.format === 'llama2c') {
    const weights = src.files.find((f) => f.role === 'weights')?.path ?? src.files[0]?.path ?? '';
    return (
      `Note: the base model is the llama2.c checkpoint \`${weights}\` in the Hub repository \`${src.repo}\`, ` +
      'not a transformers folder, so `from_pretrained` cannot load it as it is: convert it to a transformers Llama ' +
      'folder first (the q/k rows permuted to the Hugging Face RoPE layout, as the adapter is), or use the merged export.'
    );
  }
  if (src.kind === 'files')
    return `Note: the base model was loaded from local files (${JSON.stringify(m.baseModel)}): point \`from_pretrained\` at your copy of it.`;
  return null;
}

/** The tokenizer files of a transformers folder for the model: as loaded, or its llama2.c tokenizer.bin converted. */
function mergedTokenizerFiles(m: LoadedModel): Map<string, Uint8Array> {
  // copies: the exported bytes are transferred to the page, and the worker keeps its tokenizer files
  const files = new Map([...m.tokenizerFiles].map(([k, v]) => [k, v.slice()]));
  if (files.has('tokenizer.json')) return files;
  const bin = [...files.keys()].find((k) => k.endsWith('.bin'));
  if (!bin) return files;
  const hf = llama2cToHfTokenizer(files.get(bin)!, bin, m.model.config.max_position_embeddings);
  return new Map(Object.entries(hf).map(([k, text]) => [k, encoder.encode(text)]));
}

/** The API's adapter part. */
export function adapterApi(s: WorkerState) {
  return {
    async adapterInfo(): Promise<AdapterInfo | null> {
      return adapterInfo(s);
    },

    /** One zip: adapter_config.json + adapter_model.safetensors (PEFT names and layout) + README.md. */
    exportAdapter(): Promise<ExportedFile> {
      return exclusive(s, async () => {
        assertIdle(s, 'export');
        const m = requireModel(s);
        const ad = m.model.adapter;
        if (!ad) throw new Error('There is no adapter to export: train or import one first.');
        const files = await exportPeftAdapter(m.model, { baseModelNameOrPath: m.baseModel });
        const readme = peftAdapterReadme({
          baseModelNameOrPath: m.baseModel,
          baseModelNote: baseModelNote(m),
          modelName: m.info.name,
          lora: ad.config,
        });
        files.set('README.md', encoder.encode(readme));
        return exportedZip(`${exportBaseName(s)}-lora-adapter.zip`, files);
      });
    },

    /** One zip: the base model with the adapter folded in, as a transformers folder with its tokenizer files. */
    exportMerged(): Promise<ExportedFile> {
      return exclusive(s, async () => {
        assertIdle(s, 'export');
        const m = requireModel(s);
        if (!m.model.adapter) throw new Error('There is no adapter to merge: train or import one first.');
        const files = await exportMergedModel(m.model, mergedTokenizerFiles(m));
        return exportedZip(`${exportBaseName(s)}-merged.zip`, files);
      });
    },

    /** Attach a PEFT adapter (adapter_config.json + adapter_model.safetensors) to the loaded model. */
    importAdapter(files: { name: string; bytes: Uint8Array }[]): Promise<AdapterInfo> {
      return exclusive(s, async () => {
        assertNoRun(s, 'import an adapter');
        const m = requireModel(s);
        // A TRL / Axolotl output folder (checkpoint-N folders, trainer files) or the two files chosen by hand.
        let chosen;
        try {
          chosen = chooseAdapterFiles(files);
        } catch (e) {
          throw new Error(
            `${(e as Error).message}. Choose adapter_config.json and adapter_model.safetensors (got ${files.map((f) => f.name).join(', ') || 'nothing'}).`,
            { cause: e },
          );
        }
        const { config, weights } = chosen;
        const imported = parsePeftAdapter(m.model.config, {
          config: config.bytes,
          weights: weights.bytes,
          configName: config.name,
          weightsName: weights.name,
        });
        s.adapterWarnings = [...chosen.notes, ...imported.warnings];
        s.job?.dispose(); // the run's adapter is replaced; its metrics stay exportable
        loadPeftAdapter(m.model, imported);
        s.adapterOrigin = `imported from ${config.name} + ${weights.name}`;
        const warning = adapterBaseModelWarning(imported, m.baseModel);
        return { ...adapterInfo(s)!, ...(warning ? { warning } : {}) };
      });
    },
  };
}
