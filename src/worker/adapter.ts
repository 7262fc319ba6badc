/**
 * The loaded model's LoRA adapter: what it is, PEFT import, and export as a PEFT adapter or merged into the model.
 */
import { exportMergedModel, exportPeftAdapter, loadPeftAdapter, parsePeftAdapter } from '../io/peft';
import type { AdapterInfo, ExportedFile } from './api';
import { exportedFile } from './exported-file';
import { assertIdle, assertNoRun, exclusive, requireModel, type WorkerState } from './state';

function adapterInfo(s: WorkerState): AdapterInfo | null {
  const ad = s.loaded?.model.adapter;
  if (!ad) return null;
  return {
    config: ad.config,
    trainableParams: ad.numTrainable(),
    modules: ad.layers.size,
    origin: s.adapterOrigin || 'trained here',
  };
}

/** The API's adapter part. */
export function adapterApi(s: WorkerState) {
  return {
    async adapterInfo(): Promise<AdapterInfo | null> {
      return adapterInfo(s);
    },

    /** adapter_config.json + adapter_model.safetensors (PEFT names and layout). */
    exportAdapter(): Promise<ExportedFile[]> {
      return exclusive(s, async () => {
        assertIdle(s, 'export');
        const m = requireModel(s);
        if (!m.model.adapter) throw new Error('There is no adapter to export: train or import one first.');
        const files = await exportPeftAdapter(m.model, { baseModelNameOrPath: m.baseModel });
        return [...files].map(([name, bytes]) =>
          exportedFile(name, bytes, name.endsWith('.json') ? 'application/json' : 'application/octet-stream'),
        );
      });
    },

    /** The base model with the adapter folded in, in transformers' format, with the tokenizer files. */
    exportMerged(): Promise<ExportedFile[]> {
      return exclusive(s, async () => {
        assertIdle(s, 'export');
        const m = requireModel(s);
        if (!m.model.adapter) throw new Error('There is no adapter to merge: train or import one first.');
        // copies: the exported files are transferred to the page, and the worker keeps its tokenizer files
        const files = await exportMergedModel(m.model, new Map([...m.tokenizerFiles].map(([k, v]) => [k, v.slice()])));
        return [...files].map(([name, bytes]) =>
          exportedFile(name, bytes, name.endsWith('.json') ? 'application/json' : 'application/octet-stream'),
        );
      });
    },

    /** Attach a PEFT adapter (adapter_config.json + adapter_model.safetensors) to the loaded model. */
    importAdapter(files: { name: string; bytes: Uint8Array }[]): Promise<AdapterInfo> {
      return exclusive(s, async () => {
        assertNoRun(s, 'import an adapter');
        const m = requireModel(s);
        const config = files.find((f) => f.name.endsWith('.json'));
        const weights = files.find((f) => f.name.endsWith('.safetensors'));
        if (!config || !weights) {
          throw new Error(
            `Choose both files of a PEFT adapter: adapter_config.json and adapter_model.safetensors (got ${files.map((f) => f.name).join(', ') || 'nothing'}).`,
          );
        }
        const imported = parsePeftAdapter(m.model.config, {
          config: config.bytes,
          weights: weights.bytes,
          configName: config.name,
          weightsName: weights.name,
        });
        s.job?.dispose(); // the run's adapter is replaced; its metrics stay exportable
        loadPeftAdapter(m.model, imported);
        s.adapterOrigin = `imported from ${config.name} + ${weights.name}`;
        return adapterInfo(s)!;
      });
    },
  };
}
