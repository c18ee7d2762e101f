/**
 * The one error type of the codecs (SPEC sections 1-5, 7, 9, 11).
 */

/** Error codes the codecs report (SPEC section 9). */
export type ErrorCode =
  | 'bad_json'
  | 'bad_frame'
  | 'unknown_action'
  | 'bad_name'
  | 'bad_param'
  | 'bad_invalidation'
  | 'bad_header'
  | 'too_large'
  | 'bad_envelope'
  | 'unknown_kind';

/** Where an error is: `pos` for header values, `path` for JSON lists. */
export interface ErrorPlace {
  /** 0-based byte offset in an `X-Mizan-Invalidate` value. */
  pos?: number;
  /** JSON-pointer-like path in a JSON value (`/0/params/a~1b`; `""` is the root). */
  path?: string;
}

/**
 * A protocol violation. `code` is the SPEC section 9 code; `pos` is set by
 * the header decoder, `path` by the JSON list decoders; frames and envelopes
 * carry neither (the hub reports them by code only).
 */
export class ProtocolError extends Error {
  override readonly name = 'ProtocolError';
  readonly code: ErrorCode;
  declare readonly pos?: number;
  declare readonly path?: string;

  constructor(code: ErrorCode, detail: string, place?: ErrorPlace) {
    let where = '';
    if (place?.pos !== undefined) where += ` (pos ${place.pos})`;
    if (place?.path !== undefined) where += ` (path ${JSON.stringify(place.path)})`;
    super(`${code}: ${detail}${where}`);
    this.code = code;
    // Only the fields that apply exist, so `'pos' in err` says whether it has one.
    for (const k of ['pos', 'path'] as const) {
      if (place?.[k] !== undefined) Object.defineProperty(this, k, { value: place[k], enumerable: true });
    }
  }
}

/** Builds an error at `path`, or without a place when `path` is null. */
export function errorAt(code: ErrorCode, path: string | null, detail: string): ProtocolError {
  return path === null ? new ProtocolError(code, detail) : new ProtocolError(code, detail, { path });
}
