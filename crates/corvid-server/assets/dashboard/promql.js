// PromQL's rate() and histogram_quantile(), evaluated over the dashboard's raw samples the
// way Prometheus 2.x evaluates them over a 1 s scrape: the same window (samples with
// T - range <= t <= T), the same extrapolation (promql/functions.go, extrapolatedRate) and
// the same bucket interpolation (promql/quantile.go, bucketQuantile). Pure functions: the
// page uses them, and the tests run them in Node against Prometheus' own answers.
(function (root) {
  "use strict";

  // Index of the first element of sorted `ts` that is >= x.
  function lowerBound(ts, x) {
    let lo = 0, hi = ts.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (ts[mid] < x) lo = mid + 1; else hi = mid;
    }
    return lo;
  }

  // Index of the first element of sorted `ts` that is > x.
  function upperBound(ts, x) {
    let lo = 0, hi = ts.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (ts[mid] <= x) lo = mid + 1; else hi = mid;
    }
    return lo;
  }

  // rate(counter[rangeMs]) evaluated at time `at` (ms), from sample times `ts` (ms,
  // ascending) and values `vs`. Returns null where Prometheus returns no sample (fewer
  // than two samples in the window).
  function rate(ts, vs, at, rangeMs) {
    const rangeStart = at - rangeMs, rangeEnd = at;
    const lo = lowerBound(ts, rangeStart), hi = upperBound(ts, rangeEnd);
    const n = hi - lo;
    if (n < 2) return null;
    const first = vs[lo], last = vs[hi - 1];
    let result = last - first;
    let prev = 0;
    for (let i = lo; i < hi; i++) {
      if (vs[i] < prev) result += prev; // counter reset
      prev = vs[i];
    }
    let durationToStart = (ts[lo] - rangeStart) / 1000;
    const durationToEnd = (rangeEnd - ts[hi - 1]) / 1000;
    const sampledInterval = (ts[hi - 1] - ts[lo]) / 1000;
    const avg = sampledInterval / (n - 1);
    if (result > 0 && first >= 0) {
      const durationToZero = sampledInterval * (first / result);
      if (durationToZero < durationToStart) durationToStart = durationToZero;
    }
    const threshold = avg * 1.1;
    let extrapolateTo = sampledInterval;
    extrapolateTo += durationToStart < threshold ? durationToStart : avg / 2;
    extrapolateTo += durationToEnd < threshold ? durationToEnd : avg / 2;
    let factor = extrapolateTo / sampledInterval; // the operations in Prometheus' order,
    factor /= rangeMs / 1000; //                   so the floats are the same
    return result * factor;
  }

  // The last sample at or before `at` within Prometheus' 5-minute lookback (an instant
  // vector selector), or null.
  function instant(ts, vs, at) {
    const i = upperBound(ts, at) - 1;
    if (i < 0 || at - ts[i] > 5 * 60 * 1000) return null;
    return vs[i];
  }

  // histogram_quantile(q, buckets): `buckets` is [[upperBound, cumulativeCount], ...] in
  // any order (counts may be rates). NaN where Prometheus gives NaN.
  function histogramQuantile(q, buckets) {
    if (Number.isNaN(q)) return NaN;
    if (q < 0) return -Infinity;
    if (q > 1) return Infinity;
    let b = buckets.filter((x) => x[1] !== null && x[1] !== undefined).map((x) => [x[0], x[1]]);
    b.sort((x, y) => x[0] - y[0]);
    if (b.length === 0 || b[b.length - 1][0] !== Infinity) return NaN;
    // coalesce equal upper bounds
    const c = [];
    for (const x of b) {
      if (c.length && c[c.length - 1][0] === x[0]) c[c.length - 1][1] += x[1];
      else c.push(x);
    }
    b = c;
    // ensure monotonic
    let max = -Infinity;
    for (const x of b) {
      if (x[1] > max) max = x[1];
      else x[1] = max;
    }
    if (b.length < 2) return NaN;
    const observations = b[b.length - 1][1];
    if (observations === 0) return NaN;
    let rank = q * observations;
    let i = 0;
    while (i < b.length - 1 && !(b[i][1] >= rank)) i++;
    if (i === b.length - 1) return b[b.length - 2][0];
    if (i === 0 && b[0][0] <= 0) return b[0][0];
    let start = 0, count = b[i][1];
    const end = b[i][0];
    if (i > 0) {
      start = b[i - 1][0];
      count -= b[i - 1][1];
      rank -= b[i - 1][1];
    }
    return start + (end - start) * (rank / count);
  }

  // Parses a bucket key's `le` ("0.5", "+Inf").
  function parseLe(s) {
    return s === "+Inf" ? Infinity : s === "-Inf" ? -Infinity : Number(s);
  }

  const api = { rate, instant, histogramQuantile, parseLe, lowerBound, upperBound };
  root.PromQL = api;
  if (typeof module !== "undefined" && module.exports) module.exports = api;
})(typeof window !== "undefined" ? window : globalThis);
