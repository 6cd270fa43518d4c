// Defaults of a nightly backup that clients, workflows and benchmarks share.
/**
 * zstd level 1 dumps as fast as no compression at all (pg_dump compresses while the server is
 * still sending rows) and stores 8× less. Measured on the scale-10 database (1.0 GB) with
 * PostgreSQL 18.6's pg_dump -Fc: none 3.6 s / 648 MB, zstd:1 3.5 s / 81 MB, zstd:3 4.4 s / 84 MB,
 * lz4 4.5 s / 135 MB, gzip:1 5.4 s / 103 MB (docs/benchmarks.md). Needs a PostgreSQL built with
 * zstd; pass `gzip:1` for one without.
 */
export const DEFAULT_COMPRESSION = 'zstd:1';

/**
 * The directory format with two pg_dump jobs: pg_dump writes its files itself (nothing streams
 * through the worker, whose memory stays lower), the two jobs finish the dump sooner, and the
 * test restore reads them in parallel. On the scale-10 database it is the one layout whose
 * verified backup stays within 1.1× the old unverified script (docs/benchmarks.md). `custom`
 * (one file) stays selectable.
 */
export const DEFAULT_FORMAT = 'directory' as const;
export const DEFAULT_JOBS = 2;
