import { useState } from 'react';
import type { BackendProbeReport } from '../worker/engine.worker';
import { getEngine } from './engine';

declare global {
  interface Window {
    /** Hooks for tests and the console: the engine worker, and the last backend check's full report. */
    webtune: { engine: typeof getEngine; lastProbe?: BackendProbeReport };
  }
}

type State = { kind: 'idle' } | { kind: 'running' } | { kind: 'done'; report: BackendProbeReport } | { kind: 'failed'; error: string };

export function App() {
  const [state, setState] = useState<State>({ kind: 'idle' });

  async function checkBackends() {
    setState({ kind: 'running' });
    try {
      const report = await getEngine().probeBackends();
      window.webtune.lastProbe = report;
      setState({ kind: 'done', report });
    } catch (e) {
      setState({ kind: 'failed', error: e instanceof Error ? e.message : String(e) });
    }
  }

  return (
    <main>
      <h1>webtune</h1>
      <p>
        Instruction-tune small pretrained language models with LoRA, entirely in your browser:
        TensorFlow.js on WebGPU, WebGL, WebAssembly or plain JavaScript, in a Web Worker.
      </p>
      <button type="button" onClick={checkBackends} disabled={state.kind === 'running'}>
        Backend check
      </button>
      {state.kind === 'running' && <p role="status">Checking backends…</p>}
      {state.kind === 'failed' && <p role="alert" data-testid="probe-error">Backend check failed: {state.error}</p>}
      {state.kind === 'done' && <ProbeTable report={state.report} />}
    </main>
  );
}

function ProbeTable({ report }: { report: BackendProbeReport }) {
  const gpu = report.webgpuAdapter;
  return (
    <section data-testid="probe-result">
      <p>
        WebGPU adapter:{' '}
        {gpu.available ? `${gpu.info?.vendor ?? '?'} / ${gpu.info?.architecture ?? '?'}` : `none (${gpu.reason})`}
        {' · '}cross-origin isolated: {String(report.crossOriginIsolated)}
      </p>
      <table>
        <thead>
          <tr><th>backend</th><th>status</th><th>gradients ok</th><th>failing</th></tr>
        </thead>
        <tbody>
          {report.backends.map(b => {
            const failing = b.grads.filter(g => g.status !== 'ok');
            return (
              <tr key={b.backend}>
                <td>{b.backend}</td>
                <td>{b.available ? 'available' : `unavailable: ${b.reason}`}</td>
                <td>{b.available ? `${b.grads.length - failing.length} / ${b.grads.length}` : '–'}</td>
                <td>{failing.map(g => g.name).join(', ')}</td>
              </tr>
            );
          })}
        </tbody>
      </table>
    </section>
  );
}
