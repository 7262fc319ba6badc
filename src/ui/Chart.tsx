/** A small live line chart (uPlot) over the training metrics, resized with its container. */
import { useEffect, useRef } from 'react';
import uPlot from 'uplot';
import type { MetricColumns, MetricsStore } from './metrics-store';

export interface ChartSeries {
  key: Exclude<keyof MetricColumns, 'step'>;
  label: string;
  color: string;
  /** Draw points (for sparse series like validation loss). */
  points?: boolean;
  dash?: number[];
}

interface Props {
  title: string;
  /** Position among the charts: their redraws are spread over separate tasks. */
  index?: number;
  store: MetricsStore;
  series: ChartSeries[];
  /** Value formatter for the axis and legend. */
  format?: (v: number) => string;
  log?: boolean;
  testId?: string;
}

const HEIGHT = 180;
const UPDATE_MS = 250;
/** Steps are whole numbers: tick spacings 1, 2, 5, 10, 20, 50, … */
const STEP_INCRS = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000, 50000, 100000];

export function Chart({ title, index = 0, store, series, format, log, testId }: Props) {
  const box = useRef<HTMLDivElement>(null);
  useEffect(() => {
    const el = box.current;
    if (!el) return;
    const fmt = format ?? ((v: number) => (Math.abs(v) >= 100 ? v.toFixed(0) : Number(v.toPrecision(3)).toString()));
    const data = () => [store.cols.step, ...series.map((s) => store.cols[s.key])] as uPlot.AlignedData;
    const opts: uPlot.Options = {
      width: Math.max(200, el.clientWidth),
      height: HEIGHT,
      legend: { show: true, live: true },
      cursor: { drag: { x: false, y: false } },
      scales: { x: { time: false }, y: log ? { distr: 3 } : {} },
      axes: [
        {
          label: 'step',
          size: 36,
          labelSize: 14,
          stroke: '#555',
          grid: { stroke: '#eee' },
          incrs: STEP_INCRS,
          values: (_u, vals) => vals.map((v) => String(v)),
        },
        {
          size: 56,
          stroke: '#555',
          grid: { stroke: '#eee' },
          values: (_u, vals) => vals.map((v) => (v == null ? '' : fmt(v))),
        },
      ],
      series: [
        { label: 'step' },
        ...series.map((s) => ({
          label: s.label,
          stroke: s.color,
          width: 2,
          dash: s.dash,
          spanGaps: true,
          points: { show: s.points ?? false, size: 6, fill: s.color },
          value: (_u: uPlot, v: number | null) => (v == null ? '–' : fmt(v)),
        })),
      ],
    };
    // Each chart is created in its own task (a few ms each), not all in the render that mounts them.
    let plot: uPlot | null = null;
    let lastVersion = -1;
    let timer: ReturnType<typeof setTimeout> | null = null;
    let ro: ResizeObserver | null = null;
    // Redraw at most every UPDATE_MS, each chart in its own task (a slot of the interval), so that no single
    // task of the page holds several redraws while training runs.
    const update = () => {
      timer = null;
      if (!plot || store.version === lastVersion) return;
      lastVersion = store.version;
      plot.setData(data());
    };
    const schedule = () => {
      timer ??= setTimeout(update, UPDATE_MS + index * 50);
    };
    const create = setTimeout(() => {
      lastVersion = store.version;
      plot = new uPlot(opts, data(), el);
      ro = new ResizeObserver(() => plot?.setSize({ width: Math.max(200, el.clientWidth), height: HEIGHT }));
      ro.observe(el);
    }, index * 40);
    const unsub = store.subscribe(schedule);
    return () => {
      clearTimeout(create);
      unsub();
      ro?.disconnect();
      if (timer) clearTimeout(timer);
      plot?.destroy();
    };
    // series/format are static per chart
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [store]);
  return (
    <figure className="chart" data-testid={testId}>
      <figcaption>{title}</figcaption>
      <div ref={box} className="chart-plot" role="img" aria-label={`${title} chart`} />
    </figure>
  );
}
