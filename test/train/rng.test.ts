import { describe, expect, it } from 'vitest';
import { Rng } from '../../src/util/rng';

const draw = (r: Rng, n: number) => Array.from({ length: n }, () => r.nextUint32());

describe('Rng (xoshiro128** with key derivation)', () => {
  it('is deterministic for a seed and differs between seeds', () => {
    expect(draw(new Rng(42), 16)).toEqual(draw(new Rng(42), 16));
    expect(draw(new Rng(42), 16)).not.toEqual(draw(new Rng(43), 16));
    expect(draw(new Rng('abc'), 8)).toEqual(draw(new Rng('abc'), 8));
    expect(draw(new Rng('1'), 8)).not.toEqual(draw(new Rng(1), 8));
    // large safe integers use both words
    expect(draw(new Rng(2 ** 40 + 1), 8)).not.toEqual(draw(new Rng(1), 8));
    expect(() => new Rng(1.5)).toThrow(/safe integers/);
  });

  it('outputs are uint32 and uniform-looking', () => {
    const r = new Rng(7);
    const xs = draw(r, 20000);
    expect(xs.every((x) => Number.isInteger(x) && x >= 0 && x < 2 ** 32)).toBe(true);
    const u = Array.from({ length: 20000 }, () => r.next());
    const mean = u.reduce((a, b) => a + b, 0) / u.length;
    expect(Math.abs(mean - 0.5)).toBeLessThan(0.01);
    expect(Math.min(...u)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...u)).toBeLessThan(1);
    // int(n): chi-square over 10 bins, 20000 draws (df 9: 99.9% quantile ≈ 27.9)
    const bins = new Array(10).fill(0);
    for (let i = 0; i < 20000; i++) bins[r.int(10)]++;
    const chi = bins.reduce((a, b) => a + (b - 2000) ** 2 / 2000, 0);
    expect(chi).toBeLessThan(27.9);
    const z = Array.from({ length: 20000 }, () => r.normal());
    const zm = z.reduce((a, b) => a + b, 0) / z.length;
    const zv = z.reduce((a, b) => a + (b - zm) ** 2, 0) / z.length;
    expect(Math.abs(zm)).toBeLessThan(0.03);
    expect(Math.abs(zv - 1)).toBeLessThan(0.05);
  });

  it('state() / fromState() resumes exactly', () => {
    const r = new Rng(123);
    draw(r, 5);
    const st = JSON.parse(JSON.stringify(r.state()));
    const a = draw(r, 10);
    const r2 = Rng.fromState(st);
    expect(draw(r2, 10)).toEqual(a);
    expect(r2.derive(3).nextUint32()).toBe(new Rng(123).derive(3).nextUint32());
    expect(() => Rng.fromState({ key: [1, 2], s: [0, 0, 0, 0] })).toThrow(/all zero/);
  });

  it('derive() depends only on key and path, not on consumption', () => {
    const a = new Rng(9);
    const b = new Rng(9);
    draw(b, 100);
    expect(draw(a.derive(5, 1), 8)).toEqual(draw(b.derive(5, 1), 8));
    expect(draw(a.derive(5, 1), 8)).not.toEqual(draw(a.derive(1, 5), 8));
    expect(draw(a.derive(5), 8)).not.toEqual(draw(a.derive(5, 0), 8));
    expect(draw(a.derive('data'), 8)).not.toEqual(draw(a.derive('dat', 'a'), 8));
    // many derived streams: first outputs all distinct
    const firsts = new Set<number>();
    for (let s = 0; s < 200; s++) for (let m = 0; m < 8; m++) firsts.add(a.derive(s, m).nextUint32());
    expect(firsts.size).toBe(1600);
  });

  it('split() advances the parent and yields independent, reproducible children', () => {
    const a = new Rng(1);
    const c1 = a.split();
    const c2 = a.split();
    expect(draw(c1, 8)).not.toEqual(draw(c2, 8));
    const b = new Rng(1);
    expect(draw(b.split(), 8)).toEqual(draw(new Rng(1).split(), 8));
  });

  it('shuffle / permutation are permutations and reproducible', () => {
    const p = new Rng(5).permutation(50);
    expect([...p].sort((x, y) => x - y)).toEqual(Array.from({ length: 50 }, (_, i) => i));
    expect(new Rng(5).permutation(50)).toEqual(p);
    expect(new Rng(6).permutation(50)).not.toEqual(p);
  });
});
