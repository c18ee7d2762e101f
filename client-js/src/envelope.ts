/**
 * Redis envelopes (SPEC section 11): the hub's decoder, for symmetry with
 * the C library and for tests; a browser never sees an envelope.
 */

import { ProtocolError } from './errors.js';
import { decodeInvalidation } from './invalidation.js';
import type { InvalidationList } from './invalidation.js';
import { refProblem } from './frame.js';
import { isInteger, isJsonObject, member, parseJson } from './json.js';
import type { JsonObject, JsonValue } from './json.js';
import { nameProblem, utf8Length } from './text.js';
import { LIMITS, normalizeParams, put } from './values.js';
import type { Params } from './values.js';

/** The envelope kinds this version knows; others are `unknown_kind`. */
export const KINDS = ['invalidate', 'message', 'logout', 'disconnect', 'canary', 'reply', 'send', 'close', 'registry', 'presence', 'post'] as const;

export type Kind = (typeof KINDS)[number];

interface Base {
  v: 1;
  /** the publisher's Unix time in milliseconds (fractions allowed) */
  ts?: number;
}

export interface InvalidateEnvelope extends Base {
  kind: 'invalidate';
  invalidate: InvalidationList;
  /** context → version `E:N` after the event */
  versions: { [context: string]: string };
}

export interface MessageEnvelope extends Base {
  kind: 'message';
  channel: string;
  params: Params;
  type: string;
  data: JsonValue;
  seq: number;
  epoch: string;
}

export interface LogoutEnvelope extends Base {
  kind: 'logout';
  /** sha256 hex of the session key */
  session: string;
}

export interface DisconnectEnvelope extends Base {
  kind: 'disconnect';
  sub: string;
  /** default `""` */
  reason: string;
}

export interface CanaryEnvelope extends Base {
  kind: 'canary';
  hub: string;
  nonce: string;
}

export interface RegistryEnvelope extends Base {
  kind: 'registry';
  /** the version of the registry just stored at {prefix}registry */
  version: string;
}

export interface ReplyEnvelope extends Base {
  kind: 'reply';
  conn: string;
  frame: JsonObject;
}

export interface SendEnvelope extends Base {
  kind: 'send';
  conn: string;
  frame: JsonObject;
}

export interface CloseEnvelope extends Base {
  kind: 'close';
  conn: string;
  code: number;
  /** at most 123 bytes, default `""` */
  reason: string;
}

/** A presence member (SPEC 11.2); `info` only when the member's token carried one. */
export interface PresenceMember {
  conn: string;
  sub: string | null;
  info?: JsonValue;
}

export interface PresenceEnvelope extends Base {
  kind: 'presence';
  op: 'join' | 'leave';
  channel: string;
  params: Params;
  member: PresenceMember;
}

/** A stream's POST that reached another hub process than the stream's (SPEC 6.1). */
export interface PostEnvelope extends Base {
  kind: 'post';
  conn: string;
  /** the stream's secret: 32 lower-case hex digits */
  secret: string;
  /** the POST's number (1, 2, ... per stream), absent when it had none */
  n?: number;
  /** browser frames, one per line */
  body: string;
}

/** A normalized envelope: known fields only, `message` defaults filled in. */
export type Envelope =
  | InvalidateEnvelope
  | MessageEnvelope
  | LogoutEnvelope
  | DisconnectEnvelope
  | CanaryEnvelope
  | ReplyEnvelope
  | SendEnvelope
  | CloseEnvelope
  | RegistryEnvelope
  | PresenceEnvelope
  | PostEnvelope;

const VERSION = /^[0-9a-z]{1,32}:(0|[1-9][0-9]{0,15})$/;
const EPOCH = /^[0-9a-z]{1,32}$/;
const SESSION = /^[0-9a-f]{64}$/;
const SECRET = /^[0-9a-f]{32}$/;

function bad(detail: string): never {
  throw new ProtocolError('bad_envelope', detail);
}

function isKind(s: string): s is Kind {
  return (KINDS as readonly string[]).includes(s);
}

/** An integer field within [min, max] (`2.0` is 2), or undefined when absent. */
function readInteger(o: JsonObject, key: string, min: number, max: number): number | undefined {
  const v = member(o, key);
  if (v === undefined) return undefined;
  if (!isInteger(v) || v < min || v > max) return bad(`"${key}" is not an integer from ${min} to ${max}`);
  return v;
}

