// A value read at scrape time from something slow or fragile (S3, Temporal, PostgreSQL), shared by
// the gauges that show it. A scrape storm (several Prometheus servers, a dashboard refreshing)
// reads the source at most once per TTL; a scrape never waits past the deadline (Prometheus gives
// up after its scrape timeout, 10 s by default). Nothing is read between scrapes: no timers.

export interface ScrapeSourceOptions {
  /** How long a reading (or a failure) is reused. */
  ttlMs: number;
  /** How long a scrape waits for a reading; one still running then is kept for the next scrape. */
  deadlineMs: number;
}

interface Reading<T> {
  at: number;
  ms: number;
  value?: T;
  error?: string;
}

export class ScrapeSource<T> {
  private last?: Reading<T>;
  private inFlight?: Promise<Reading<T>>;

  constructor(
    readonly name: string,
    private readonly load: () => Promise<T>,
    private readonly options: ScrapeSourceOptions,
  ) {}

  /** The current reading, or undefined when the source failed or did not answer in time. */
  async get(): Promise<T | undefined> {
    const reading = await this.reading();
    return reading?.value;
  }

  /** 1 when the last reading succeeded, 0 when it failed or is still outstanding past the deadline. */
  async health(): Promise<{ up: boolean; seconds?: number; error?: string }> {
    const reading = await this.reading();
    if (!reading) return { up: false, error: `no answer within ${this.options.deadlineMs} ms` };
    return { up: reading.error === undefined, seconds: reading.ms / 1000, error: reading.error };
  }

  private async reading(): Promise<Reading<T> | undefined> {
    if (this.last && Date.now() - this.last.at < this.options.ttlMs) return this.last;
    this.inFlight ??= this.read().finally(() => (this.inFlight = undefined));
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), this.options.deadlineMs)));
    try {
      return await Promise.race([this.inFlight, late]);
    } finally {
      clearTimeout(timer);
    }
  }

  private async read(): Promise<Reading<T>> {
    const started = Date.now();
    try {
      const value = await this.load();
      this.last = { at: Date.now(), ms: Date.now() - started, value };
    } catch (err) {
      this.last = { at: Date.now(), ms: Date.now() - started, error: (err as Error).message?.split('\n')[0] ?? String(err) };
    }
    return this.last;
  }
}
