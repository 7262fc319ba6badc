/** A training run as the page follows it: its state, its last checkpoint save, its metrics (coalesced per frame). */
import { useMemo, useRef, useState } from 'react';
import { CallScope } from '../callbacks';
import { Comlink, guard, noteStepMs, raise, type Engine } from '../engine';
import { errorMessage } from '../format';
import { MetricsStore } from '../metrics-store';
import type { SaveView, TrainView } from '../TrainSection';
import type { BackendStatus, TrainEvent, TrainOutcome } from '../../worker/api';

const IDLE: TrainView = { state: 'idle', totalSteps: 0, startedAt: null };

/**
 * @param onBackend the run moved to another backend (a lost WebGPU device).
 * @param onSaved a checkpoint was written.
 * @param onEnded a call that drove the run returned (ended, paused or failed).
 */
export function useTraining(
  engine: Engine,
  on: { onBackend: (s: BackendStatus) => void; onSaved: () => void; onEnded: () => void },
) {
  const store = useMemo(() => new MetricsStore(), []);
  const [view, setView] = useState<TrainView>(IDLE);
  const [save, setSave] = useState<SaveView | null>(null);
  /** The stored run being trained (or paused, or last trained). */
  const [activeRunId, setActiveRunId] = useState<string | null>(null);

  const { onBackend, onSaved, onEnded } = on;
  /** The call that drives the run now: its events, and when it settles. */
  const call = useRef<CallScope>(new CallScope());
  /** The backend the run's steps run on (for the measured step time). */
  const runBackend = useRef('');

  /**
   * Events of the call in flight. Data (metrics, evaluations, samples, saves) still counts when it arrives after the
   * call returned, until another run starts; a state change counts only while the call is in flight, so a late
   * "running" never overrides the outcome.
   */
  const eventsOf = (scope: CallScope) => {
    const data = scope.untilReplaced((ev: TrainEvent) => {
      if (ev.type === 'metrics') {
        store.addMetrics(ev, runBackend.current);
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
        onSaved();
      }
    });
    const live = scope.whileOpen((ev: TrainEvent) => {
      if (ev.type === 'backend') {
        runBackend.current = ev.status.backend;
        onBackend(ev.status);
        setView((t) => ({ ...t, message: ev.message }));
      } else if (ev.type === 'state') {
        setView((t) => ({
          ...t,
          state: ev.state,
          pending: ev.state === 'running' ? t.pending : undefined,
          message: ev.message ?? t.message,
        }));
      }
    });
    return Comlink.proxy((ev: TrainEvent) => (ev.type === 'backend' || ev.type === 'state' ? live(ev) : data(ev)));
  };

  /** A new call drives the run (start, resume, stop): the previous call's late state events no longer count. */
  const nextCall = (replaceRun: boolean) => {
    if (replaceRun) call.current.replace();
    else call.current.settle();
    call.current = new CallScope();
    return eventsOf(call.current);
  };

  /** Follow the call that drives the run to its outcome (a failed call becomes an 'error' outcome, also shown). */
  const finish = async (p: Promise<TrainOutcome>): Promise<TrainOutcome> => {
    const scope = call.current;
    let out: TrainOutcome;
    try {
      out = await guard(p);
      scope.settle();
      setView((t) => ({
        ...t,
        state: out.state,
        pending: undefined,
        message: out.message,
        totalSteps: out.totalSteps,
      }));
      if (out.runId) setActiveRunId(out.runId);
    } catch (e) {
      scope.settle();
      out = { state: 'error', step: 0, totalSteps: 0, message: errorMessage(e), runId: null };
      setView((t) => ({ ...t, state: 'error', pending: undefined, message: out.message }));
    }
    onEnded();
    return out;
  };

  /** A run starts (or a stored one resumes): fresh curves, no save yet. Returns the events callback for its call. */
  const begin = (runId: string | null, totalSteps: number, backend: string, message?: string) => {
    const events = nextCall(true);
    runBackend.current = backend;
    store.reset();
    setSave(null);
    setActiveRunId(runId);
    setView({ state: 'running', totalSteps, startedAt: Date.now(), message });
    return events;
  };

  return {
    store,
    view,
    save,
    activeRunId,
    running: view.state === 'running',
    /** Running or paused: the run holds the engine. */
    active: view.state === 'running' || view.state === 'paused',
    /** A new model: no run, no curves. */
    reset: () => {
      store.reset();
      setView(IDLE);
    },
    begin,
    finish,
    pause: () => {
      // Say so at once: the run pauses when the step in flight ends (it may take a while on a slow backend).
      setView((t) => ({ ...t, pending: 'pause', message: 'Pausing after this step…' }));
      raise('pause');
      void guard(engine.pause()).catch(() => undefined);
    },
    resume: async () => {
      const events = nextCall(false);
      setView((t) => ({ ...t, state: 'running', message: undefined }));
      await finish(engine.resume(events));
    },
    stop: async () => {
      if (view.state === 'paused') {
        nextCall(false);
        await finish(engine.stop());
      } else {
        setView((t) => ({ ...t, pending: 'stop', message: 'Stopping after this step…' }));
        raise('stop');
        void guard(engine.stop()).catch(() => undefined);
      }
    },
  };
}
