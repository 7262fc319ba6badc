/** The engine's backend: detected once at start, switched on request, checked on request. */
import { useEffect, useState } from 'react';
import { guard, type Engine } from '../engine';
import { errorMessage } from '../format';
import type { Loadable } from '../loadable';
import type { BackendChoice, BackendName, BackendProbeReport, BackendStatus } from '../../worker/api';

const CHOICE_KEY = 'webtune.backend';
const CHOICES: readonly BackendChoice[] = ['auto', 'webgpu', 'webgl', 'wasm', 'cpu'];

/** The backend the user chose last time (remembered in this browser), else Automatic. */
function savedChoice(): BackendChoice {
  try {
    const v = localStorage.getItem(CHOICE_KEY);
    return CHOICES.includes(v as BackendChoice) ? (v as BackendChoice) : 'auto';
  } catch {
    return 'auto'; // storage blocked
  }
}

function saveChoice(c: BackendChoice): void {
  try {
    localStorage.setItem(CHOICE_KEY, c);
  } catch {
    // storage blocked: the choice holds for this visit only
  }
}

/**
 * @param onMoved told when a switch moved the loaded model to another backend (the page shows where it lives).
 */
export function useBackend(engine: Engine, onMoved: (backend: BackendName) => void) {
  const [status, setStatus] = useState<BackendStatus | null>(null);
  const [busy, setBusy] = useState(true);
  const [error, setError] = useState<string | null>(null);
  const [choice, setChoice] = useState<BackendChoice>(savedChoice);
  const [probe, setProbe] = useState<Loadable<BackendProbeReport>>({ kind: 'none' });

  // Detect and initialise the backend once.
  useEffect(() => {
    let live = true;
    guard(engine.init(savedChoice()))
      .then((s) => {
        if (live) {
          setStatus(s);
          setError(null);
        }
      })
      .catch((e) => {
        if (live) setError(errorMessage(e));
      })
      .finally(() => {
        if (live) setBusy(false);
      });
    return () => {
      live = false;
    };
  }, [engine]);

  const choose = async (c: BackendChoice) => {
    setChoice(c);
    saveChoice(c);
    setBusy(true);
    setError(null);
    try {
      const s = await guard(engine.setBackend(c));
      setStatus(s);
      onMoved(s.backend);
      if (c !== 'auto' && s.backend !== c) {
        setError(
          `${c} is not available here, so ${s.backend} is used: ${s.fallbacks.find((f) => f.backend === c)?.reason ?? 'unknown reason'}`,
        );
      }
    } catch (e) {
      setError(errorMessage(e));
    } finally {
      setBusy(false);
    }
  };

  const runProbe = async () => {
    setProbe({ kind: 'loading' });
    try {
      const report = await guard(engine.probeBackends());
      window.webtune.lastProbe = report;
      setProbe({ kind: 'ready', value: report });
      const s = await guard(engine.backendStatus());
      if (s) setStatus(s);
    } catch (e) {
      setProbe({ kind: 'error', message: errorMessage(e) });
    }
  };

  return { status, setStatus, busy, error, choice, probe, choose, runProbe };
}
