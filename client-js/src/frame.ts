/**
 * Browser → hub frames (SPEC section 7): the decoder the hub applies, so the
 * client can check what it sends.
 */

import { ProtocolError } from './errors.js';
import type { ErrorCode } from './errors.js';
import { isInteger, isJsonObject, member, parseJson } from './json.js';
import type { JsonObject, JsonValue } from './json.js';
import { utf8Length } from './text.js';
import { LIMITS, checkName, normalizeParams } from './values.js';
import type { Params } from './values.js';

/** `ref` and rpc `id`: a string of 1 to 64 bytes, or an integer (integral, at most 2^53 - 1 in magnitude). */
export type Ref = string | number;

/** The actions of SPEC section 7. */
export const ACTIONS = ['auth', 'refresh', 'subscribe', 'unsubscribe', 'message', 'rpc', 'ctx', 'ping', 'presence'] as const;

export type Action = (typeof ACTIONS)[number];

interface WithRef {
  ref?: Ref;
}

/** Exactly one of `context` and `channel`. */
export type Target = { context: string; channel?: never } | { channel: string; context?: never };

export interface AuthFrame extends WithRef {
  action: 'auth' | 'refresh';
  token: string;
}

export type SubscribeFrame = WithRef &
  Target & {
    action: 'subscribe';
    params: Params;
    since?: string;
    token?: string;
  };

export type UnsubscribeFrame = WithRef &
  Target & {
    action: 'unsubscribe';
    params: Params;
  };

export interface MessageFrame extends WithRef {
  action: 'message';
  channel: string;
  params: Params;
  data: JsonValue;
}

export interface RpcFrame extends WithRef {
  action: 'rpc';
  id: Ref;
  fn: string;
  args: JsonObject | JsonValue[];
}

export interface CtxFrame extends WithRef {
  action: 'ctx';
  id: Ref;
  context: string;
  params: Params;
}

export interface PingFrame extends WithRef {
  action: 'ping';
}

/** A presence query (SPEC 11.2). */
export interface PresenceFrame extends WithRef {
  action: 'presence';
  channel: string;
  params: Params;
}

/** A normalized browser frame: defaults filled in, param values in their string form. */
export type Frame = AuthFrame | SubscribeFrame | UnsubscribeFrame | MessageFrame | RpcFrame | CtxFrame | PingFrame | PresenceFrame;

function fail(code: ErrorCode, detail: string): never {
  throw new ProtocolError(code, detail);
}

function isAction(s: string): s is Action {
  return (ACTIONS as readonly string[]).includes(s);
}

function has(o: JsonObject, key: string): boolean {
  return Object.prototype.hasOwnProperty.call(o, key);
}

/** Why `v`, member `key` of something, is not a `ref`/`id`, or null when it is one. */
export function refProblem(v: JsonValue | undefined, key: string): string | null {
  if (typeof v === 'string') {
    const n = utf8Length(v);
    if (n === 0) return `"${key}" is an empty string`;
    if (n > LIMITS.ref) return `"${key}" is ${n} bytes, over ${LIMITS.ref}`;
    return null;
  }
  if (typeof v === 'number') {
    // Beyond 2^53 an integer would not come back as it was written.
    return isInteger(v) ? null : `"${key}" is not an integer of magnitude at most 2^53 - 1`;
  }
  return `"${key}" is neither a string nor an integer`;
}

/** A `ref` or `id` field, or undefined when absent; `bad_frame` when invalid. */
function readRef(o: JsonObject, key: string): Ref | undefined {
  const v = member(o, key);
  if (v === undefined) return undefined;
  const problem = refProblem(v, key);
  if (problem !== null) fail('bad_frame', problem);
  return v as Ref;
}

/** A required NAME field: `bad_frame` when missing or not a string, `bad_name` when invalid. */
function readName(o: JsonObject, key: string): string {
  const v = member(o, key);
  if (v === undefined) fail('bad_frame', `"${key}" is missing`);
  if (typeof v !== 'string') fail('bad_frame', `"${key}" is not a string`);
  return checkName(v, null, key);
}

function readParams(o: JsonObject): Params {
  const v = member(o, 'params');
  if (v === undefined) return {};
  if (!isJsonObject(v)) return fail('bad_frame', '"params" is not an object');
  return normalizeParams(v, null);
}

