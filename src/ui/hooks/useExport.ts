/** Export (adapter, merged model, metrics: one zip each) and import of a PEFT adapter. */
import { useState } from 'react';
import { saveFile } from '../controls';
import { guard, type Engine } from '../engine';
import { errorMessage, formatBytes } from '../format';
import type { StatusMessage } from '../loadable';
import type { AdapterInfo, ExportedFile } from '../../worker/api';

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
        files.map(async (f) => ({ name: f.name, bytes: new Uint8Array(await f.arrayBuffer()) })),
      );
      const info = await guard(engine.importAdapter(read));
      onImported(info);
      setMessage({
        kind: 'ok',
        text:
          `Imported adapter (${info.origin}); the playground's tuned side uses it now.` +
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
    importAdapter,
  };
}
