/**
 * Callbacks the page hands to the engine (load progress, streamed tokens, evaluation progress, training events).
 *
 * Comlink sends each proxied callback over its own MessagePort, so a callback can arrive after the call it belongs
 * to has returned, or after a newer call has started: a late "16 / 16" put a finished evaluation back to running,
 * and a late token was appended to a generation already replaced by its final text. A CallScope decides what a
 * callback may still do when it arrives:
 * - whileOpen(fn): only until the call settles (progress, tokens, state changes);
 * - untilReplaced(fn): until a newer call replaces this one (data that still belongs to the run, e.g. the last
 *   metrics of a finished training run).
 *
 * `?callbackDelay=<ms>` in the page URL delivers every engine callback that much later: tests use it to provoke the
 * late arrivals.
 */
import * as Comlink from 'comlink';

function callbackDelayMs(): number {
  if (typeof location === 'undefined') return 0;
  const ms = Number(new URLSearchParams(location.search).get('callbackDelay'));
  return Number.isFinite(ms) && ms > 0 ? ms : 0;
}

/** Comlink.proxy(fn), delivered late when the page asks for it (tests). */
function deliver<A extends unknown[]>(fn: (...args: A) => void): ((...args: A) => void) & Comlink.ProxyMarked {
  const delay = callbackDelayMs();
  return Comlink.proxy((...args: A) => {
    if (delay > 0) setTimeout(() => fn(...args), delay);
    else fn(...args);
  });
}

export class CallScope {
  private settled = false;
  private replaced = false;

  /** A callback that acts only while the call is in flight. */
  whileOpen<A extends unknown[]>(fn: (...args: A) => void): ((...args: A) => void) & Comlink.ProxyMarked {
    return deliver((...args: A) => {
      if (!this.settled && !this.replaced) fn(...args);
    });
  }

  /** A callback that acts until a newer call replaces this one, even after this call returned. */
  untilReplaced<A extends unknown[]>(fn: (...args: A) => void): ((...args: A) => void) & Comlink.ProxyMarked {
    return deliver((...args: A) => {
      if (!this.replaced) fn(...args);
    });
  }

  /** The call returned or failed: whileOpen callbacks arriving from now on are dropped. */
  settle(): void {
    this.settled = true;
  }

  /** A newer call took over: every callback of this one arriving from now on is dropped. */
  replace(): void {
    this.settled = true;
    this.replaced = true;
  }

  get open(): boolean {
    return !this.settled && !this.replaced;
  }
}
