import type { DescMessage } from '@bufbuild/protobuf';
import { BinaryReader, WireType } from '@bufbuild/protobuf/wire';

/** The range of google.protobuf.Timestamp: 0001-01-01T00:00:00Z to 9999-12-31T23:59:59.999999999Z. */
const MIN_SECONDS = -62_135_596_800n;
const MAX_SECONDS = 253_402_300_799n;
const MAX_NANOS = 999_999_999;
const TIMESTAMP = 'google.protobuf.Timestamp';

/** For a message type: the fields that are, or lead to, a Timestamp, by field number. */
interface Route {
  readonly fields: ReadonlyMap<number, { readonly name: string; readonly next: Route | 'timestamp' }>;
}

/**
 * Checks every google.protobuf.Timestamp in an encoded message of type `schema` against the
 * Timestamp's documented range, reading the raw fields: the generated decoders turn a
 * Timestamp into a Date, which loses an out-of-range nanos and cannot hold years beyond
 * 275760. Only the fields that lead to a Timestamp are visited; everything else is skipped
 * unread, so the check costs little beside the decode. Returns undefined for a type that holds
 * no Timestamp at all (nothing to check); else a function that throws, naming the field.
 */
export function timestampCheck(schema: DescMessage): ((bytes: Uint8Array) => void) | undefined {
  const route = routeOf(schema, new Map());
  if (!route) return undefined;
  return (bytes) => {
    const reader = new BinaryReader(bytes);
    walk(reader, bytes.length, route, '');
  };
}

function routeOf(schema: DescMessage, seen: Map<string, Route | undefined>): Route | undefined {
  if (seen.has(schema.typeName)) return seen.get(schema.typeName); // a recursive type: its route so far
  seen.set(schema.typeName, undefined);
  const fields = new Map<number, { name: string; next: Route | 'timestamp' }>();
  for (const field of schema.fields) {
    const type = field.fieldKind === 'message' || (field.fieldKind === 'list' && field.listKind === 'message') ? field.message : undefined;
    if (!type) continue;
    const next = type.typeName === TIMESTAMP ? 'timestamp' : routeOf(type, seen);
    if (next) fields.set(field.number, { name: field.name, next });
  }
  const route = fields.size > 0 ? { fields } : undefined;
  seen.set(schema.typeName, route);
  return route;
}

function walk(reader: BinaryReader, end: number, route: Route, path: string): void {
  while (reader.pos < end) {
    const [number, wireType] = reader.tag();
    const field = route.fields.get(number);
    if (!field || wireType !== WireType.LengthDelimited) {
      reader.skip(wireType, number);
      continue;
    }
    const length = reader.uint32();
    const fieldEnd = reader.pos + length;
    const at = path ? `${path}.${field.name}` : field.name;
    if (field.next === 'timestamp') checkTimestamp(reader, fieldEnd, at);
    else walk(reader, fieldEnd, field.next, at);
    reader.pos = fieldEnd;
  }
}

function checkTimestamp(reader: BinaryReader, end: number, path: string): void {
  let seconds = 0n;
  let nanos = 0;
  while (reader.pos < end) {
    const [number, wireType] = reader.tag();
    if (number === 1 && wireType === WireType.Varint) seconds = BigInt(reader.int64());
    else if (number === 2 && wireType === WireType.Varint) nanos = reader.int32();
    else reader.skip(wireType, number);
  }
  if (seconds < MIN_SECONDS || seconds > MAX_SECONDS) {
    throw new Error(`${path}: seconds ${seconds} lies outside 0001-01-01T00:00:00Z to 9999-12-31T23:59:59Z`);
  }
  if (nanos < 0 || nanos > MAX_NANOS) throw new Error(`${path}: nanos ${nanos} lies outside 0 to ${MAX_NANOS}`);
}
