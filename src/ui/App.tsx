/**
 * The page: Model → Data → Configure → Train → Watch → Compare → Export. All tensor work happens in the
 * engine worker; this thread keeps the state, renders, and coalesces the worker's events per frame.
 */
import { useCallback, useEffect, useMemo, useRef, useState } from 'react';
import { localMirror, savedBaseUrl } from './catalog';
import { CompareSection, outputInfo, type Output } from './CompareSection';
import { ConfigureSection } from './ConfigureSection';
import { saveFile } from './controls';
import { DataSection, DEMO_DATASET, type DatasetState } from './DataSection';
import { Comlink, getEngine, guard, noteStepMs, onEngineCrash, raise, restartEngine } from './engine';
import { ExportSection } from './ExportSection';
import type { Loadable, StatusMessage } from './loadable';
import { errorMessage, formatBytes } from './format';
import { MetricsStore, type MetricColumns } from './metrics-store';
import { currentModel, ModelSection, type ModelState } from './ModelSection';
import { DEFAULT_SETTINGS, initialSettings, presetsFor } from './presets';
import { RunsSection, type RunsState } from './RunsSection';
import { TrainSection, type SaveView, type TrainView } from './TrainSection';
import { WatchSection } from './WatchSection';
import type {
  AdapterInfo,
  BackendChoice,
  BackendProbeReport,
  BackendStatus,
  DatasetInput,
  Estimate,
  EvalReport,
  ExportedFile,
  LoadProgress,
  ModelSource,
  RunOptions,
  SamplingOptions,
  StoredRun,
  TrainEvent,
  TrainOutcome,
  FinetuneConfig,
} from '../worker/api';

declare global {
  interface Window {
    /** Hooks for tests and the console: the engine worker, and the last backend check's full report. */
    webtune: { engine: typeof getEngine; lastProbe?: BackendProbeReport; metrics?: () => MetricColumns };
  }
}

type EstimateState = Loadable<Estimate>;
type EvalState = Loadable<EvalReport, { done: number; total: number }>;
type ProbeState = Loadable<BackendProbeReport>;

const IDLE_OUT: Output = { text: '', state: 'idle' };

/** The settings that change how the data is read: the dataset report is made again when they change. */
function dataKeyOf(s: FinetuneConfig): string {
  return JSON.stringify([s.template, s.max_length, s.eos_token, s.val_size, s.test_size, s.train_on_inputs, s.seed]);
}

/** What the last engine crash or hang interrupted, shown above the restarted app. */
interface CrashNotice {
  message: string;
  /** The stored run that was training, if any. */
  runId: string | null;
}

/**
 * The page: a crashed or hung engine is reported here, and the app below starts over with a fresh worker (its
 * runs are in the browser's storage, so an interrupted one can be resumed).
 */
export function Root() {
  const [generation, setGeneration] = useState(0);
  const [notice, setNotice] = useState<CrashNotice | null>(null);
  const onCrash = useCallback((n: CrashNotice) => {
    restartEngine();
    setNotice(n);
    setGeneration((g) => g + 1);
  }, []);
  return <App key={generation} onCrash={onCrash} notice={notice} onDismissNotice={() => setNotice(null)} />;
}

