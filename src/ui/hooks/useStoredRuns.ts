/** The runs stored in this browser: the list (refreshed after changes and, at most every 2 s, after saves), rename, delete, export, import. */
import { useCallback, useEffect, useRef, useState } from 'react';
import { saveFile } from '../controls';
import { guard, type Engine } from '../engine';
import { errorMessage, formatBytes } from '../format';
import type { Loadable, StatusMessage } from '../loadable';
import type { RunsReport, StoredRun } from '../../worker/api';

export function useStoredRuns(engine: Engine) {
  const [state, setState] = useState<Loadable<RunsReport>>({ kind: 'loading' });
  const [message, setMessage] = useState<StatusMessage | null>(null);

  const refresh = useCallback(() => {
    guard(engine.listRuns()).then(
      (report) => setState({ kind: 'ready', value: report }),
      (e) => setState({ kind: 'error', message: errorMessage(e) }),
    );
  }, [engine]);
  useEffect(() => {
    refresh();
  }, [refresh]);

  // the list follows the saves, at most every 2 s
  const pending = useRef<ReturnType<typeof setTimeout> | null>(null);
  const refreshSoon = useCallback(() => {
    if (!pending.current)
      pending.current = setTimeout(() => {
        pending.current = null;
        refresh();
      }, 2000);
  }, [refresh]);

  const action = async (what: string, fn: () => Promise<string | void>) => {
    setMessage(null);
    try {
      const text = await fn();
      if (text) setMessage({ kind: 'ok', text });
    } catch (e) {
      setMessage({ kind: 'error', text: `${what}: ${errorMessage(e)}` });
    }
    refresh();
  };

  return {
    state,
    message,
    setMessage,
    refresh,
    refreshSoon,
    rename: (r: StoredRun, name: string) =>
      action('Rename', async () => {
        await guard(engine.renameRun(r.id, name));
        return `Renamed to "${name}".`;
      }),
    remove: (r: StoredRun) =>
      action('Delete', async () => {
        await guard(engine.deleteRun(r.id));
        return `Deleted "${r.name}".`;
      }),
    exportRun: (r: StoredRun) =>
      action('Export', async () => {
        const f = await guard(engine.exportRun(r.id));
        saveFile(f.name, f.bytes, f.mime);
        return `Saved ${f.name} (${formatBytes(f.bytes.byteLength)}): import it here or in another browser to resume the run.`;
      }),
    importRun: (f: File) =>
      action('Import', async () => {
        const r = await guard(engine.importRun(f.name, new Uint8Array(await f.arrayBuffer())));
        return `Imported "${r.name}" (step ${r.latest?.step ?? 0}).`;
      }),
  };
}
