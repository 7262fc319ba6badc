/** The playground: base and tuned generations side by side (streamed text flushed once per frame), and evaluation. */
import { useCallback, useRef, useState } from 'react';
import { outputInfo, type Output } from '../CompareSection';
import { CallScope } from '../callbacks';
import { guard, raise, type Engine } from '../engine';
import { errorMessage } from '../format';
import type { Loadable } from '../loadable';
import type { EvalReport, FinetuneConfig, SamplingOptions } from '../../worker/api';

const IDLE_OUT: Output = { text: '', state: 'idle' };

export function usePlayground(engine: Engine) {
  const [sampling, setSampling] = useState<SamplingOptions>({
    maxNewTokens: 32,
    temperature: 0,
    topK: 0,
    topP: 1,
    seed: 0,
  });
  const [outputs, setOutputs] = useState<{ base: Output; tuned: Output }>({ base: IDLE_OUT, tuned: IDLE_OUT });
  const [generating, setGenerating] = useState(false);
  const [evalState, setEvalState] = useState<Loadable<EvalReport, { done: number; total: number }>>({ kind: 'none' });
  const [evalCount, setEvalCount] = useState(8);

  const genText = useRef({ base: '', tuned: '' });
  const genFlush = useRef(false);
  /** Base, then tuned when there is an adapter, with the run's template and end-of-response string. */
  const generate = async (
    instruction: string,
    input: string,
    { hasAdapter, settings }: { hasAdapter: boolean; settings: FinetuneConfig },
  ) => {
    setGenerating(true);
    genText.current = { base: '', tuned: '' };
    const sides: ('base' | 'tuned')[] = hasAdapter ? ['base', 'tuned'] : ['base'];
    setOutputs({
      base: { text: '', state: 'running' },
      tuned: hasAdapter
        ? { text: '', state: 'idle', info: 'waiting for the base model…' }
        : { text: '', state: 'idle', info: 'Train or import an adapter first.' },
    });
    for (const which of sides) {
      setOutputs((o) => ({ ...o, [which]: { text: '', state: 'running' } }));
      // A token that arrives after the call returned is already in r.text: it must not be appended again.
      const scope = new CallScope();
      const onToken = scope.whileOpen((delta: string) => {
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
        scope.settle();
        genText.current[which] = r.text;
        setOutputs((o) => ({
          ...o,
          [which]: { text: r.text, state: 'done', info: outputInfo(r.tokens, r.ms, r.finishReason) },
        }));
        if (r.finishReason === 'aborted') break;
      } catch (e) {
        scope.settle();
        setOutputs((o) => ({ ...o, [which]: { text: genText.current[which], state: 'error', info: errorMessage(e) } }));
        break;
      }
    }
    setGenerating(false);
  };

  const stopGenerate = () => {
    raise('abortGeneration');
    void guard(engine.stopGenerate()).catch(() => undefined);
  };

  const evaluate = async () => {
    setEvalState({ kind: 'loading', done: 0, total: evalCount });
    // Progress that arrives after the call returned must not put the finished evaluation back to running.
    const scope = new CallScope();
    try {
      const report = await guard(
        engine.evaluate(
          evalCount,
          scope.whileOpen((done: number, total: number) => setEvalState({ kind: 'loading', done, total })),
        ),
      );
      scope.settle();
      setEvalState({ kind: 'ready', value: report });
    } catch (e) {
      scope.settle();
      setEvalState({ kind: 'error', message: errorMessage(e) });
    }
  };

  /** The evaluation no longer holds (other data, another run). */
  const clearEval = useCallback(() => setEvalState({ kind: 'none' }), []);

  return {
    sampling,
    setSampling,
    outputs,
    generating,
    generate,
    stopGenerate,
    evalState,
    evalCount,
    setEvalCount,
    evaluate,
    evaluating: evalState.kind === 'loading',
    clearEval,
    /** Another model: nothing generated or evaluated yet. */
    reset: () => {
      setOutputs({ base: IDLE_OUT, tuned: IDLE_OUT });
      clearEval();
    },
  };
}