export function App({
  onCrash,
  notice,
  onDismissNotice,
}: {
  onCrash: (n: CrashNotice) => void;
  notice: CrashNotice | null;
  onDismissNotice: () => void;
}) {
  const engine = getEngine();
  const store = useMemo(() => new MetricsStore(), []);

  const [backend, setBackend] = useState<BackendStatus | null>(null);
  const [backendBusy, setBackendBusy] = useState(true);
  const [backendError, setBackendError] = useState<string | null>(null);
  const [choice, setChoice] = useState<BackendChoice>('auto');
  const [probe, setProbe] = useState<ProbeState>({ kind: 'none' });

  const [baseUrl, setBaseUrl] = useState(savedBaseUrl);
  const [model, setModel] = useState<ModelState>({ kind: 'none' });
  const [catalogId, setCatalogId] = useState<string | null>(null);
  const [cache, setCache] = useState<{ files: number; bytes: number } | null>(null);

  const [dataset, setDataset] = useState<DatasetState>({ kind: 'none' });
  const [dataInput, setDataInput] = useState<{ files: DatasetInput['files']; name: string } | null>(null);

  const [settings, setSettings] = useState<FinetuneConfig>(DEFAULT_SETTINGS);
  const [runOptions, setRunOptions] = useState<RunOptions>({ samplePrompts: 3, sampleMaxNewTokens: 24, saveSteps: 20 });
  const [estimate, setEstimate] = useState<EstimateState>({ kind: 'none' });
  const [train, setTrain] = useState<TrainView>({ state: 'idle', totalSteps: 0, startedAt: null });
  const [save, setSave] = useState<SaveView | null>(null);
  const [runs, setRuns] = useState<RunsState>({ kind: 'loading' });
  const [runsMsg, setRunsMsg] = useState<StatusMessage | null>(null);
  const [activeRunId, setActiveRunId] = useState<string | null>(null);
  const activeRunRef = useRef<string | null>(null);
  activeRunRef.current = activeRunId;
  const [adapter, setAdapter] = useState<AdapterInfo | null>(null);

  const [sampling, setSampling] = useState<SamplingOptions>({
    maxNewTokens: 32,
    temperature: 0,
    topK: 0,
    topP: 1,
    seed: 0,
  });
  const [outputs, setOutputs] = useState<{ base: Output; tuned: Output }>({ base: IDLE_OUT, tuned: IDLE_OUT });
  const [generating, setGenerating] = useState(false);
  const [evalState, setEvalState] = useState<EvalState>({ kind: 'none' });
  const [evalCount, setEvalCount] = useState(8);
  const [exportMsg, setExportMsg] = useState<StatusMessage | null>(null);
  const [exporting, setExporting] = useState(false);

  const modelInfo = model.kind === 'loading' ? null : currentModel(model);
  const datasetInfo = dataset.kind === 'ready' ? dataset.value : null;
  const training = train.state === 'running';
  const active = training || train.state === 'paused';
  const modelBusy = model.kind === 'loading';

  useEffect(() => onEngineCrash((e) => onCrash({ message: e.message, runId: activeRunRef.current })), [onCrash]);
  useEffect(() => {
    window.webtune.metrics = () => store.cols;
  }, [store]);

  const refreshRuns = useCallback(() => {
    guard(engine.listRuns()).then(
      (report) => setRuns({ kind: 'ready', value: report }),
      (e) => setRuns({ kind: 'error', message: errorMessage(e) }),
    );
  }, [engine]);
  useEffect(() => {
    refreshRuns();
  }, [refreshRuns]);

  const refreshCache = useCallback(() => {
    guard(engine.cacheInfo()).then(setCache, () => setCache(null));
  }, [engine]);

  // Detect and initialise the backend once.
  useEffect(() => {
    let live = true;
    guard(engine.init('auto'))
      .then((s) => {
        if (live) {
          setBackend(s);
          setBackendError(null);
        }
      })
      .catch((e) => {
        if (live) setBackendError(errorMessage(e));
      })
      .finally(() => {
        if (live) setBackendBusy(false);
      });
    refreshCache();
    return () => {
      live = false;
    };
  }, [engine, refreshCache]);

  const chooseBackend = async (c: BackendChoice) => {
    setChoice(c);
    setBackendBusy(true);
    setBackendError(null);
    try {
      const s = await guard(engine.setBackend(c));
      setBackend(s);
      setModel((m) =>
        m.kind === 'ready'
          ? { kind: 'ready', value: { ...m.value, backend: s.backend } }
          : m.kind === 'error' && m.previous
            ? { ...m, previous: { ...m.previous, backend: s.backend } }
            : m,
      );
      if (c !== 'auto' && s.backend !== c) {
        setBackendError(
          `${c} is not available here, so ${s.backend} is used: ${s.fallbacks.find((f) => f.backend === c)?.reason ?? 'unknown reason'}`,
        );
      }
    } catch (e) {
      setBackendError(errorMessage(e));
    } finally {
      setBackendBusy(false);
    }
  };

  const runProbe = async () => {
    setProbe({ kind: 'loading' });
    try {
      const report = await guard(engine.probeBackends());
      window.webtune.lastProbe = report;
      setProbe({ kind: 'ready', value: report });
      const s = await guard(engine.backendStatus());
      if (s) setBackend(s);
    } catch (e) {
      setProbe({ kind: 'error', message: errorMessage(e) });
    }
  };

  // ---- data
  const loadDataset = useCallback(
    async (files: DatasetInput['files'], name: string, s: FinetuneConfig) => {
      setDataset({ kind: 'loading', name });
      setDataInput({ files, name });
      setEvalState({ kind: 'none' });
      try {
        setDataset({ kind: 'ready', value: await guard(engine.loadDataset({ files }, s)) });
        return true;
      } catch (e) {
        setDataset({ kind: 'error', name, message: errorMessage(e) });
        return false;
      }
    },
    [engine],
  );

  const loadDemo = async () => {
    const name = DEMO_DATASET.map((f) => f.name).join(' + ');
    setDataset({ kind: 'loading', name });
    try {
      const files = await Promise.all(
        DEMO_DATASET.map(async (f) => {
          const res = await fetch(f.url);
          if (!res.ok) throw new Error(`HTTP ${res.status} fetching ${f.url}`);
          return { name: f.name, data: new Uint8Array(await res.arrayBuffer()), role: f.role };
        }),
      );
      await loadDataset(files, name, settings);
    } catch (e) {
      setDataset({ kind: 'error', name, message: errorMessage(e) });
    }
  };

  // The report shows the data as the run will see it: read it again when a data setting changes.
  const dataKey = dataKeyOf(settings);
  const lastDataKey = useRef(dataKey);
  useEffect(() => {
    if (dataKey === lastDataKey.current) return;
    lastDataKey.current = dataKey;
    if (!dataInput || !modelInfo || active) return;
    const t = setTimeout(() => void loadDataset(dataInput.files, dataInput.name, settings), 400);
    return () => clearTimeout(t);
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [dataKey]);

  // ---- model
  const loadModel = async (
    source: ModelSource,
    id: string | null,
    opts: { keepData?: boolean } = {},
  ): Promise<boolean> => {
    const name = source.kind === 'hub' ? source.name : (source.name ?? 'local model');
    const previous = currentModel(model);
    setModel({ kind: 'loading', name, files: {}, previous });
    setAdapter(null);
    setOutputs({ base: IDLE_OUT, tuned: IDLE_OUT });
    setEvalState({ kind: 'none' });
    const pending: Record<string, LoadProgress> = {};
    let scheduled = false;
    const onProgress = (p: LoadProgress) => {
      pending[p.file] = p;
      if (scheduled) return;
      scheduled = true;
      requestAnimationFrame(() => {
        scheduled = false;
        setModel((m) => (m.kind === 'loading' ? { ...m, files: { ...m.files, ...pending } } : m));
      });
    };
    try {
      const info = await guard(engine.loadModel(source, Comlink.proxy(onProgress)));
      setModel({ kind: 'ready', value: info });
      setCatalogId(id);
      const next = initialSettings(info, id);
      lastDataKey.current = dataKeyOf(next);
      setSettings(next);
      store.reset();
      setTrain({ state: 'idle', totalSteps: 0, startedAt: null });
      if (dataInput && opts.keepData !== false) void loadDataset(dataInput.files, dataInput.name, next);
      else setDataset({ kind: 'none' });
      refreshCache();
      return true;
    } catch (e) {
      let message = errorMessage(e);
      if (source.kind === 'hub' && /HTTP 404/.test(message) && source.baseUrl === localMirror().replace(/\/+$/, '')) {
        message +=
          '\n\nThe local mirror serves only the models in its models folder: set the Hub base URL to huggingface.co to download this one.';
      }
      setModel({ kind: 'error', name, message, previous });
    }
    refreshCache();
    return false;
  };

  // ---- estimate (automatic, without measuring; the button measures a real step)
  const canEstimate = !!modelInfo && !!datasetInfo && !active;
  useEffect(() => {
    if (!canEstimate) {
      if (!active) setEstimate({ kind: 'none' });
      return;
    }
    const t = setTimeout(() => {
      guard(engine.estimate(settings, false)).then(
        (value) => setEstimate({ kind: 'ready', value }),
        (e) => setEstimate({ kind: 'error', message: errorMessage(e) }),
      );
    }, 300);
    return () => clearTimeout(t);
  }, [engine, settings, canEstimate, active, datasetInfo]);

  const measure = async () => {
    setEstimate({ kind: 'loading' });
    try {
      setEstimate({ kind: 'ready', value: await guard(engine.estimate(settings, true)) });
    } catch (e) {
      setEstimate({ kind: 'error', message: errorMessage(e) });
    }
  };

  // ---- training
  const runsRefresh = useRef<ReturnType<typeof setTimeout> | null>(null);
  const onTrainEvent = useMemo(
    () =>
      Comlink.proxy((ev: TrainEvent) => {
        if (ev.type === 'metrics') {
          store.addMetrics(ev);
          noteStepMs(ev.ms_per_step);
        } else if (ev.type === 'eval') store.addEval(ev);
        else if (ev.type === 'samples') store.addSamples(ev);
        else if (ev.type === 'history') {
          store.loadHistory(ev);
          setActiveRunId(ev.runId || null);
        } else if (ev.type === 'checkpoint') {
          setSave(
            ev.ok
              ? { ok: true, step: ev.step, bytes: ev.bytes, store: ev.store, at: Date.now() }
              : { ok: false, step: ev.step, message: ev.message },
          );
          if (ev.runId) setActiveRunId(ev.runId);
          // the list follows the saves, at most every 2 s
          if (!runsRefresh.current)
            runsRefresh.current = setTimeout(() => {
              runsRefresh.current = null;
              refreshRuns();
            }, 2000);
        } else if (ev.type === 'backend') {
          setBackend(ev.status);
          setModel((m) =>
            m.kind === 'ready' ? { kind: 'ready', value: { ...m.value, backend: ev.status.backend } } : m,
          );
          setTrain((t) => ({ ...t, message: ev.message }));
        } else setTrain((t) => ({ ...t, state: ev.state, message: ev.message ?? t.message }));
      }),
    [store, refreshRuns],
  );

  const finishRun = async (p: Promise<TrainOutcome>) => {
    try {
      const out = await guard(p);
      setTrain((t) => ({ ...t, state: out.state, message: out.message, totalSteps: out.totalSteps }));
      if (out.runId) setActiveRunId(out.runId);
    } catch (e) {
      setTrain((t) => ({ ...t, state: 'error', message: errorMessage(e) }));
    }
    guard(engine.adapterInfo()).then(setAdapter, () => undefined);
    refreshRuns();
  };

  const start = async () => {
    store.reset();
    setExportMsg(null);
    setEvalState({ kind: 'none' });
    setSave(null);
    setActiveRunId(null);
    setTrain({
      state: 'running',
      totalSteps: estimate.kind === 'ready' ? estimate.value.memory.max_steps : 0,
      startedAt: Date.now(),
    });
    await finishRun(engine.train(settings, { ...runOptions, catalogId }, onTrainEvent));
  };

  // ---- stored runs
  /** Rebuild a stored run (its backend, Hub model and kept dataset, as far as they can be loaded) and continue it. */
  const resumeStored = async (r: StoredRun, overrides: { learning_rate?: number } = {}) => {
    setRunsMsg(null);
    try {
      const kept = await guard(engine.runSource(r.id));
      if (kept) {
        const { source, dataset: ds } = kept;
        if (backend && backend.backend !== source.backend) await chooseBackend(source.backend);
        const sameModel =
          modelInfo &&
          model.kind === 'ready' &&
          source.model.kind === 'hub' &&
          modelInfo.name === source.modelName &&
          catalogId === source.model.catalogId;
        if (source.model.kind === 'hub' && !sameModel) {
          if (!(await loadModel(source.model.source, source.model.catalogId, { keepData: false })))
            throw new Error(`The model ${source.modelName} could not be loaded (see step 1).`);
        } else if (source.model.kind === 'files' && !modelInfo) {
          throw new Error(
            `Load the model files of this run first (${source.model.files.join(', ')}), then press Resume.`,
          );
        }
        const next = { ...source.settings, ...overrides };
        lastDataKey.current = dataKeyOf(next);
        setSettings(next);
        setRunOptions({ ...runOptions, ...source.runOptions });
        if (ds) {
          if (!(await loadDataset(ds.files, source.dataName, next)))
            throw new Error(`The dataset of this run could not be read again (see step 2).`);
        } else if (!dataInput) {
          throw new Error(`Load the dataset of this run first (${source.dataName}), then press Resume.`);
        } else if (!(await loadDataset(dataInput.files, dataInput.name, next)))
          throw new Error('The dataset could not be read (see step 2).');
      } else if (!modelInfo || !datasetInfo) {
        throw new Error(
          'This run has no record of its model and dataset: load them in steps 1 and 2, then press Resume.',
        );
      }
      setExportMsg(null);
      setEvalState({ kind: 'none' });
      setSave(null);
      setActiveRunId(r.id);
      store.reset();
      setTrain({
        state: 'running',
        totalSteps: r.latest?.max_steps ?? 0,
        startedAt: Date.now(),
        message: `Resuming "${r.name}" from step ${r.latest?.step ?? 0}.`,
      });
      onDismissNotice();
      document.getElementById('train')?.scrollIntoView({ block: 'start' });
      if (overrides.learning_rate !== undefined)
        setSettings((x) => ({ ...x, learning_rate: overrides.learning_rate! }));
      await finishRun(engine.resumeRun(r.id, kept?.source.runOptions ?? runOptions, onTrainEvent, overrides));
    } catch (e) {
      setRunsMsg({ kind: 'error', text: `Cannot resume "${r.name}": ${errorMessage(e)}` });
    }
  };

  const runsAction = async (what: string, fn: () => Promise<string | void>) => {
    setRunsMsg(null);
    try {
      const text = await fn();
      if (text) setRunsMsg({ kind: 'ok', text });
    } catch (e) {
      setRunsMsg({ kind: 'error', text: `${what}: ${errorMessage(e)}` });
    }
    refreshRuns();
  };
  const renameRun = (r: StoredRun, name: string) =>
    runsAction('Rename', async () => {
      await guard(engine.renameRun(r.id, name));
      return `Renamed to "${name}".`;
    });
  const deleteRun = (r: StoredRun) =>
    runsAction('Delete', async () => {
      await guard(engine.deleteRun(r.id));
      return `Deleted "${r.name}".`;
    });
  const exportRun = (r: StoredRun) =>
    runsAction('Export', async () => {
      const f = await guard(engine.exportRun(r.id));
      saveFile(f.name, f.bytes, f.mime);
      return `Saved ${f.name} (${formatBytes(f.bytes.byteLength)}): import it here or in another browser to resume the run.`;
    });
  const importRun = (f: File) =>
    runsAction('Import', async () => {
      const r = await guard(engine.importRun(f.name, new Uint8Array(await f.arrayBuffer())));
      return `Imported "${r.name}" (step ${r.latest?.step ?? 0}).`;
    });
  const pause = () => {
    raise('pause');
    void guard(engine.pause()).catch(() => undefined);
  };
  const resume = async () => {
    setTrain((t) => ({ ...t, state: 'running', message: undefined }));
    await finishRun(engine.resume(onTrainEvent));
  };
  const stop = async () => {
    if (train.state === 'paused') await finishRun(engine.stop());
    else {
      raise('stop');
      void guard(engine.stop()).catch(() => undefined);
    }
  };

  // ---- playground (streamed text is flushed once per frame)
  const genText = useRef({ base: '', tuned: '' });
  const genFlush = useRef(false);
  const generate = async (instruction: string, input: string) => {
    setGenerating(true);
    genText.current = { base: '', tuned: '' };
    const sides: ('base' | 'tuned')[] = adapter ? ['base', 'tuned'] : ['base'];
    setOutputs({
      base: { text: '', state: 'running' },
      tuned: adapter
        ? { text: '', state: 'idle', info: 'waiting for the base model…' }
        : { text: '', state: 'idle', info: 'Train or import an adapter first.' },
    });
    for (const which of sides) {
      setOutputs((o) => ({ ...o, [which]: { text: '', state: 'running' } }));
      const onToken = Comlink.proxy((delta: string) => {
        genText.current[which] += delta;
        if (genFlush.current) return;
        genFlush.current = true;
        requestAnimationFrame(() => {
          genFlush.current = false;
          setOutputs((o) => ({
            base: { ...o.base, text: genText.current.base },
            tuned: { ...o.tuned, text: genText.current.tuned },
          }));
        });
      });
      try {
        const r = await guard(
          engine.generate(
            { ...sampling, instruction, input, which, template: settings.template, eosToken: settings.eos_token },
            onToken,
          ),
        );
        genText.current[which] = r.text;
        setOutputs((o) => ({
          ...o,
          [which]: { text: r.text, state: 'done', info: outputInfo(r.tokens, r.ms, r.finishReason) },
        }));
        if (r.finishReason === 'aborted') break;
      } catch (e) {
        setOutputs((o) => ({ ...o, [which]: { text: genText.current[which], state: 'error', info: errorMessage(e) } }));
        break;
      }
    }
    setGenerating(false);
  };

  const evaluate = async () => {
    setEvalState({ kind: 'loading', done: 0, total: evalCount });
    try {
      const report = await guard(
        engine.evaluate(
          evalCount,
          Comlink.proxy((done: number, total: number) => setEvalState({ kind: 'loading', done, total })),
        ),
      );
      setEvalState({ kind: 'ready', value: report });
    } catch (e) {
      setEvalState({ kind: 'error', message: errorMessage(e) });
    }
  };

  // ---- export / import
  const download = async (what: string, get: () => Promise<ExportedFile[]>) => {
    setExporting(true);
    setExportMsg(null);
    try {
      const files = await guard(get());
      for (const f of files) saveFile(f.name, f.bytes, f.mime);
      setExportMsg({ kind: 'ok', text: `${what}: saved ${files.map((f) => f.name).join(', ')}` });
    } catch (e) {
      setExportMsg({ kind: 'error', text: errorMessage(e) });
    } finally {
      setExporting(false);
    }
  };
  const importAdapter = async (files: File[]) => {
    if (files.length === 0) return;
    setExporting(true);
    setExportMsg(null);
    try {
      const read = await Promise.all(
        files.map(async (f) => ({ name: f.name, bytes: new Uint8Array(await f.arrayBuffer()) })),
      );
      const info = await guard(engine.importAdapter(read));
      setAdapter(info);
      setExportMsg({ kind: 'ok', text: `Imported adapter (${info.origin}); the playground's tuned side uses it now.` });
    } catch (e) {
      setExportMsg({ kind: 'error', text: errorMessage(e) });
    } finally {
      setExporting(false);
    }
  };

  const divergedRun =
    train.state === 'diverged' && save?.ok && runs.kind === 'ready'
      ? (runs.value.runs.find((r) => r.id === activeRunId && r.unfinished) ?? null)
      : null;

  const notReady = !modelInfo
    ? 'Load a model (step 1) and a dataset (step 2) to train.'
    : !datasetInfo
      ? 'Load a dataset (step 2) to train.'
      : '';

  return (
    <>
      <header className="top">
        <div className="top-inner">
          <h1>webtune</h1>
          <p className="tagline">Instruction-tune small language models with LoRA, entirely in your browser.</p>
          <nav aria-label="Steps">
            <ol>
              {['Model', 'Data', 'Configure', 'Train', 'Watch', 'Compare', 'Export'].map((s) => (
                <li key={s}>
                  <a href={`#${s.toLowerCase()}`}>{s}</a>
                </li>
              ))}
            </ol>
          </nav>
        </div>
      </header>
      <main>
        {notice && (
          <div className="error" role="alert" data-testid="engine-crash">
            <strong>The engine stopped.</strong>
            <pre>{notice.message}</pre>
            <p>
              A fresh engine has started: load a model again, or resume{' '}
              {notice.runId ? 'the interrupted run' : 'a saved run'} from <a href="#runs">Saved runs</a> (it continues
              from its last checkpoint).
            </p>
            <button type="button" onClick={onDismissNotice}>
              Dismiss
            </button>
          </div>
        )}
        <UnfinishedBanner
          runs={runs}
          activeRunId={activeRunId}
          busy={active || modelBusy}
          onResume={(r) => void resumeStored(r)}
        />
        <ModelSection
          state={model}
          busy={modelBusy || active}
          baseUrl={baseUrl}
          onBaseUrl={setBaseUrl}
          onLoad={loadModel}
          cache={cache}
          onClearCache={() => {
            void guard(engine.clearCache()).then(refreshCache);
          }}
        />
        <DataSection
          state={dataset}
          modelReady={!!modelInfo}
          busy={dataset.kind === 'loading' || active}
          settings={settings}
          onSettings={setSettings}
          onLoad={(files, name) => void loadDataset(files, name, settings)}
          onDemo={loadDemo}
        />
        <ConfigureSection
          model={modelInfo}
          settings={settings}
          onSettings={setSettings}
          presets={presetsFor(modelInfo, catalogId)}
          runOptions={runOptions}
          onRunOptions={setRunOptions}
          disabled={!modelInfo || active}
          estimate={estimate}
          onMeasure={measure}
          canMeasure={canEstimate && estimate.kind !== 'loading'}
        />
        <TrainSection
          backend={backend}
          backendBusy={backendBusy}
          backendError={backendError}
          choice={choice}
          onChoice={(c) => void chooseBackend(c)}
          ready={!!modelInfo && !!datasetInfo && !generating && evalState.kind !== 'loading'}
          notReadyReason={notReady}
          train={train}
          store={store}
          onStart={start}
          onPause={pause}
          onResume={resume}
          onStop={stop}
          probe={probe}
          onProbe={runProbe}
          save={save}
          learningRate={settings.learning_rate}
          onResumeLower={divergedRun ? (lr) => void resumeStored(divergedRun, { learning_rate: lr }) : null}
        />
        <RunsSection
          state={runs}
          activeRunId={activeRunId}
          busy={active || modelBusy || generating}
          highlight={notice?.runId ?? null}
          message={runsMsg}
          onResume={(r) => void resumeStored(r)}
          onRename={renameRun}
          onDelete={deleteRun}
          onExport={exportRun}
          onImport={importRun}
        />
        <WatchSection store={store} />
        <CompareSection
          modelReady={!!modelInfo}
          hasAdapter={!!adapter}
          locked={training}
          suggestions={datasetInfo?.prompts ?? []}
          sampling={sampling}
          onSampling={setSampling}
          outputs={outputs}
          generating={generating}
          onGenerate={generate}
          onStopGenerate={() => {
            raise('abortGeneration');
            void guard(engine.stopGenerate()).catch(() => undefined);
          }}
          evalState={evalState}
          evalCount={evalCount}
          onEvalCount={setEvalCount}
          onEvaluate={evaluate}
          canEvaluate={!!datasetInfo && datasetInfo.prompts.length > 0 && !training && !generating}
        />
        <ExportSection
          adapter={adapter}
          modelReady={!!modelInfo}
          busy={exporting || training}
          runActive={active}
          hasMetrics={store.cols.step.length > 0 || train.state !== 'idle'}
          onExportAdapter={() => void download('Adapter', () => engine.exportAdapter())}
          onExportMerged={() => void download('Merged model', () => engine.exportMerged())}
          onExportMetrics={(f) => void download('Metrics', async () => [await engine.exportMetrics(f)])}
          onImport={importAdapter}
          message={exportMsg}
        />
      </main>
      <footer className="foot">
        <p>Models and data never leave this browser. Backend: {backend ? backend.backend : '…'}.</p>
      </footer>
    </>
  );
}

/** After a reload or a crash: the unfinished runs, one click from resuming. */
function UnfinishedBanner({
  runs,
  activeRunId,
  busy,
  onResume,
}: {
  runs: RunsState;
  activeRunId: string | null;
  busy: boolean;
  onResume: (r: StoredRun) => void;
}) {
  const [hidden, setHidden] = useState(false);
  if (hidden || runs.kind !== 'ready') return null;
  const open = runs.value.runs.filter((r) => r.unfinished && r.id !== activeRunId);
  if (open.length === 0) return null;
  const r = open[0];
  return (
    <div className="banner" role="region" aria-label="Unfinished runs" data-testid="unfinished-banner">
      <p>
        <strong>
          {open.length === 1
            ? 'An unfinished run is saved in this browser'
            : `${open.length} unfinished runs are saved in this browser`}
          :
        </strong>{' '}
        “{r.name}”, step {r.latest?.step} of {r.latest?.max_steps}.
      </p>
      <div className="row buttons">
        <button
          type="button"
          className="primary"
          disabled={busy}
          onClick={() => onResume(r)}
          aria-label={`Resume ${r.name}`}
        >
          Resume
        </button>
        <a href="#runs">All saved runs</a>
        <button type="button" onClick={() => setHidden(true)}>
          Not now
        </button>
      </div>
    </div>
  );
}
