/**
 * The guided path through the page: each step says what comes next once it is done, and the page scrolls to the
 * next step when it becomes ready (after the user's own action: a model loaded, a dataset read, a run finished).
 */
import { createContext, useContext, type ReactNode } from 'react';

export type StepId = 'model' | 'data' | 'configure' | 'train' | 'watch' | 'compare' | 'export';

/** What to do next, per step (absent: nothing to say yet). */
export type NextSteps = Partial<Record<StepId, { text: ReactNode; to: StepId; label: string }>>;

export const NextStepsContext = createContext<NextSteps>({});

/** How long the page keeps a step in place after scrolling to it, while content above it settles. */
const FOLLOW_MS = 3000;
const USER_SCROLL = ['wheel', 'touchstart', 'keydown', 'mousedown'] as const;

/**
 * Scroll the page to a step (instantly when the user prefers reduced motion). Content above it often grows just
 * after (the report that made the step ready renders, an estimate arrives): for a few seconds, whenever the step
 * has come to rest away from the top, scroll to it again, unless the user scrolls or clicks in the meantime.
 */
export function showStep(id: StepId): void {
  const el = document.getElementById(id);
  if (!el) return;
  const reduced = window.matchMedia?.('(prefers-reduced-motion: reduce)').matches ?? false;
  const go = () => el.scrollIntoView({ block: 'start', behavior: reduced ? 'auto' : 'smooth' });
  go();
  let userMoved = false;
  const onUser = () => (userMoved = true);
  for (const e of USER_SCROLL) window.addEventListener(e, onUser, { passive: true });
  const until = performance.now() + FOLLOW_MS;
  let last = NaN;
  const check = () => {
    if (userMoved || performance.now() > until) {
      for (const e of USER_SCROLL) window.removeEventListener(e, onUser);
      return;
    }
    const top = el.getBoundingClientRect().top;
    const atRest = Math.abs(top - last) < 1;
    const canScroll = top > 0 ? window.scrollY + window.innerHeight < document.body.scrollHeight - 1 : true;
    if (atRest && Math.abs(top) > 24 && canScroll) go();
    last = top;
    setTimeout(check, 150);
  };
  setTimeout(check, 150);
}

/** The "Next:" line at the end of a step's card, with a link that scrolls to the step it names. */
export function NextStep({ id }: { id: string }) {
  const next = useContext(NextStepsContext)[id as StepId];
  if (!next) return null;
  return (
    <p className="next-step" data-testid={`next-${id}`}>
      <strong>Next:</strong> {next.text}{' '}
      <a
        href={`#${next.to}`}
        onClick={(e) => {
          e.preventDefault();
          showStep(next.to);
        }}
      >
        {next.label} ↓
      </a>
    </p>
  );
}

/** The next steps for the page's state. */
export function nextSteps(s: {
  modelName: string | null;
  dataReady: boolean;
  trainState: string;
  hasAdapter: boolean;
  evaluated: boolean;
}): NextSteps {
  const out: NextSteps = {};
  if (s.modelName) {
    out.model = s.dataReady
      ? { text: 'a dataset is loaded too: start training.', to: 'train', label: 'Step 4, Train' }
      : {
          text: `choose instruction data for ${s.modelName} ("Use the demo dataset" is made for small models).`,
          to: 'data',
          label: 'Step 2, Data',
        };
  }
  if (s.dataReady && s.trainState === 'idle')
    out.data = {
      text: 'the settings already hold the preset for this model; press Start training.',
      to: 'train',
      label: 'Step 4, Train',
    };
  if (s.trainState === 'running' || s.trainState === 'paused')
    out.train = { text: 'watch the loss fall while it trains.', to: 'watch', label: 'Step 5, Watch' };
  else if (s.hasAdapter && s.trainState !== 'idle')
    out.train = {
      text: 'ask the base and the tuned model the same held-out question, and score both.',
      to: 'compare',
      label: 'Step 6, Compare',
    };
  if (s.hasAdapter && s.evaluated)
    out.compare = {
      text: 'save the adapter in Hugging Face PEFT format, or the merged model.',
      to: 'export',
      label: 'Step 7, Export',
    };
  return out;
}
