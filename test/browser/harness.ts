/**
 * Real-browser test harness: serves the app with Vite (dev server, or production build + preview) on
 * 127.0.0.1, drives Debian's Chromium through playwright-core, records every network request and console
 * message, and saves screenshots and network logs to test-artifacts/.
 */
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { build, createServer, preview, type InlineConfig } from 'vite';
import { ROOT } from '../helpers';

export const CHROMIUM_PATH = process.env.WEBTUNE_CHROMIUM ?? '/usr/bin/chromium';
export const HAVE_CHROMIUM = existsSync(CHROMIUM_PATH);
export const CHROMIUM_MISSING = `skipped: Chromium not found at ${CHROMIUM_PATH} (apt-get install -y chromium, or set WEBTUNE_CHROMIUM)`;
export const ARTIFACTS = path.join(ROOT, 'test-artifacts');

/**
 * Headless flags. --enable-unsafe-webgpu alone gives WebGPU a SwiftShader (software Vulkan) adapter on a
 * machine with no GPU; WebGL runs on ANGLE over SwiftShader by default. The networking flags stop
 * Chromium's own background connections, which this machine's closed network refuses.
 */
export const CHROMIUM_ARGS = [
  '--headless=new',
  '--no-sandbox',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--enable-unsafe-webgpu',
];

export type ServeMode = 'dev' | 'preview';

export interface AppServer {
  mode: ServeMode;
  /** Origin with a trailing slash, e.g. http://127.0.0.1:41234/ */
  url: string;
  /** The build being served ('preview' only); removed on close. */
  outDir?: string;
  close(): Promise<void>;
}

const baseConfig = (): InlineConfig => ({
  root: ROOT,
  configFile: path.join(ROOT, 'vite.config.ts'),
  logLevel: 'warn',
  clearScreen: false,
});

function urlOf(server: { address(): string | AddressInfo | null } | null | undefined): string {
  const addr = server?.address();
  if (!addr || typeof addr === 'string') throw new Error('server is not listening on a TCP port');
  return `http://127.0.0.1:${addr.port}/`;
}

/**
 * Serve the app on 127.0.0.1 with a free port. 'dev' is Vite's dev server; 'preview' builds the app
 * (into test-artifacts/, not dist/) and serves the build with the production headers, CSP included.
 */
export async function startApp(mode: ServeMode): Promise<AppServer> {
  if (mode === 'dev') {
    const server = await createServer({
      ...baseConfig(),
      server: { host: '127.0.0.1', port: 0, strictPort: true, watch: null, hmr: false },
    });
    await server.listen();
    return { mode, url: urlOf(server.httpServer), close: () => server.close() };
  }
  const outDir = path.join(ARTIFACTS, `dist-${process.pid}`);
  // Vitest sets NODE_ENV=test, which Vite would keep, giving React's development build.
  const nodeEnv = process.env.NODE_ENV;
  process.env.NODE_ENV = 'production';
  try {
    await build({ ...baseConfig(), mode: 'production', build: { outDir, emptyOutDir: true } });
  } finally {
    process.env.NODE_ENV = nodeEnv;
  }
  const server = await preview({
    ...baseConfig(),
    build: { outDir },
    preview: { host: '127.0.0.1', port: 0, strictPort: true },
  });
  return {
    mode,
    url: urlOf(server.httpServer),
    outDir,
    close: async () => {
      await server.close();
      rmSync(outDir, { recursive: true, force: true });
    },
  };
}

export interface RequestRecord {
  method: string;
  url: string;
  resourceType: string;
  status: number | null;
  failure?: string;
}

export interface ConsoleRecord {
  type: string;
  text: string;
}

export interface BrowserSession {
  browser: Browser;
  context: BrowserContext;
  page: Page;
  /** Every request the page and its workers made, in order. */
  requests: RequestRecord[];
  console: ConsoleRecord[];
  /** Uncaught exceptions in the page. */
  pageErrors: string[];
  /** Saves test-artifacts/<name>.png and returns its path. */
  screenshot(name: string): Promise<string>;
  /** Writes requests, console and page errors to test-artifacts/<name>-log.json. */
  saveLog(name: string): string;
  close(): Promise<void>;
}

export async function launchBrowser(): Promise<BrowserSession> {
  const browser = await chromium.launch({ executablePath: CHROMIUM_PATH, args: CHROMIUM_ARGS, timeout: 60_000 });
  const context = await browser.newContext({ viewport: { width: 1100, height: 800 } });
  const page = await context.newPage();
  const requests: RequestRecord[] = [];
  const consoleRecords: ConsoleRecord[] = [];
  const pageErrors: string[] = [];
  const byRequest = new Map<object, RequestRecord>();
  context.on('request', (r) => {
    const rec: RequestRecord = { method: r.method(), url: r.url(), resourceType: r.resourceType(), status: null };
    byRequest.set(r, rec);
    requests.push(rec);
  });
  context.on('requestfinished', async (r) => {
    const rec = byRequest.get(r);
    if (rec) rec.status = (await r.response().catch(() => null))?.status() ?? null;
  });
  context.on('requestfailed', (r) => {
    const rec = byRequest.get(r);
    if (rec) rec.failure = r.failure()?.errorText ?? 'failed';
  });
  page.on('console', (m) => consoleRecords.push({ type: m.type(), text: m.text() }));
  page.on('pageerror', (e) => pageErrors.push(e.message));
  mkdirSync(ARTIFACTS, { recursive: true });
  return {
    browser,
    context,
    page,
    requests,
    console: consoleRecords,
    pageErrors,
    async screenshot(name) {
      const file = path.join(ARTIFACTS, `${name}.png`);
      await page.screenshot({ path: file, fullPage: true });
      return file;
    },
    saveLog(name) {
      const file = path.join(ARTIFACTS, `${name}-log.json`);
      writeFileSync(file, JSON.stringify({ requests, console: consoleRecords, pageErrors }, null, 2));
      return file;
    },
    close: () => browser.close(),
  };
}

/** Requests that went anywhere but the app's own origin (data: and blob: URLs are local). */
export function foreignRequests(requests: RequestRecord[], appUrl: string): RequestRecord[] {
  const origin = new URL(appUrl).origin;
  return requests.filter((r) => !/^(data|blob):/.test(r.url) && new URL(r.url).origin !== origin);
}

/** Console messages that report a Content-Security-Policy violation. */
export function cspViolations(records: ConsoleRecord[]): ConsoleRecord[] {
  return records.filter((r) => /Content Security Policy|Content-Security-Policy/i.test(r.text));
}
