// Defaults of a nightly backup that clients, workflows and benchmarks share.
/**
 * gzip level 1 costs nothing measurable over an uncompressed dump (pg_dump compresses while the
 * server is still sending rows) and stores ~7× less; level 6 stores ~20% less again at 2.4× the
 * dump time (docs/benchmarks.md).
 */
export const DEFAULT_COMPRESSION = 'gzip:1';
