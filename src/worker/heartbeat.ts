/**
 * Heartbeat for the page's watchdog (src/ui/engine.ts): a timer beats while the event loop is free, and training
 * steps, micro-batches, generated tokens and load progress beat while long work holds it. Posting needs no free
 * event loop, so a beat goes out even from inside a long synchronous loop.
 */

/** Start the heartbeat timer; returns beat(), which posts at most one beat per 200 ms. */
export function startHeartbeat(): () => void {
  let lastBeat = 0;
  const beat = (): void => {
    const t = performance.now();
    if (t - lastBeat < 200) return;
    lastBeat = t;
    self.postMessage({ type: 'webtune:beat' });
  };
  setInterval(beat, 1000);
  beat();
  return beat;
}
