/**
 * The page: Model → Data → Configure → Train → Watch → Compare → Export. All tensor work happens in the
 * engine worker; this thread keeps the state, renders, and coalesces the worker's events per frame. Each concern
 * keeps its state in a hook (./hooks); this component connects them.
 */
import { useCallback, useEffect, useState } from 'react';
import { CompareSection } from './CompareSection';
import { ConfigureSection } from './ConfigureSection';
import { FieldErrorsContext } from './controls';
import { DataSection } from './DataSection';
import { getEngine, guard, onEngineCrash, restartEngine } from './engine';
import { ExportSection } from './ExportSection';
import { errorMessage } from './format';
import { useBackend } from './hooks/useBackend';
import { useDataset } from './hooks/useDataset';
import { useEstimate } from './hooks/useEstimate';
import { nextSteps, NextStepsContext, showStep } from './guide';
import { useExport } from './hooks/useExport';
import { useModel } from './hooks/useModel';
import { usePlayground } from './hooks/usePlayground';
import { useStoredRuns } from './hooks/useStoredRuns';
import { useTraining } from './hooks/useTraining';
import type { Loadable } from './loadable';
import type { MetricColumns } from './metrics-store';
import { ModelSection } from './ModelSection';
import { DEFAULT_SETTINGS, initialSettings, presetsFor } from './presets';
import { RunsSection } from './RunsSection';
import { TrainSection } from './TrainSection';
import { WatchSection } from './WatchSection';
import type {
  AdapterInfo,
  BackendProbeReport,
  BackendStatus,
  FinetuneConfig,
  FrozenDtype,
  ModelSource,
  RunOptions,
  RunsReport,
  StoredRun,
} from '../worker/api';