/**
 * A string field of `min` to `max` UTF-8 bytes (SPEC section 11's "String
 * fields"); undefined when absent and not `required`.
 */
function readString(o: JsonObject, key: string, min: number, max: number, required: true): string;
function readString(o: JsonObject, key: string, min: number, max: number, required: false): string | undefined;
function readString(o: JsonObject, key: string, min: number, max: number, required: boolean): string | undefined {
  const v = member(o, key);
  if (v === undefined) {
    if (required) bad(`"${key}" is missing`);
    return undefined;
  }
  if (typeof v !== 'string') return bad(`"${key}" is not a string`);
  const n = utf8Length(v);
  if (n < min || n > max) bad(`"${key}" is ${n} bytes, not ${min} to ${max}`);
  if (v.includes('\u0000')) bad(`"${key}" contains U+0000`);
  return v;
}

/** A NAME field (SPEC section 1): 1-128 bytes, no control character; undefined when absent. */
function readName(o: JsonObject, key: string): string | undefined {
  const v = readString(o, key, 0, Infinity, false);
  if (v === undefined) return undefined;
  const problem = nameProblem(v, LIMITS.name);
  if (problem !== null) bad(`"${key}" ${JSON.stringify(v)} ${problem}`);
  return v;
}

/** `conn`: 1-128 bytes. */
function readConn(o: JsonObject): string {
  return readString(o, 'conn', 1, 128, true);
}

/** `reason` of `disconnect` and `close`: 0-123 bytes (the WebSocket limit), default `""`. */
function readReason(o: JsonObject): string {
  return readString(o, 'reason', 0, LIMITS.closeReason, false) ?? '';
}

function readFrame(o: JsonObject): JsonObject {
  const f = member(o, 'frame');
  if (!isJsonObject(f)) return bad('"frame" is not an object');
  return f;
}

function decodeInvalidate(o: JsonObject, base: Base): InvalidateEnvelope {
  let list: InvalidationList;
  try {
    list = decodeInvalidation(member(o, 'invalidate'));
  } catch (e) {
    if (e instanceof ProtocolError) bad(`"invalidate" breaks SPEC section 2: ${e.message}`);
    throw e;
  }
  if (list.length === 0) bad('"invalidate" is empty');
  const given = member(o, 'versions');
  if (!isJsonObject(given)) return bad('"versions" is not an object');
  const versions: { [context: string]: string } = {};
  for (const name of Object.keys(given)) {
    const version = given[name];
    if (typeof version !== 'string' || !VERSION.test(version)) bad(`version of ${JSON.stringify(name)} is not E:N`);
    put(versions, name, version);
  }
  for (const entry of list) {
    const context = typeof entry === 'string' ? entry : entry.context;
    if (!Object.prototype.hasOwnProperty.call(versions, context)) {
      bad(`no version for context ${JSON.stringify(context)}`);
    }
  }
  return { ...base, kind: 'invalidate', invalidate: list, versions };
}

/** The longest `info`, written compactly (SPEC 11.2). */
const INFO_MAX = 1024;

/** A presence member object (SPEC 11.2); `where` names it in errors. */
export function readMember(m: JsonValue | undefined, where: string): PresenceMember {
  if (!isJsonObject(m)) return bad(`"${where}" is not an object`);
  const conn = readConn(m);
  const sub = member(m, 'sub') === null ? null : readString(m, 'sub', 1, 256, true);
  const out: PresenceMember = { conn, sub };
  const info = member(m, 'info');
  if (info !== undefined) {
    if (info === null || utf8Length(JSON.stringify(info)) > INFO_MAX) {
      bad(`"info" is not JSON other than null of at most ${INFO_MAX} bytes`);
    }
    out.info = info;
  }
  return out;
}

function decodePresence(o: JsonObject, base: Base): PresenceEnvelope {
  const op = member(o, 'op');
  if (op !== 'join' && op !== 'leave') return bad('"op" is not "join" or "leave"');
  const { channel, params } = readChannel(o);
  return { ...base, kind: 'presence', op, channel, params, member: readMember(member(o, 'member'), 'member') };
}

