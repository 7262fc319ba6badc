/** 5. Watch: live charts of the training metrics and the sample generations made at each evaluation. */
import { Chart } from './Chart';
import { Empty, Section } from './controls';
import { formatNum } from './format';
import { useThrottledVersion, type MetricsStore } from './metrics-store';

export function WatchSection({ store }: { store: MetricsStore }) {
  useThrottledVersion(store, 500);
  const hasData = store.cols.step.length > 0;
  return (
    <Section id="watch" n={5} title="Watch">
      {!hasData && <Empty>Charts fill in as soon as training starts.</Empty>}
      <div className="charts" data-testid="charts" data-points={store.cols.step.length}>
        {hasData && (
          <>
            <Chart
              title="Loss"
              store={store}
              testId="chart-loss"
              series={[
                { key: 'loss', label: 'train', color: '#2563eb' },
                { key: 'valLoss', label: 'validation', color: '#dc2626', points: true, dash: [6, 4] },
              ]}
            />
            <Chart
              title="Learning rate"
              index={1}
              store={store}
              testId="chart-lr"
              format={(v) => formatNum(v, 2)}
              series={[{ key: 'lr', label: 'lr', color: '#7c3aed' }]}
            />
            <Chart
              title="Gradient norm"
              index={2}
              store={store}
              testId="chart-grad"
              series={[{ key: 'gradNorm', label: 'grad norm', color: '#ea580c' }]}
            />
            <Chart
              title="Throughput (tokens/s)"
              index={3}
              store={store}
              testId="chart-tps"
              series={[{ key: 'tokensPerSec', label: 'tokens/s', color: '#059669' }]}
            />
          </>
        )}
      </div>
      <Samples store={store} />
    </Section>
  );
}

function Samples({ store }: { store: MetricsStore }) {
  const all = store.samples;
  if (all.length === 0) return null;
  const latest = all[all.length - 1];
  return (
    <div className="samples" data-testid="samples">
      <h3>Sample generations at each evaluation (greedy, held-out prompts)</h3>
      {[...all]
        .reverse()
        .slice(0, 8)
        .map((s) => {
          const val = store.evals.get(s.step)?.eval_loss;
          return (
            <details key={s.step} open={s === latest}>
              <summary>
                step {s.step}
                {val != null ? ` · validation loss ${formatNum(val)}` : ''}
              </summary>
              <dl className="sample-list">
                {s.samples.map((x, i) => (
                  <div key={i}>
                    <dt title={x.prompt}>{compact(x.prompt)}</dt>
                    <dd>
                      <span className={x.exact_match ? 'up' : ''}>
                        {x.prediction || <span className="muted">(empty)</span>}
                      </span>
                      <span className="muted small">
                        {' '}
                        · reference: {x.reference}
                        {x.exact_match ? ' ✓' : ''}
                      </span>
                    </dd>
                  </div>
                ))}
              </dl>
            </details>
          );
        })}
    </div>
  );
}

/** A rendered prompt on one line (line breaks shown as ⏎). */
function compact(prompt: string): string {
  return prompt.trim().replace(/\s*\n\s*/g, ' ⏎ ');
}