declare global {
  interface Window {
    /** Hooks for tests and the console: the engine worker, and the last backend check's full report. */
    webtune: { engine: typeof getEngine; lastProbe?: BackendProbeReport; metrics?: () => MetricColumns };
  }
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
  const [adapter, setAdapter] = useState<AdapterInfo | null>(null);
  const [settings, setSettings] = useState<FinetuneConfig>(DEFAULT_SETTINGS);
  const [runOptions, setRunOptions] = useState<RunOptions>({ samplePrompts: 3, sampleMaxNewTokens: 24, saveSteps: 20 });
  /** Number fields whose text is not a valid value (label → why): training cannot start with them. */
  const [fieldErrors, setFieldErrors] = useState<ReadonlyMap<string, string>>(new Map());
  const reportFieldError = useCallback((label: string, error: string | null) => {
    setFieldErrors((m) => {
      if ((m.get(label) ?? null) === error) return m;
      const next = new Map(m);
      if (error === null) next.delete(label);
      else next.set(label, error);
      return next;
    });
  }, []);

  const model = useModel(engine);
  const backend = useBackend(engine, model.movedTo);
  const runs = useStoredRuns(engine);
  const playground = usePlayground(engine);
  const { setStatus: setBackendStatus } = backend;
  const { movedTo, refreshFits } = model;
  const backendInUse = backend.status?.backend ?? null;
  useEffect(() => {
    if (backendInUse) refreshFits();
  }, [backendInUse, refreshFits]);
  const onBackend = useCallback(
    (s: BackendStatus) => {
      setBackendStatus(s);
      movedTo(s.backend);
    },
    [setBackendStatus, movedTo],
  );
  const training = useTraining(engine, {
    onBackend,
    onSaved: runs.refreshSoon,
    onEnded: () => {
      guard(engine.adapterInfo()).then(setAdapter, () => undefined);
      runs.refresh();
    },
  });
  const dataset = useDataset(engine, settings, model.info, training.active, playground.clearEval);
  const canEstimate = !!model.info && !!dataset.info && !training.active;
  const { estimate, measure } = useEstimate(engine, settings, canEstimate, training.active, dataset.info);
  const exporter = useExport(engine, setAdapter);

  const modelInfo = model.info;
  const datasetInfo = dataset.info;
  const active = training.active;

  const activeRunId = training.activeRunId;
  useEffect(() => onEngineCrash((e) => onCrash({ message: e.message, runId: activeRunId })), [onCrash, activeRunId]);
  const { store } = training;
  useEffect(() => {
    window.webtune.metrics = () => store.cols;
  }, [store]);

  /** Load a model and start over with its settings (the dataset is read again for it unless keepData is false). */
  const loadModel = async (
    source: ModelSource,
    id: string | null,
    opts: { keepData?: boolean; frozenDtype?: FrozenDtype } = {},
  ) => {
    setAdapter(null);
    playground.reset();
    const info = await model.load(source, id, { frozenDtype: opts.frozenDtype });
    if (!info) return false;
    // the run trains on the weights as they were loaded
    const next = { ...initialSettings(info, id), frozen_dtype: info.frozenDtype };
    dataset.settle(next);
    setSettings(next);
    training.reset();
    if (dataset.input && opts.keepData !== false) void dataset.load(dataset.input.files, dataset.input.name, next);
    else dataset.clear();
    return true;
  };

  const start = async () => {
    exporter.clearMessage();
    playground.clearEval();
    const events = training.begin(
      null,
      estimate.kind === 'ready' ? estimate.value.memory.max_steps : 0,
      backend.status?.backend ?? '',
    );
    const out = await training.finish(engine.train(settings, { ...runOptions, catalogId: model.catalogId }, events));
    if (out.state === 'done') showStep('compare');
  };

  /**
   * Load what a stored run was trained on (its backend, Hub model and kept dataset, as far as they can be loaded) and
   * its settings, before resuming or opening it; `verb` names the button for what must be loaded by hand first.
   */
  const prepareStored = async (r: StoredRun, verb: string, overrides: { learning_rate?: number } = {}) => {
    const kept = await guard(engine.runSource(r.id));
    if (kept) {
      const { source, dataset: ds } = kept;
      // the run's frozen weights as it stored them (a float32 model can still be lowered to them)
      const runDtype = source.settings.frozen_dtype ?? 'float32';
      if (backend.status && backend.status.backend !== source.backend) await backend.choose(source.backend);
      const sameModel =
        modelInfo &&
        model.state.kind === 'ready' &&
        source.model.kind === 'hub' &&
        modelInfo.name === source.modelName &&
        model.catalogId === source.model.catalogId &&
        [runDtype, 'float32'].includes(modelInfo.frozenDtype);
      if (source.model.kind === 'hub' && !sameModel) {
        const opts = { keepData: false, frozenDtype: runDtype };
        if (!(await loadModel(source.model.source, source.model.catalogId, opts)))
          throw new Error(`The model ${source.modelName} could not be loaded (see step 1).`);
      } else if (source.model.kind === 'files' && !modelInfo) {
        throw new Error(
          `Load the model files of this run first (${source.model.files.join(', ')}), then press ${verb}.`,
        );
      }
      const next = { ...source.settings, ...overrides };
      dataset.settle(next);
      setSettings(next);
      setRunOptions({ ...runOptions, ...source.runOptions });
      if (ds) {
        if (!(await dataset.load(ds.files, source.dataName, next)))
          throw new Error(`The dataset of this run could not be read again (see step 2).`);
      } else if (!dataset.input) {
        throw new Error(`Load the dataset of this run first (${source.dataName}), then press ${verb}.`);
      } else if (!(await dataset.load(dataset.input.files, dataset.input.name, next)))
        throw new Error('The dataset could not be read (see step 2).');
    } else if (!modelInfo || !datasetInfo) {
      throw new Error(
        `This run has no record of its model and dataset: load them in steps 1 and 2, then press ${verb}.`,
      );
    }
    exporter.clearMessage();
    playground.clearEval();
    onDismissNotice();
    return kept;
  };

  /** Rebuild a stored run and continue it. */
  const resumeStored = async (r: StoredRun, overrides: { learning_rate?: number } = {}) => {
    runs.setMessage(null);
    try {
      const kept = await prepareStored(r, 'Resume', overrides);
      const events = training.begin(
        r.id,
        r.latest?.max_steps ?? 0,
        backend.status?.backend ?? '',
        `Resuming "${r.name}" from step ${r.latest?.step ?? 0}.`,
      );
      showStep('train');
      if (overrides.learning_rate !== undefined)
        setSettings((x) => ({ ...x, learning_rate: overrides.learning_rate! }));
      await training.finish(engine.resumeRun(r.id, kept?.source.runOptions ?? runOptions, events, overrides));
    } catch (e) {
      runs.setMessage({ kind: 'error', text: `Cannot resume "${r.name}": ${errorMessage(e)}` });
    }
  };

  /** Rebuild a finished stored run with its adapter on the model (no training), for Compare and Export. */
  const openStored = async (r: StoredRun) => {
    runs.setMessage(null);
    try {
      await prepareStored(r, 'Open');
      const events = training.begin(
        r.id,
        r.latest?.max_steps ?? 0,
        backend.status?.backend ?? '',
        `Opening "${r.name}" (its adapter after step ${r.latest?.step ?? 0}).`,
      );
      const out = await training.finish(engine.openRun(r.id, events));
      if (out.state !== 'done') throw new Error(out.message ?? out.state);
      runs.setMessage({ kind: 'ok', text: `Opened "${r.name}": compare it with the base model and export it below.` });
      showStep('compare');
    } catch (e) {
      runs.setMessage({ kind: 'error', text: `Cannot open "${r.name}": ${errorMessage(e)}` });
    }
  };

  const divergedRun =
    training.view.state === 'diverged' && training.save?.ok && runs.state.kind === 'ready'
      ? (runs.state.value.runs.find((r) => r.id === activeRunId && r.unfinished) ?? null)
      : null;

  const invalid = [...fieldErrors].map(([label, error]) => `${label} ${error}`);
  const notReady = !modelInfo
    ? 'Load a model (step 1) and a dataset (step 2) to train.'
    : !datasetInfo
      ? 'Load a dataset (step 2) to train.'
      : invalid.length
        ? `Fix these settings first: ${invalid.join('; ')}.`
        : '';

  const next = nextSteps({
    modelName: modelInfo?.name ?? null,
    dataReady: !!datasetInfo,
    trainState: training.view.state,
    hasAdapter: !!adapter,
    evaluated: playground.evalState.kind === 'ready',
  });

  return (
    <FieldErrorsContext.Provider value={reportFieldError}>
      <NextStepsContext.Provider value={next}>
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
            runs={runs.state}
            activeRunId={activeRunId}
            busy={active || model.busy}
            onResume={(r) => void resumeStored(r)}
          />
          <ModelSection
            state={model.state}
            busy={model.busy || active}
            baseUrl={model.baseUrl}
            onBaseUrl={model.setBaseUrl}
            availability={model.availability}
            fits={model.fits}
            onLoad={(source, id, opts) =>
              void loadModel(source, id, opts).then((ok) => ok && showStep(dataset.input ? 'train' : 'data'))
            }
            cache={model.cache}
            onClearCache={model.clearCache}
          />
          <DataSection
            state={dataset.state}
            modelReady={!!modelInfo}
            busy={dataset.state.kind === 'loading' || active}
            settings={settings}
            onSettings={setSettings}
            onLoad={(files, name) => void dataset.load(files, name, settings).then((ok) => ok && showStep('train'))}
            onDemo={() =>
              void dataset.loadDemo().then((info) => {
                if (!info) return;
                // the demo's held-out file is small: its evaluation scores all of it
                playground.setEvalCount(Math.max(1, info.prompts.length));
                showStep('train');
              })
            }
          />
          <ConfigureSection
            model={modelInfo}
            settings={settings}
            onSettings={setSettings}
            presets={presetsFor(modelInfo, model.catalogId)}
            runOptions={runOptions}
            onRunOptions={setRunOptions}
            disabled={!modelInfo || active}
            estimate={estimate}
            measuredStep={training.store.medianStepMs()}
            onMeasure={measure}
            canMeasure={canEstimate && estimate.kind !== 'loading'}
          />
          <TrainSection
            backend={backend.status}
            backendBusy={backend.busy}
            backendError={backend.error}
            choice={backend.choice}
            onChoice={(c) => void backend.choose(c)}
            ready={
              !!modelInfo && !!datasetInfo && invalid.length === 0 && !playground.generating && !playground.evaluating
            }
            notReadyReason={notReady}
            train={training.view}
            store={store}
            onStart={start}
            onPause={training.pause}
            onResume={training.resume}
            onStop={training.stop}
            probe={backend.probe}
            onProbe={backend.runProbe}
            save={training.save}
            learningRate={settings.learning_rate}
            onResumeLower={divergedRun ? (lr) => void resumeStored(divergedRun, { learning_rate: lr }) : null}
          />
          <RunsSection
            state={runs.state}
            activeRunId={activeRunId}
            busy={active || model.busy || playground.generating}
            highlight={notice?.runId ?? null}
            message={runs.message}
            onResume={(r) => void resumeStored(r)}
            onOpen={(r) => void openStored(r)}
            onRename={runs.rename}
            onDelete={runs.remove}
            onExport={runs.exportRun}
            onImport={runs.importRun}
          />
          <WatchSection store={store} />
          <CompareSection
            modelReady={!!modelInfo}
            hasAdapter={!!adapter}
            locked={training.running}
            suggestions={datasetInfo?.prompts ?? []}
            sampling={playground.sampling}
            onSampling={playground.setSampling}
            outputs={playground.outputs}
            generating={playground.generating}
            onGenerate={(instruction, input) =>
              void playground.generate(instruction, input, { hasAdapter: !!adapter, settings })
            }
            onStopGenerate={playground.stopGenerate}
            evalState={playground.evalState}
            evalCount={playground.evalCount}
            onEvalCount={playground.setEvalCount}
            onEvaluate={playground.evaluate}
            canEvaluate={!!datasetInfo && datasetInfo.prompts.length > 0 && !training.running && !playground.generating}
          />
          <ExportSection
            adapter={adapter}
            modelReady={!!modelInfo}
            busy={exporter.busy || training.running}
            runActive={active}
            hasMetrics={store.cols.step.length > 0 || training.view.state !== 'idle'}
            onExportAdapter={exporter.exportAdapter}
            onExportMerged={exporter.exportMerged}
            onExportMetrics={exporter.exportMetrics}
            hasData={!!datasetInfo}
            onExportRun={() => exporter.exportRunBundle(settings)}
            onImport={exporter.importAdapter}
            message={exporter.message}
          />
        </main>
        <footer className="foot">
          <p>Models and data never leave this browser. Backend: {backend.status ? backend.status.backend : '…'}.</p>
        </footer>
      </NextStepsContext.Provider>
    </FieldErrorsContext.Provider>
  );
}

/** After a reload or a crash: the unfinished runs, one click from resuming. */
function UnfinishedBanner({
  runs,
  activeRunId,
  busy,
  onResume,
}: {
  runs: Loadable<RunsReport>;
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