/** A token field: a non-empty string of at most 8192 bytes. */
function readToken(o: JsonObject, required: true): string;
function readToken(o: JsonObject, required: false): string | undefined;
function readToken(o: JsonObject, required: boolean): string | undefined {
  const v = member(o, 'token');
  if (v === undefined) {
    if (required) fail('bad_frame', '"token" is missing');
    return undefined;
  }
  if (typeof v !== 'string') return fail('bad_frame', '"token" is not a string');
  if (v.length === 0) fail('bad_frame', '"token" is empty');
  const n = utf8Length(v);
  if (n > LIMITS.token) fail('too_large', `"token" is ${n} bytes, over ${LIMITS.token}`);
  return v;
}

function readTarget(o: JsonObject): Target {
  const hasContext = has(o, 'context');
  if (hasContext === has(o, 'channel')) fail('bad_frame', 'exactly one of "context" and "channel" is required');
  return hasContext ? { context: readName(o, 'context') } : { channel: readName(o, 'channel') };
}

function withRef<F extends WithRef>(frame: F, ref: Ref | undefined): F {
  if (ref !== undefined) frame.ref = ref;
  return frame;
}

/**
 * Decodes a browser → hub frame exactly as the hub does (SPEC section 7)
 * and returns it normalized: `params` defaults to `{}` and holds string
 * forms, `data` defaults to `null`, `args` to `{}`; unknown keys are dropped.
 *
 * Throws a `ProtocolError` without a place: `bad_json` (not JSON text, or
 * breaking SPEC section 1's JSON rules), `bad_frame` (not an object, a
 * missing or mistyped field, both or neither of `context`/`channel`),
 * `unknown_action`, `bad_name`, `bad_param`, `too_large` (over a limit,
 * nested deeper than 64 levels).
 */
export function decodeFrame(text: string): Frame {
  if (typeof text !== 'string') fail('bad_frame', 'a frame is text');
  const o = parseJson(text, LIMITS.depth);
  if (!isJsonObject(o)) return fail('bad_frame', 'a frame is a JSON object');
  const action = member(o, 'action');
  if (typeof action !== 'string') return fail('bad_frame', '"action" is missing or not a string');
  if (!isAction(action)) return fail('unknown_action', `unknown action ${JSON.stringify(action)}`);
  const ref = readRef(o, 'ref');

  switch (action) {
    case 'auth':
    case 'refresh': {
      const frame: AuthFrame = { action, token: readToken(o, true) };
      return withRef(frame, ref);
    }

    case 'subscribe': {
      const target = readTarget(o);
      const frame: SubscribeFrame = { action, ...target, params: readParams(o) };
      const since = member(o, 'since');
      if (since !== undefined) {
        if (typeof since !== 'string') return fail('bad_frame', '"since" is not a string');
        const n = utf8Length(since);
        if (n > LIMITS.since) fail('too_large', `"since" is ${n} bytes, over ${LIMITS.since}`);
        frame.since = since;
      }
      const token = readToken(o, false);
      if (token !== undefined) frame.token = token;
      return withRef(frame, ref);
    }

    case 'unsubscribe': {
      const target = readTarget(o);
      const frame: UnsubscribeFrame = { action, ...target, params: readParams(o) };
      return withRef(frame, ref);
    }

    case 'message': {
      const channel = readName(o, 'channel');
      const frame: MessageFrame = { action, channel, params: readParams(o), data: member(o, 'data') ?? null };
      return withRef(frame, ref);
    }

    case 'rpc': {
      const id = readRef(o, 'id');
      if (id === undefined) fail('bad_frame', '"id" is missing');
      const fn = readName(o, 'fn');
      const given = member(o, 'args');
      const args = given === undefined ? {} : given; // not `??`: null is present, and wrong
      if (typeof args !== 'object' || args === null) return fail('bad_frame', '"args" is neither an object nor an array');
      const frame: RpcFrame = { action, id, fn, args };
      return withRef(frame, ref);
    }

    case 'ctx': {
      const id = readRef(o, 'id');
      if (id === undefined) fail('bad_frame', '"id" is missing');
      const context = readName(o, 'context');
      const frame: CtxFrame = { action, id, context, params: readParams(o) };
      return withRef(frame, ref);
    }

    case 'ping': {
      const frame: PingFrame = { action };
      return withRef(frame, ref);
    }

    case 'presence': {
      const channel = readName(o, 'channel');
      const frame: PresenceFrame = { action, channel, params: readParams(o) };
      return withRef(frame, ref);
    }
  }
}
