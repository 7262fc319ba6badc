/**
 * Downloads with limits against real misbehaving HTTP servers on 127.0.0.1: one that accepts and never answers,
 * one that sends headers and a little of the body and then stalls, one that never ends a body of undeclared length,
 * and one that sends more than its Content-Length. Each fails within its limit with a message naming the URL.
 */
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NetworkTimeoutError, readStream, type FetchLimits } from '../../src/io/fetch';
import { hubSource } from '../../src/io/source';

let server: Server;
let base: string;
const sockets = new Set<Socket>();
const timers = new Set<ReturnType<typeof setInterval>>();

function trickleForever(res: ServerResponse) {
  res.writeHead(200, { 'Content-Type': 'application/octet-stream' });
  const t = setInterval(() => res.write(new Uint8Array(64 * 1024)), 5);
  timers.add(t);
  res.on('close', () => clearInterval(t));
}

beforeAll(async () => {
  server = createServer((req, res) => {
    const file = req.url!.split('/').pop();
    if (file === 'silent.bin') return; // accept, never answer
    if (file === 'stall.bin') {
      res.writeHead(200, { 'Content-Length': '1000' });
      res.write(new Uint8Array(100)); // then nothing
      return;
    }
    if (file === 'endless.bin') return trickleForever(res);
    if (file === 'liar.bin') {
      // Declares 10 bytes, sends 100: undici itself refuses the mismatch; either way it must not be accepted.
      res.writeHead(200, { 'Content-Length': '10' });
      res.socket?.write(new Uint8Array(100));
      res.end();
      return;
    }
    res.writeHead(200, { 'Content-Length': '3' });
    res.end('ok\n');
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  for (const t of timers) clearInterval(t);
  for (const s of sockets) s.destroy();
  await new Promise((r) => server.close(r));
});

const limits: FetchLimits = { connectMs: 400, idleMs: 400, maxBytes: 4 * 1024 * 1024 };

describe('downloads with limits', () => {
  it('a normal file reads as usual under the same limits', async () => {
    // Generous deadlines here: a busy machine may take a while to answer even a good request.
    const bytes = await hubSource(base, 'org/repo', 'main', fetch, {
      ...limits,
      connectMs: 30_000,
      idleMs: 30_000,
    }).read('ok.txt');
    expect(new TextDecoder().decode(bytes)).toBe('ok\n');
  });

  it('a server that accepts and never answers fails after connectMs, naming the URL', async () => {
    const t0 = Date.now();
    const err = await hubSource(base, 'org/repo', 'main', fetch, limits)
      .read('silent.bin')
      .catch((e: Error) => e);
    const ms = Date.now() - t0;
    expect(err).toBeInstanceOf(NetworkTimeoutError);
    expect((err as Error).message).toBe(
      `${base}/org/repo/resolve/main/silent.bin: the server did not answer within 400 ms (it accepted the connection but sent no response, or is unreachable); check the address and the network, then try again`,
    );
    expect(ms).toBeGreaterThanOrEqual(380);
    expect(ms).toBeLessThan(5000);
  });

  it('a body that stalls fails after idleMs, saying how far it got', async () => {
    const progress: number[] = [];
    const err = await hubSource(base, 'org/repo', 'main', fetch, limits)
      .read('stall.bin', (n) => progress.push(n))
      .catch((e: Error) => e);
    expect(err).toBeInstanceOf(NetworkTimeoutError);
    expect((err as Error).message).toMatch(
      /\/org\/repo\/resolve\/main\/stall\.bin: no data for 400 ms after 100 bytes of 1000 \(the server stalled\)/,
    );
    expect(progress).toEqual([0, 100]);
  });

  it('a body without a length that never ends stops at maxBytes', async () => {
    const err = await hubSource(base, 'org/repo', 'main', fetch, limits)
      .read('endless.bin')
      .catch((e: Error) => e);
    expect((err as Error).message).toMatch(/endless\.bin: larger than 4194304 bytes, the most a file may have here/);
  });

  it('a body longer than its Content-Length is refused', async () => {
    await expect(hubSource(base, 'org/repo', 'main', fetch, limits).read('liar.bin')).rejects.toThrow();
    // Our own check, for fetch implementations that do not enforce the length themselves.
    const stream = new ReadableStream<Uint8Array>({
      start(c) {
        c.enqueue(new Uint8Array(8));
        c.enqueue(new Uint8Array(8));
        c.close();
      },
    });
    await expect(readStream(stream, 10, undefined, 'x.bin')).rejects.toThrow(
      'x.bin: the server sent more than the 10 bytes it declared (Content-Length)',
    );
  });
});

describe('an unreachable host is named as such', () => {
  it('a closed port: "the host … is unreachable: it refused the connection", not a missing file', async () => {
    const s = createServer();
    await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
    const port = (s.address() as AddressInfo).port;
    await new Promise<void>((r) => s.close(() => r()));
    const err = await hubSource(`http://127.0.0.1:${port}`, 'org/repo')
      .read('config.json')
      .catch((e: Error) => e);
    expect(err).toBeInstanceOf(Error);
    const msg = (err as Error).message;
    expect(msg).toContain(`network error fetching http://127.0.0.1:${port}/org/repo/resolve/main/config.json`);
    expect(msg).toContain(`the host 127.0.0.1:${port} is unreachable: it refused the connection`);
    expect(msg).toContain('(ECONNREFUSED)');
    expect(msg).not.toMatch(/not found|no config\.json/);
  });
});
