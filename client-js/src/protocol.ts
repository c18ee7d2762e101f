/**
 * @mizan/hub-client/protocol: every protocol codec shared with the C library
 * (`protocol/`) and the Django app, checked by `protocol/vectors/*.json`,
 * including the hub-side decoders (browser frames, Redis envelopes) a
 * browser does not need. SPEC: `protocol/SPEC.md`.
 */

export { ProtocolError } from './errors.js';
export type { ErrorCode, ErrorPlace } from './errors.js';

export { LIMITS, valueString } from './values.js';
export type { ParamValue, Params, ParamsInput } from './values.js';

export { decodeInvalidation } from './invalidation.js';
export type { Entry, EntryInput, InvalidationList, NormalizedScope, Scope, ScopedEntry } from './invalidation.js';

export { BUCKETS, bucket, canonicalKey, fnv1a32, matches } from './key.js';

export { INVALIDATE_HEADER, decodeHeader, encodeHeader } from './header.js';

export { invalidationsFrom } from './from.js';
export type { HeadersLike, InvalidationBody, InvalidationSource } from './from.js';

export { VERSION_HEADER, versionFrom } from './version.js';
export type { VersionSource } from './version.js';

export { compareCodePoints } from './text.js';

export type { JsonObject, JsonValue } from './json.js';

export { ACTIONS, decodeFrame } from './frame.js';
export type {
  Action,
  AuthFrame,
  CtxFrame,
  Frame,
  MessageFrame,
  PingFrame,
  Ref,
  RpcFrame,
  SubscribeFrame,
  Target,
  UnsubscribeFrame,
} from './frame.js';

export { KINDS, decodeEnvelope } from './envelope.js';
export type {
  CanaryEnvelope,
  CloseEnvelope,
  DisconnectEnvelope,
  Envelope,
  InvalidateEnvelope,
  Kind,
  LogoutEnvelope,
  MessageEnvelope,
  ReplyEnvelope,
  SendEnvelope,
} from './envelope.js';
