/**
 * @mizan/hub-client: the browser runtime for mizan-hub (`connect`) and the
 * codecs it shares with a `fetch` response's invalidations. The full codec
 * set (header encoder, frame and envelope decoders) is in
 * `@mizan/hub-client/protocol`; React hooks in `@mizan/hub-client/react`.
 * SPEC: `protocol/SPEC.md`.
 */

export { RpcError, connect } from './client.js';
export type {
  AbortSignalLike,
  CallOptions,
  Channel,
  ChannelMessage,
  CloseInfo,
  ConnectOptions,
  Gap,
  HubClient,
  HubError,
  Identity,
  InvalidationEvent,
  InvalidationListener,
  RpcErrorCode,
  State,
  SubscribeOptions,
  Transport,
  Welcome,
} from './client.js';
export type { Handler, SocketConstructor, SocketLike } from './socket.js';
export type { EventSourceConstructor, EventSourceLike, FetchLike } from './sse.js';

export type { PresenceMember } from './envelope.js';

export { ProtocolError } from './errors.js';
export type { ErrorCode, ErrorPlace } from './errors.js';

export { invalidationsFrom } from './from.js';
export type { HeadersLike, InvalidationBody, InvalidationSource } from './from.js';

export { decodeInvalidation } from './invalidation.js';
export type { Entry, EntryInput, InvalidationList, Scope, ScopedEntry } from './invalidation.js';

export { canonicalKey } from './key.js';

export type { ParamValue, Params, ParamsInput } from './values.js';
