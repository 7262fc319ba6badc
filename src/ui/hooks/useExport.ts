/** Export (adapter, merged model, metrics, the run for TRL / Axolotl: one zip each) and import of a PEFT adapter. */
import { useState } from 'react';
import { saveFile } from '../controls';
import { guard, type Engine } from '../engine';
import { errorMessage, formatBytes } from '../format';
import type { StatusMessage } from '../loadable';
import type { AdapterInfo, ExportedFile, FinetuneConfig } from '../../worker/api';

/** @param onImported an imported adapter is attached to the model. */
export function useExport(engine: Engine, onImported: (a: AdapterInfo) => void) {
  const [message, setMessage] = useState<StatusMessage | null>(null);
  const [busy, setBusy] = useState(false);

  const download = async (what: string, get: () => Promise<ExportedFile>) => {
    setBusy(true);
    setMessage(null);
    try {
      const f = await guard(get());
      saveFile(f.name, f.bytes, f.mime);
      setMessage({ kind: 'ok', text: `${what}: saved ${f.name} (${formatBytes(f.bytes.byteLength)})` });
    } catch (e) {
      setMessage({ kind: 'error', text: errorMessage(e) });
    } finally {
      setBusy(false);
    }
  };

  const importAdapter = async (files: File[]) => {
    if (files.length === 0) return;
    setBusy(true);
    setMessage(null);
    try {
      const read = await Promise.all(
        // A folder's files keep their path in it (TRL / Axolotl output_dir with checkpoint-N folders).
        files.map(async (f) => ({
          name: f.webkitRelativePath || f.name,
          bytes: new Uint8Array(await f.arrayBuffer()),
        })),
      );
      const info = await guard(engine.importAdapter(read));
      onImported(info);
      const notes = info.warnings.length ? ` Note: ${info.warnings.join('; ')}.` : '';
      setMessage({
        kind: 'ok',
        text:
          `Imported adapter (${info.origin}); the playground's tuned side uses it now.${notes}` +
          (info.warning ? ` Warning: ${info.warning}.` : ''),
      });
    } catch (e) {
      setMessage({ kind: 'error', text: errorMessage(e) });
    } finally {
      setBusy(false);
    }
  };

  return {
    message,
    clearMessage: () => setMessage(null),
    busy,
    exportAdapter: () => void download('Adapter', () => engine.exportAdapter()),
    exportMerged: () => void download('Merged model', () => engine.exportMerged()),
    exportMetrics: () => void download('Metrics', () => engine.exportMetrics()),
    /** The run for TRL / Axolotl on GPUs (the page's settings when no run was started). */
    exportRunBundle: (settings: FinetuneConfig) =>
      void download('Run for TRL / Axolotl', () => engine.exportRunBundle(settings)),
    importAdapter,
  };
}
