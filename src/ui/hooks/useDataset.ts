/** The dataset: its files (kept to read them again), and its report as the run will see the data. */
import { useCallback, useEffect, useRef, useState } from 'react';
import { DEMO_DATASET, type DatasetState } from '../DataSection';
import { guard, type Engine } from '../engine';
import { errorMessage } from '../format';
import type { DatasetInfo, DatasetInput, FinetuneConfig, ModelInfo } from '../../worker/api';

type DataFiles = DatasetInput['files'];

/** The settings that change how the data is read: the dataset report is made again when they change. */
function dataKeyOf(s: FinetuneConfig): string {
  return JSON.stringify([s.template, s.max_length, s.eos_token, s.val_size, s.test_size, s.train_on_inputs, s.seed]);
}

/**
 * @param settings the run's settings: the data is read again (after 400 ms without changes) when one of those that
 * change how it is read changes, while a model is loaded and no run holds the engine.
 * @param onLoading told when a dataset starts loading (what was measured on the previous one is stale).
 */
export function useDataset(
  engine: Engine,
  settings: FinetuneConfig,
  model: ModelInfo | null,
  active: boolean,
  onLoading: () => void,
) {
  const [state, setState] = useState<DatasetState>({ kind: 'none' });
  const [input, setInput] = useState<{ files: DataFiles; name: string } | null>(null);
  /** The data settings the current report was made with (or that need no new one). */
  const readWith = useRef(dataKeyOf(settings));

  const load = useCallback(
    async (files: DataFiles, name: string, s: FinetuneConfig) => {
      setState({ kind: 'loading', name });
      setInput({ files, name });
      onLoading();
      try {
        const info = await guard(engine.loadDataset({ files }, s));
        setState({ kind: 'ready', value: info });
        return info;
      } catch (e) {
        setState({ kind: 'error', name, message: errorMessage(e) });
        return null;
      }
    },
    [engine, onLoading],
  );

  /** Fetch and read the built-in demo dataset; its report when it is ready, else null. */
  const loadDemo = async (): Promise<DatasetInfo | null> => {
    const name = DEMO_DATASET.map((f) => f.name).join(' + ');
    setState({ kind: 'loading', name });
    try {
      const files = await Promise.all(
        DEMO_DATASET.map(async (f) => {
          const res = await fetch(f.url);
          if (!res.ok) throw new Error(`HTTP ${res.status} fetching ${f.url}`);
          return { name: f.name, data: new Uint8Array(await res.arrayBuffer()), role: f.role };
        }),
      );
      return await load(files, name, settings);
    } catch (e) {
      setState({ kind: 'error', name, message: errorMessage(e) });
      return null;
    }
  };

  // The report shows the data as the run will see it: read it again when a data setting changes.
  const dataKey = dataKeyOf(settings);
  useEffect(() => {
    if (dataKey === readWith.current) return;
    if (!input || !model || active) {
      readWith.current = dataKey;
      return;
    }
    const t = setTimeout(() => {
      readWith.current = dataKey;
      void load(input.files, input.name, settings);
    }, 400);
    return () => clearTimeout(t);
  }, [dataKey, input, model, active, load, settings]);

  return {
    state,
    info: state.kind === 'ready' ? state.value : null,
    /** The files of the last dataset loaded (read again with other settings, or kept with a run). */
    input,
    load,
    loadDemo,
    clear: () => setState({ kind: 'none' }),
    /** New settings arrive with their own reading of the data (or none is wanted): no automatic re-read. */
    settle: (s: FinetuneConfig) => {
      readWith.current = dataKeyOf(s);
    },
  };
}
