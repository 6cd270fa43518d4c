// A batch of vectors as one query parameter. For `vector`, PostgreSQL's binary array format:
// 1,536 floats per row as text would cost more to print and parse than everything else in a batch
// together. `halfvec` (over 2,000 dimensions) goes as a text array literal.
import { endianness } from 'node:os';

const LITTLE_ENDIAN = endianness() === 'LE';

/**
 * array_recv's layout: ndim, has-nulls flag, element type oid, then (length, lower bound) per
 * dimension, then each element as (byte length, vector_recv bytes). vector_recv reads int16
 * dimensions, int16 unused, then float4s, all in network byte order.
 */
export function binaryVectorArray(vectors: Float32Array[], vectorTypeOid: number): Buffer {
  const dims = vectors[0]?.length ?? 0;
  const elementBytes = 4 + dims * 4;
  const buffer = Buffer.allocUnsafe(20 + vectors.length * (4 + elementBytes));
  let at = buffer.writeInt32BE(1, 0);
  at = buffer.writeInt32BE(0, at);
  at = buffer.writeUInt32BE(vectorTypeOid, at);
  at = buffer.writeInt32BE(vectors.length, at);
  at = buffer.writeInt32BE(1, at);
  for (const vector of vectors) {
    if (vector.length !== dims) throw new Error(`vectors of one batch differ in length: ${vector.length} and ${dims}`);
    at = buffer.writeInt32BE(elementBytes, at);
    at = buffer.writeInt16BE(dims, at);
    at = buffer.writeInt16BE(0, at);
    // Copy the floats as the host holds them, then into network order in place: several times
    // faster than writing them one by one.
    Buffer.from(vector.buffer, vector.byteOffset, dims * 4).copy(buffer, at);
    if (LITTLE_ENDIAN) buffer.subarray(at, at + dims * 4).swap32();
    at += dims * 4;
  }
  return buffer;
}

export function textVectorArray(vectors: Float32Array[]): string {
  return `{${vectors.map((v) => `"[${Array.from(v).join(',')}]"`).join(',')}}`;
}
