/** The loaded model: loading with per-file progress (flushed once per frame), the Hub base URL, the model cache. */
import { useCallback, useEffect, useState } from 'react';
import { CATALOG, hubModelSource, localMirror, savedBaseUrl } from '../catalog';
import { CallScope } from '../callbacks';
import { guard, type Engine } from '../engine';
import { errorMessage } from '../format';
import { currentModel, type ModelState } from '../ModelSection';
import type {
  BackendName,
  FrozenDtype,
  LoadProgress,
  ModelAvailability,
  ModelInfo,
  ModelSource,
  StorageFit,
} from '../../worker/api';

export function useModel(engine: Engine) {
  const [baseUrl, setBaseUrl] = useState(savedBaseUrl);
  const [state, setState] = useState<ModelState>({ kind: 'none' });
  const [catalogId, setCatalogId] = useState<string | null>(null);
  const [cache, setCache] = useState<{ files: number; bytes: number } | null>(null);

  /** Per catalog model, before any click: cached, on the server, or not reachable (refreshed with the cache). */
  const [availability, setAvailability] = useState<Record<string, ModelAvailability> | null>(null);
  const [cacheVersion, setCacheVersion] = useState(0);

  const refreshCache = useCallback(() => {
    guard(engine.cacheInfo()).then(
      (c) => {
        setCache(c);
        setCacheVersion((v) => v + 1);
      },
      () => setCache(null),
    );
  }, [engine]);
  useEffect(() => {
    refreshCache();
  }, [refreshCache]);

  useEffect(() => {
    let live = true;
    // a base URL being typed is checked once it rests
    const timer = setTimeout(() => {
      const sources = CATALOG.models.map((m) => hubModelSource(m, baseUrl));
      guard(engine.modelAvailability(sources)).then(
        (list) => {
          if (live) setAvailability(Object.fromEntries(CATALOG.models.map((m, i) => [m.id, list[i]])));
        },
        () => {
          if (live) setAvailability(null);
        },
      );
    }, 400);
    return () => {
      live = false;
      clearTimeout(timer);
    };
  }, [engine, baseUrl, cacheVersion]);

  /** Per catalog model, before download: at which frozen_dtype it fits the backend in use. */
  const [fits, setFits] = useState<Record<string, StorageFit[]> | null>(null);
  const [backendVersion, setBackendVersion] = useState(0);
  useEffect(() => {
    let live = true;
    guard(engine.storageFits(CATALOG.models.map((m) => ({ params: m.params, memoryBytes: m.memoryBytes })))).then(
      (list) => {
        if (live) setFits(list ? Object.fromEntries(CATALOG.models.map((m, i) => [m.id, list[i]])) : null);
      },
      () => {
        if (live) setFits(null);
      },
    );
    return () => {
      live = false;
    };
  }, [engine, backendVersion]);

  const clearCache = () => {
    void guard(engine.clearCache()).then(refreshCache);
  };

  /** The model (and the one kept after a failed load) moved to another backend with the worker. */
  const movedTo = useCallback((backend: BackendName) => {
    setState((m) =>
      m.kind === 'ready'
        ? { kind: 'ready', value: { ...m.value, backend } }
        : m.kind === 'error' && m.previous
          ? { ...m, previous: { ...m.previous, backend } }
          : m,
    );
  }, []);

  /** Load a model; resolves with it, or null when it failed (the previous model stays). */
  const load = async (
    source: ModelSource,
    id: string | null,
    opts: { frozenDtype?: FrozenDtype } = {},
  ): Promise<ModelInfo | null> => {
    const name = source.kind === 'hub' ? source.name : (source.name ?? 'local model');
    const previous = currentModel(state);
    setState({ kind: 'loading', name, files: {}, previous });
    const pending: Record<string, LoadProgress> = {};
    let scheduled = false;
    const onProgress = (p: LoadProgress) => {
      pending[p.file] = p;
      if (scheduled) return;
      scheduled = true;
      requestAnimationFrame(() => {
        scheduled = false;
        setState((m) => (m.kind === 'loading' ? { ...m, files: { ...m.files, ...pending } } : m));
      });
    };
    const scope = new CallScope();
    try {
      const info = await guard(
        engine.loadModel(source, scope.whileOpen(onProgress), { frozen_dtype: opts.frozenDtype ?? 'float32' }),
      );
      scope.settle();
      setState({ kind: 'ready', value: info });
      setCatalogId(id);
      refreshCache();
      return info;
    } catch (e) {
      scope.settle();
      let message = errorMessage(e);
      if (source.kind === 'hub' && /HTTP 404/.test(message) && source.baseUrl === localMirror().replace(/\/+$/, '')) {
        message +=
          '\n\nThe local mirror serves only the models in its models folder: set the Hub base URL to huggingface.co to download this one.';
      }
      setState({ kind: 'error', name, message, previous });
    }
    refreshCache();
    return null;
  };

  return {
    state,
    /** The model in use (none while one is loading). */
    info: state.kind === 'loading' ? null : currentModel(state),
    busy: state.kind === 'loading',
    catalogId,
    baseUrl,
    setBaseUrl,
    availability,
    fits,
    /** Ask again at which frozen_dtype the catalog fits (the backend started or changed). */
    refreshFits: useCallback(() => setBackendVersion((v) => v + 1), []),
    cache,
    clearCache,
    movedTo,
    load,
  };
}