/** `channel` and `params` of a message or presence envelope. */
function readChannel(o: JsonObject): { channel: string; params: Params } {
  const channel = readName(o, 'channel');
  if (channel === undefined) return bad('"channel" is missing');
  const p = member(o, 'params');
  let params: Params = {};
  if (p !== undefined) {
    if (!isJsonObject(p)) bad('"params" is not an object');
    try {
      params = normalizeParams(p, null);
    } catch (e) {
      if (e instanceof ProtocolError) bad(`"params" breaks SPEC section 1: ${e.message}`);
      throw e;
    }
  }
  return { channel, params };
}

function decodeMessage(o: JsonObject, base: Base): MessageEnvelope {
  const { channel, params } = readChannel(o);
  const type = readName(o, 'type') ?? 'message';
  const data = member(o, 'data');
  const seq = readInteger(o, 'seq', 1, Number.MAX_SAFE_INTEGER);
  if (seq === undefined) bad('"seq" is missing');
  const epoch = readString(o, 'epoch', 1, 32, true);
  if (!EPOCH.test(epoch)) bad('"epoch" is not 1-32 characters of [0-9a-z]');
  return { ...base, kind: 'message', channel, params, type, data: data ?? null, seq, epoch };
}

/**
 * Decodes an envelope from `mizan:events` or `mizan:hub:{id}` (SPEC section
 * 11) and returns it normalized: known fields only, `invalidate` lists and
 * message `params` normalized, message defaults filled in.
 *
 * Throws a `ProtocolError` without a place: `bad_json`, `too_large` (nested
 * deeper than 64 levels), `unknown_kind` (a kind this version does not know:
 * log and ignore), `bad_envelope` (anything else).
 */
export function decodeEnvelope(text: string): Envelope {
  if (typeof text !== 'string') bad('an envelope is text');
  const o = parseJson(text, LIMITS.depth);
  if (!isJsonObject(o)) return bad('an envelope is a JSON object');
  if (readInteger(o, 'v', 1, 1) === undefined) bad('"v" is missing');
  const kind = member(o, 'kind');
  if (typeof kind !== 'string') return bad('"kind" is missing or not a string');
  if (!isKind(kind)) throw new ProtocolError('unknown_kind', `unknown kind ${JSON.stringify(kind)}`);
  const base: Base = { v: 1 };
  const ts = member(o, 'ts');
  if (ts !== undefined) {
    if (typeof ts !== 'number' || ts < 0) bad('"ts" is not a non-negative number');
    base.ts = ts;
  }

  switch (kind) {
    case 'invalidate':
      return decodeInvalidate(o, base);
    case 'message':
      return decodeMessage(o, base);
    case 'presence':
      return decodePresence(o, base);
    case 'logout': {
      const session = readString(o, 'session', 64, 64, true);
      if (!SESSION.test(session)) bad('"session" is not 64 lower-case hex digits');
      return { ...base, kind, session };
    }
    case 'disconnect':
      return { ...base, kind, sub: readString(o, 'sub', 1, 256, true), reason: readReason(o) };
    case 'canary':
      return { ...base, kind, hub: readString(o, 'hub', 1, 64, true), nonce: readString(o, 'nonce', 1, 64, true) };
    case 'registry':
      return { ...base, kind, version: readString(o, 'version', 1, 64, true) };
    case 'reply': {
      const conn = readConn(o);
      const frame = readFrame(o);
      const problem = refProblem(member(frame, 'id'), 'id');
      if (problem !== null) bad(`the reply frame's ${problem}`);
      return { ...base, kind, conn, frame };
    }
    case 'send':
      return { ...base, kind, conn: readConn(o), frame: readFrame(o) };
    case 'post': {
      const conn = readConn(o);
      const secret = readString(o, 'secret', 32, 32, true);
      if (!SECRET.test(secret)) bad('"secret" is not 32 lower-case hex digits');
      const n = readInteger(o, 'n', 1, Number.MAX_SAFE_INTEGER);
      const body = readString(o, 'body', 1, 1 << 20, true);
      return n === undefined ? { ...base, kind, conn, secret, body } : { ...base, kind, conn, secret, n, body };
    }
    case 'close': {
      const conn = readConn(o);
      const code = readInteger(o, 'code', 4000, 4999);
      if (code === undefined) bad('"code" is missing');
      return { ...base, kind, conn, code, reason: readReason(o) };
    }
  }
}
