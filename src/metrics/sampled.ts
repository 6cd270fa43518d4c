// Gauges and counters whose every sample comes from a ScrapeSource when Prometheus scrapes: the
// label sets of the last scrape are dropped first, so a standby removed from the configuration or
// a finished backfill disappears instead of repeating its last value.
import { Counter, Gauge, type LabelValues, type Registry } from 'prom-client';
import type { ScrapeSource } from './scrapeSource';

export type Sample<L extends string> = [labels: LabelValues<L>, value: number];

interface SampledSpec<T, L extends string> {
  name: string;
  help: string;
  labelNames: readonly L[];
  samples: (reading: T) => Iterable<Sample<L>>;
}

export function sampledGauge<T, L extends string>(registry: Registry, source: ScrapeSource<T>, spec: SampledSpec<T, L>): Gauge<L> {
  return new Gauge<L>({
    name: spec.name,
    help: spec.help,
    labelNames: spec.labelNames,
    registers: [registry],
    async collect() {
      const reading = await source.get();
      this.reset();
      if (reading === undefined) return;
      for (const [labels, value] of spec.samples(reading)) this.set(labels, value);
    },
  });
}

/**
 * A count kept durably elsewhere (the audit trail) and read at scrape time: monotonic as long as
 * its record is append-only, the same on every worker, and not reset by a worker's restart.
 */
export function sampledCounter<T, L extends string>(registry: Registry, source: ScrapeSource<T>, spec: SampledSpec<T, L>): Counter<L> {
  return new Counter<L>({
    name: spec.name,
    help: spec.help,
    labelNames: spec.labelNames,
    registers: [registry],
    async collect() {
      const reading = await source.get();
      this.reset();
      if (reading === undefined) return;
      for (const [labels, value] of spec.samples(reading)) this.inc(labels, value);
    },
  });
}

/** Seconds since the epoch of an ISO timestamp, or undefined when it is absent or unreadable. */
export function epochSeconds(iso: string | undefined): number | undefined {
  const ms = iso === undefined ? NaN : Date.parse(iso);
  return Number.isFinite(ms) ? ms / 1000 : undefined;
}
