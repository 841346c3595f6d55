import { expect } from 'chai';
import { DEFAULT_LEAK_TREND, type LeakSample, leakTrend, leastSquaresSlope } from '../../lib/admin/leaks.js';
import { formatLeakReport } from '../../lib/cli/leaks.js';

/** Samples for reloads `from`..`from + count - 1`, each series given as a function of the reload number. */
function samples(count: number, series: Record<string, (reload: number) => number>, from = 1): LeakSample[] {
  return Array.from({ length: count }, (_, i) => ({
    reload: from + i,
    values: Object.fromEntries(Object.entries(series).map(([name, f]) => [name, f(from + i)])),
  }));
}

const FLAT = { handles: () => 12, fds: () => 30, 'live:listener': () => 1 };

describe('leak trend (pure)', () => {
  describe('leastSquaresSlope', () => {
    it('is the slope of an exact line, and 0 for a constant', () => {
      expect(leastSquaresSlope([1, 2, 3, 4].map((x) => [x, 2 * x + 3]))).to.equal(2);
      expect(leastSquaresSlope([10, 11, 12].map((x) => [x, 7]))).to.equal(0);
      expect(leastSquaresSlope([5, 6, 7, 8].map((x) => [x, -0.5 * x]))).to.be.closeTo(-0.5, 1e-12);
    });

    it('fits through noise: a saw tooth around a flat line has slope near 0, one around a rising line near its rate', () => {
      const tooth = (x: number) => (x % 2 === 0 ? 3 : -3);
      const xs = Array.from({ length: 50 }, (_, i) => i + 1);
      expect(leastSquaresSlope(xs.map((x) => [x, 100 + tooth(x)]))).to.be.closeTo(0, 0.01);
      expect(leastSquaresSlope(xs.map((x) => [x, x + tooth(x)]))).to.be.closeTo(1, 0.01);
    });

    it('is 0 for fewer than two points or a single x', () => {
      expect(leastSquaresSlope([])).to.equal(0);
      expect(leastSquaresSlope([[1, 5]])).to.equal(0);
      expect(
        leastSquaresSlope([
          [3, 1],
          [3, 9],
        ]),
      ).to.equal(0);
    });
  });

  describe('leakTrend', () => {
    it('reports a slope per series and no suspect for flat series over a full window', () => {
      const trend = leakTrend(samples(50, FLAT), DEFAULT_LEAK_TREND);
      expect(trend).to.deep.include({ window: 50, reloads: 50, threshold_per_reload: 0.5, suspects: [] });
      expect(trend.slopes).to.deep.equal({ handles: 0, fds: 0, 'live:listener': 0 });
    });

    it('names each growing series as a suspect once the window is full, and only then', () => {
      const leaking = { ...FLAT, fds: (r: number) => 30 + r, 'live:upstream_pool': (r: number) => r };
      expect(leakTrend(samples(49, leaking), DEFAULT_LEAK_TREND).suspects, 'window not yet full').to.deep.equal([]);
      const trend = leakTrend(samples(50, leaking), DEFAULT_LEAK_TREND);
      expect(trend.suspects.map((s) => s.resource)).to.have.members(['fds', 'live:upstream_pool']);
      const fds = trend.suspects.find((s) => s.resource === 'fds')!;
      expect(fds).to.include({ reason: 'growing' });
      expect(fds.detail).to.equal('grows 1.00 per reload over the last 50 reloads (threshold 0.5)');
      expect(trend.suspects.find((s) => s.resource === 'live:upstream_pool')).to.include({ kind: 'upstream_pool' });
    });

    it('judges only the last `window` reloads: an old leak that stopped is not a suspect', () => {
      const leakThenFlat = { handles: (r: number) => Math.min(r, 100) };
      expect(leakTrend(samples(150, leakThenFlat), DEFAULT_LEAK_TREND).suspects).to.deep.equal([]);
      expect(leakTrend(samples(150, leakThenFlat), { window: 150, threshold_per_reload: 0.5 }).suspects).to.have.length(1);
    });

    it('needs a slope above the threshold: exactly the threshold is no suspect', () => {
      expect(leakTrend(samples(50, { handles: (r) => r / 2 }), DEFAULT_LEAK_TREND).suspects).to.deep.equal([]);
      expect(leakTrend(samples(50, { handles: (r) => r * 0.51 }), DEFAULT_LEAK_TREND).suspects).to.have.length(1);
    });

    it('names the handle type that grows rather than the total as well', () => {
      const trend = leakTrend(samples(50, { handles: (r) => 10 + r, 'handles:TCPServerWrap': (r) => r, 'handles:Timeout': () => 10 }), DEFAULT_LEAK_TREND);
      expect(trend.suspects.map((s) => s.resource)).to.deep.equal(['handles:TCPServerWrap']);
      const spread = leakTrend(samples(50, { handles: (r) => r, 'handles:A': (r) => r * 0.4, 'handles:B': (r) => r * 0.6 }), DEFAULT_LEAK_TREND);
      expect(
        spread.suspects.map((s) => s.resource),
        'the type over the threshold, not the total',
      ).to.deep.equal(['handles:B']);
      const thin = leakTrend(samples(50, { handles: (r) => r, 'handles:A': (r) => r * 0.4, 'handles:B': (r) => r * 0.4 }), DEFAULT_LEAK_TREND);
      expect(
        thin.suspects.map((s) => s.resource),
        'no one type over the threshold: the total',
      ).to.deep.equal(['handles']);
    });

    it('counts a series missing from a sample as 0 (a handle type that appeared, a kind with no live resource)', () => {
      const appearing: LeakSample[] = samples(50, { handles: () => 5 }).map((s) =>
        s.reload > 25 ? { ...s, values: { ...s.values, 'handles:X': s.reload } } : s,
      );
      const trend = leakTrend(appearing, DEFAULT_LEAK_TREND);
      expect(trend.slopes['handles:X']).to.be.greaterThan(1);
      expect(trend.suspects.map((s) => s.resource)).to.deep.equal(['handles:X']);
    });
  });

  it('hotconf leaks prints the trend and names what grows', () => {
    const trend = leakTrend(samples(50, { ...FLAT, 'handles:TCPServerWrap': (r) => r }), DEFAULT_LEAK_TREND);
    const text = formatLeakReport({
      ok: false,
      resources: {},
      generations_live: 1,
      generations: [{ id: 51, state: 'active', inflight: 0, retired_ms_ago: null }],
      handles: { TCPServerWrap: 50 },
      suspects: trend.suspects,
      trend,
    });
    expect(text).to.include('trend over the last 50 reloads (threshold 0.5 per reload): handles:TCPServerWrap +1.00');
    expect(text).to.include('growing handles:TCPServerWrap: grows 1.00 per reload over the last 50 reloads (threshold 0.5)');
  });
});
