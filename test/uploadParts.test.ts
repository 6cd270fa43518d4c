// Upload part sizes: small enough to keep the worker's buffers small, never more parts than S3 takes.
import { partSizeFor } from '../src/shared/storage/multipartUpload';

test('8 MiB parts, larger only when a file would need more than 9,000 of them (S3 allows 10,000)', () => {
  const MiB = 1024 * 1024;
  expect(partSizeFor(81 * 1e6)).toBe(8 * MiB);
  expect(partSizeFor(9_000 * 8 * MiB)).toBe(8 * MiB);
  for (const bytes of [80e9, 200e9, 4e12]) {
    const part = partSizeFor(bytes);
    expect(part).toBeGreaterThan(8 * MiB);
    expect(Math.ceil(bytes / part)).toBeLessThanOrEqual(9_000);
  }
});
