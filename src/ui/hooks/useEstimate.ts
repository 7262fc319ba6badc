/** The estimate of the run the settings make, for the loaded model and dataset (automatic; measured on request). */
import { useEffect, useState } from 'react';
import { guard, type Engine } from '../engine';
import { errorMessage } from '../format';
import type { Loadable } from '../loadable';
import type { Estimate, FinetuneConfig } from '../../worker/api';

/**
 * @param canEstimate a model and a dataset are loaded and no run holds the engine.
 * @param active a run holds the engine (the last estimate stays shown).
 * @param dataVersion the dataset's report: a new one is estimated again.
 */
export function useEstimate(
  engine: Engine,
  settings: FinetuneConfig,
  canEstimate: boolean,
  active: boolean,
  dataVersion: unknown,
) {
  const [estimate, setEstimate] = useState<Loadable<Estimate>>({ kind: 'none' });

  // nothing to estimate (no model or dataset): no estimate (while a run holds the engine, the last one stays)
  if (!canEstimate && !active && estimate.kind !== 'none') setEstimate({ kind: 'none' });

  // automatic, without measuring (the button measures a real step)
  useEffect(() => {
    if (!canEstimate) return;
    const t = setTimeout(() => {
      guard(engine.estimate(settings, false)).then(
        (value) => setEstimate({ kind: 'ready', value }),
        (e) => setEstimate({ kind: 'error', message: errorMessage(e) }),
      );
    }, 300);
    return () => clearTimeout(t);
  }, [engine, settings, canEstimate, dataVersion]);

  const measure = async () => {
    setEstimate({ kind: 'loading' });
    try {
      setEstimate({ kind: 'ready', value: await guard(engine.estimate(settings, true)) });
    } catch (e) {
      setEstimate({ kind: 'error', message: errorMessage(e) });
    }
  };

  return { estimate, measure };
}
