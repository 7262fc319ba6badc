/**
 * The engine's Web Worker: TensorFlow.js runs here, off the UI thread; the page talks to it through Comlink
 * (types in ./api.ts). This entry builds the worker's one state object (./state.ts) and exposes the API assembled
 * from its parts, each a function of that state: control flags, backend, model, dataset, training, stored runs,
 * playground and adapter. Calls that touch tensors run one at a time (a queue); pause/stop/stopGenerate act at once.
 * Errors reject the call with a message for people; an error outside any call is posted as 'webtune:fatal'.
 */
import * as Comlink from 'comlink';
import { setWasmPrefix } from '../engine/backend';
import { adapterApi } from './adapter';
import { runExportApi } from './run-export';
import { backendApi } from './backend';
import { datasetApi } from './dataset';
import { startHeartbeat } from './heartbeat';
import { modelApi } from './model';
import { playgroundApi } from './playground';
import { controlApi, createState } from './state';
import { storedRunsApi } from './stored-runs';
import { trainingApi } from './training';

import type { EngineApi } from './api';

export type { BackendProbeReport, WebGpuAdapterReport } from './api';

// The build copies the tfjs wasm binaries here and the dev server serves them (tools/vite-plugins.ts).
setWasmPrefix(`${import.meta.env.BASE_URL}tfjs-wasm/`);

self.addEventListener('unhandledrejection', (ev) => {
  const r = (ev as PromiseRejectionEvent).reason;
  self.postMessage({ type: 'webtune:fatal', message: r instanceof Error ? r.message : String(r) });
});

const state = createState(startHeartbeat());

// The assembled parts must implement the page's interface exactly (checked here at compile time).
const api: EngineApi = {
  ...controlApi(state),
  ...backendApi(state),
  ...modelApi(state),
  ...datasetApi(state),
  ...trainingApi(state),
  ...storedRunsApi(state),
  ...playgroundApi(state),
  ...adapterApi(state),
  ...runExportApi(state),
};

Comlink.expose(api);
