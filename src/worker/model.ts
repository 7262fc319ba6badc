/**
 * Loading a model into the worker (Hub or local files, with byte progress and the Cache Storage), refused before the
 * loaded one is let go when the backend cannot hold it; and the model cache's API.
 */
import { CausalLM } from '../engine/model';
import { countParams, linearModules } from '../engine/params';
import { defaultTemplate } from '../data';
import { loadModel as loadModelFiles } from '../io/load-model';
import { checkModelFits, explainOutOfMemory, storageFits, type StorageFit } from '../train/memory-guard';
import type { LoadOptions, LoadProgress, ModelAvailability, ModelInfo, ModelSource } from './api';
import { ensureBackend, memoryLimits } from './backend';
import { fetchWithDeadline } from '../io/fetch';
import { hubFileUrl } from '../io/source';
import { allCached, cachedModelFiles, cachingFetch, clearModelCache } from './model-cache';
import { resolveModelSource } from './model-source';
import { assertNoRun, exclusive, type WorkerState } from './state';

function throttled(fn: (p: LoadProgress) => void, ms = 80): (p: LoadProgress) => void {
  const last = new Map<string, number>();
  return (p) => {
    const t = performance.now();
    const done = p.total !== null && p.loaded >= p.total;
    if (!done && t - (last.get(p.file) ?? -Infinity) < ms) return;
    last.set(p.file, t);
    fn(p);
  };
}

/** Load a model (replacing the loaded one only once the new one has loaded). */
export async function loadModelFrom(
  s: WorkerState,
  source: ModelSource,
  onProgress?: (p: LoadProgress) => void,
  options: LoadOptions = {},
): Promise<ModelInfo> {
  const frozenDtype = options.frozen_dtype ?? 'float32';
  const status = await ensureBackend(s);
  const t0 = performance.now();
  const cf = cachingFetch();
  const resolved = resolveModelSource(source, cf);
  const sizes = new Map<string, number>();
  const cachedFile = (f: string) => [...cf.hits].some((u) => decodeURIComponent(u).endsWith('/' + f));
  const report = onProgress ? throttled(onProgress) : undefined;
  const m = await loadModelFiles(resolved.spec, (p) => {
    s.beat();
    sizes.set(p.file, p.loaded);
    report?.({ file: p.file, loaded: p.loaded, total: p.total, cached: cachedFile(p.file), phase: 'download' });
  });
  const weightsFile = m.files[0] ?? 'weights';
  onProgress?.({
    file: weightsFile,
    loaded: sizes.get(weightsFile) ?? 0,
    total: sizes.get(weightsFile) ?? null,
    cached: cachedFile(weightsFile),
    phase: 'prepare',
  });
  // a model the backend cannot hold is refused before the loaded one is let go
  checkModelFits(countParams(m.config), status.backend, memoryLimits(s), {
    config: m.config,
    modelName: m.name,
    frozenDtype,
  });
  // the old model goes only once the new one has loaded (a failed load keeps it)
  s.job?.dispose();
  s.job = null;
  s.data = null;
  s.loaded?.model.dispose();
  s.loaded = null;
  let model: CausalLM;
  try {
    model = CausalLM.fromRaw(m.config, m.weights, { frozenDtype });
  } catch (e) {
    throw (
      explainOutOfMemory(e, {
        phase: 'load',
        backend: status.backend,
        modelName: m.name,
        limits: memoryLimits(s),
        extra: { modelConfig: m.config },
      }) ?? e
    );
  }
  await cf.flush();
  let cachedBytes = 0;
  for (const [f, n] of sizes) if (cachedFile(f)) cachedBytes += n;
  const cfg = m.config;
  const info: ModelInfo = {
    name: m.name,
    source: resolved.spec.source.describe,
    family: cfg.family,
    architecture: cfg.architecture,
    params: countParams(cfg),
    vocabSize: cfg.vocab_size,
    hiddenSize: cfg.hidden_size,
    layers: cfg.num_hidden_layers,
    contextLength: cfg.max_position_embeddings,
    linearModules: [...new Set(linearModules(cfg).map((l) => l.short))],
    hasChatTemplate: !!m.tokenizer.chatTemplate,
    defaultTemplate: defaultTemplate(m.tokenizer).kind,
    backend: status.backend,
    frozenDtype,
    bytes: [...sizes.values()].reduce((a, b) => a + b, 0),
    cachedBytes,
    ms: performance.now() - t0,
  };
  s.loaded = {
    model,
    tokenizer: m.tokenizer,
    info,
    tokenizerFiles: resolved.tokenizerFiles,
    baseModel: resolved.baseModel,
    source,
  };
  s.adapterOrigin = '';
  return info;
}

/** The API's model part: loading, and the cache of downloaded model files. */
async function availability(src: ModelSource): Promise<ModelAvailability> {
  if (src.kind !== 'hub') return { kind: 'unknown' };
  const urls = src.files.map((f) => hubFileUrl(src.baseUrl, f.repo ?? src.repo, src.revision ?? 'main', f.path));
  if (await allCached(urls).catch(() => false)) return { kind: 'cached' };
  try {
    for (const url of urls) {
      const res = await fetchWithDeadline(url, { method: 'HEAD' }, fetch, { connectMs: 5000 });
      await res.body?.cancel().catch(() => {});
      if (!res.ok) return { kind: 'unavailable', reason: `HTTP ${res.status} for ${url.split('/').pop()}` };
    }
  } catch (e) {
    return { kind: 'unavailable', reason: (e as Error).message };
  }
  return { kind: 'server', bytes: src.files.reduce((n, f) => n + (f.size ?? 0), 0) };
}

export function modelApi(s: WorkerState) {
  return {
    /** Load a model with byte progress; Hub files are cached in the Cache Storage. Replaces any loaded model. */
    loadModel(source: ModelSource, onProgress?: (p: LoadProgress) => void, options?: LoadOptions): Promise<ModelInfo> {
      return exclusive(s, async () => {
        assertNoRun(s, 'load a model');
        return loadModelFrom(s, source, onProgress, options);
      });
    },

    async cacheInfo(): Promise<{ files: number; bytes: number }> {
      return cachedModelFiles();
    },

    async clearCache(): Promise<void> {
      await clearModelCache();
    },

    /** Cached (loads offline), on its server (a HEAD per file, 5 s each), or not reachable, for each source. */
    /** For catalog cards: at which frozen_dtype a model of this size fits the backend in use (before download). */
    storageFits(models: { params: number; memoryBytes: number }[]): Promise<StorageFit[][] | null> {
      // never starts a backend itself (the page's init chooses it): null until one is running
      return exclusive(s, async () => {
        if (!s.backend) return null;
        const limits = memoryLimits(s);
        return models.map((m) => storageFits(m.params, m.memoryBytes, limits));
      });
    },

    async modelAvailability(sources: ModelSource[]): Promise<ModelAvailability[]> {
      return Promise.all(sources.map(availability));
    },
  };
}
