// The TypeScript side of the differential run (tests/diff/run): the built
// client-js codecs (client-js/dist, `npm run build`), one request a line on
// stdin, one answer a line on stdout, as tests/diff/worker.c.
import { createInterface } from 'node:readline';

const dist = new URL('../../client-js/dist/', import.meta.url);
const { ProtocolError } = await import(new URL('errors.js', dist));
const { parseJson, isJsonObject, member } = await import(new URL('json.js', dist));
const { LIMITS, valueString } = await import(new URL('values.js', dist));
const { decodeInvalidation } = await import(new URL('invalidation.js', dist));
const { canonicalKey, bucket, matches } = await import(new URL('key.js', dist));
const { decodeHeader, encodeHeader } = await import(new URL('header.js', dist));
const { decodeFrame } = await import(new URL('frame.js', dist));
const { decodeEnvelope } = await import(new URL('envelope.js', dist));

function error(e, stage) {
  if (!(e instanceof ProtocolError)) return { crash: String(e && e.stack ? e.stack : e) };
  const out = { err: e.code };
  if (e.path !== undefined) out.path = e.path;
  if (e.pos !== undefined) out.pos = e.pos;
  out.stage = stage;
  return out;
}

function jsonOp(op, text) {
  let v;
  try {
    v = parseJson(text, LIMITS.depth);
  } catch (e) {
    return error(e, 'parse');
  }
  try {
    switch (op) {
      case 'key': {
        if (!isJsonObject(v)) return { err: 'bad_invalidation', path: '', stage: 'api' };
        const key = canonicalKey(member(v, 'context'), member(v, 'params'));
        return { ok: { key, bucket: bucket(key) } };
      }
      case 'match':
        if (!isJsonObject(v)) return { err: 'not_object', stage: 'worker' };
        return { ok: matches(member(v, 'entry'), member(v, 'subscription')) };
      case 'inval':
        return { ok: decodeInvalidation(v) };
      case 'henc':
        return { ok: encodeHeader(v) };
      case 'rt': {
        const header = encodeHeader(v);
        try {
          return { ok: { header, json: decodeHeader(header) } };
        } catch (e) {
          return error(e, 'decode');
        }
      }
    }
  } catch (e) {
    return error(e, 'api');
  }
  return { err: 'unknown_op', stage: 'worker' };
}

function run(op, input) {
  if (op === 'key' || op === 'match' || op === 'inval' || op === 'henc' || op === 'rt') return jsonOp(op, input);
  try {
    if (op === 'hdec') return { ok: decodeHeader(input) };
    if (op === 'frame') return { ok: decodeFrame(input) };
    if (op === 'env') return { ok: decodeEnvelope(input) };
    if (op === 'nums') return { ok: JSON.parse(input).map((x) => valueString(x)) };
  } catch (e) {
    return error(e, 'api');
  }
  return { err: 'unknown_op', stage: 'worker' };
}

const rl = createInterface({ input: process.stdin, crlfDelay: Infinity });
for await (const line of rl) {
  let answer;
  try {
    const req = JSON.parse(line);
    answer = run(req.op, req.in);
  } catch (e) {
    answer = { crash: String(e) };
  }
  process.stdout.write(JSON.stringify(answer) + '\n');
}
