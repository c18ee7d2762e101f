/**
 * Behaviour the vectors do not pin down: JavaScript-only inputs (lone
 * surrogates, NaN, undefined, inherited and __proto__ names), the strict JSON
 * parser, invalidationsFrom, ProtocolError's shape.
 */

import assert from 'node:assert/strict';
import { test } from 'node:test';

import {
  ProtocolError,
  canonicalKey,
  decodeEnvelope,
  decodeFrame,
  decodeHeader,
  decodeInvalidation,
  encodeHeader,
  invalidationsFrom,
  matches,
  valueString,
} from '@mizan/hub-client/protocol';
import type { ParamsInput } from '@mizan/hub-client/protocol';

/** Asserts that `fn` throws a ProtocolError with exactly these fields. */
function throwsProtocol(fn: () => unknown, want: { code: string; pos?: number; path?: string }): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof ProtocolError, `not a ProtocolError: ${String(e)}`);
    const got: { code: string; pos?: number; path?: string } = { code: e.code };
    if (e.pos !== undefined) got.pos = e.pos;
    if (e.path !== undefined) got.path = e.path;
    assert.deepStrictEqual(got, want, e.message);
    return true;
  });
}

test('ProtocolError: an Error with code and only the place fields that apply', () => {
  try {
    decodeHeader('a b');
    assert.fail('no error');
  } catch (e) {
    assert.ok(e instanceof Error && e instanceof ProtocolError);
    assert.equal(e.name, 'ProtocolError');
    assert.equal(e.code, 'bad_header');
    assert.equal(e.pos, 2);
    assert.ok(!('path' in e));
    assert.match(e.message, /^bad_header: .*\(pos 2\)$/);
  }
  try {
    decodeFrame('{"action":"nope"}');
    assert.fail('no error');
  } catch (e) {
    assert.ok(e instanceof ProtocolError);
    assert.ok(!('pos' in e) && !('path' in e));
  }
});

test('valueString: JavaScript values JSON cannot carry are bad_param', () => {
  for (const v of [Number.NaN, Number.POSITIVE_INFINITY, undefined, 1n, Symbol('s'), () => 1, new Date(0)]) {
    throwsProtocol(() => valueString(v), { code: 'bad_param', path: '' });
  }
  assert.equal(valueString(-0), '0');
  assert.equal(valueString(1e21), '1e+21');
});

test('decodeInvalidation: lone surrogates are not text', () => {
  throwsProtocol(() => decodeInvalidation(['a\uD800']), { code: 'bad_name', path: '/0' });
  throwsProtocol(() => decodeInvalidation([{ context: 'x', params: { '\uDC00': '1' } }]), {
    code: 'bad_name',
    path: '/0/params/\uDC00',
  });
  throwsProtocol(() => decodeInvalidation([{ context: 'x', params: { k: '\uD83D' } }]), {
    code: 'bad_param',
    path: '/0/params/k',
  });
  // A pair is fine, and counts 4 bytes: 32 emoji are 128 bytes, 33 are too many.
  assert.deepStrictEqual(decodeInvalidation(['😀'.repeat(32)]), ['😀'.repeat(32)]);
  throwsProtocol(() => decodeInvalidation(['😀'.repeat(33)]), { code: 'bad_name', path: '/0' });
});

test('decodeInvalidation: undefined params is absent, undefined values and holes are errors', () => {
  assert.deepStrictEqual(decodeInvalidation([{ context: 'x', params: undefined }]), [{ context: 'x', params: {} }]);
  throwsProtocol(() => decodeInvalidation([{ context: 'x', params: { k: undefined } }]), {
    code: 'bad_param',
    path: '/0/params/k',
  });
  // eslint-disable-next-line no-sparse-arrays
  throwsProtocol(() => decodeInvalidation(['a', , 'b']), { code: 'bad_invalidation', path: '/1' });
  throwsProtocol(() => decodeInvalidation([new Map([['context', 'x']])]), { code: 'bad_invalidation', path: '/0' });
});

test('__proto__ is an ordinary param name and pollutes nothing', () => {
  const input: unknown = JSON.parse('[{"context":"x","params":{"__proto__":"1","a":"2"}}]');
  const [entry] = decodeInvalidation(input);
  assert.ok(entry !== undefined && typeof entry !== 'string');
  assert.equal(Object.getPrototypeOf(entry.params), Object.prototype);
  assert.deepStrictEqual(Object.keys(entry.params), ['__proto__', 'a']);
  assert.equal(entry.params['__proto__'], '1');
  assert.equal(({} as Record<string, unknown>)['a'], undefined);
  assert.equal(canonicalKey('x', entry.params), '["x",{"__proto__":"1","a":"2"}]');
  assert.deepStrictEqual(decodeHeader('x;__proto__=1;a=2'), [entry]);
  assert.equal(encodeHeader([entry]), 'x;__proto__=1;a=2');

  const frame = decodeFrame('{"action":"message","channel":"c","data":{"__proto__":{"polluted":true}}}');
  assert.ok(frame.action === 'message');
  assert.deepStrictEqual(Object.keys(frame.data as object), ['__proto__']);
  assert.equal(({} as Record<string, unknown>)['polluted'], undefined);
});

test('matches: inherited property names are not params', () => {
  const sub = { context: 't', params: {} };
  for (const name of ['constructor', 'toString', '__proto__', 'hasOwnProperty']) {
    const params: ParamsInput = JSON.parse(`{${JSON.stringify(name)}:"x"}`);
    assert.equal(matches({ context: 't', params }, sub), false, name);
    assert.equal(matches({ context: 't', params }, { context: 't', params }), true, name);
  }
  throwsProtocol(() => matches({ context: 't', params: { k: [] as never } }, sub), {
    code: 'bad_param',
    path: '/entry/params/k',
  });
});

test('decodeHeader: a percent-encoded BOM is kept', () => {
  assert.deepStrictEqual(decodeHeader('%EF%BB%BFa'), ['\uFEFFa']);
  assert.deepStrictEqual(decodeHeader('x;k=%EF%BB%BF'), [{ context: 'x', params: { k: '\uFEFF' } }]);
});

test('decodeHeader: a param given twice after percent-decoding', () => {
  throwsProtocol(() => decodeHeader('a;%6B=1;k=2'), { code: 'bad_header', pos: 8 });
});

test('decodeHeader: 256 entries, then too_large at the 257th', () => {
  assert.equal(decodeHeader(Array(256).fill('c').join(',')).length, 256);
  throwsProtocol(() => decodeHeader(Array(257).fill('c').join(', ')), { code: 'too_large', pos: 256 * 3 });
});

test('decodeHeader: other syntax errors point at the offending token', () => {
  throwsProtocol(() => decodeHeader('a;k=1 ; '), { code: 'bad_header', pos: 8 });
  throwsProtocol(() => decodeHeader('a; ;'), { code: 'bad_header', pos: 3 });
  throwsProtocol(() => decodeHeader('a; ='), { code: 'bad_header', pos: 3 });
  throwsProtocol(() => decodeHeader('a,b c'), { code: 'bad_header', pos: 4 });
  throwsProtocol(() => decodeHeader('a;k=\u00e9'), { code: 'bad_header', pos: 4 });
  throwsProtocol(() => decodeHeader('a\uD800'), { code: 'bad_header', pos: 1 });
  assert.deepStrictEqual(decodeHeader('a;k= v'), [{ context: 'a', params: { k: 'v' } }]);
});

test('encodeHeader: refuses a value over 8192 bytes', () => {
  const list = Array.from({ length: 256 }, (_, i) => ({ context: 'c', params: { k: 'v'.repeat(30) + String(i) } }));
  throwsProtocol(() => encodeHeader(list), { code: 'too_large', path: '' });
});

test('invalidationsFrom: a response body, a pushed frame, headers and header values', () => {
  const want = ['notifications', { context: 'user', params: { user_id: '5' } }];
  assert.deepStrictEqual(
    invalidationsFrom({ result: 1, invalidate: ['notifications', { context: 'user', params: { user_id: 5 } }] }),
    want,
  );
  assert.deepStrictEqual(
    invalidationsFrom(
      JSON.parse(
        '{"invalidate":["notifications",{"context":"user","params":{"user_id":"5"}}],"versions":{"user":"k:1"},"reason":"gap"}',
      ),
    ),
    want,
  );
  assert.deepStrictEqual(invalidationsFrom({ result: 1 }), []);
  assert.deepStrictEqual(invalidationsFrom('notifications, user;user_id=5'), want);

  const headers = new Headers();
  assert.deepStrictEqual(invalidationsFrom(headers), []);
  headers.append('x-mizan-invalidate', 'notifications');
  headers.append('X-Mizan-Invalidate', 'user;user_id=5');
  assert.deepStrictEqual(invalidationsFrom(headers), want);
});

test('invalidationsFrom: errors carry paths into the body', () => {
  throwsProtocol(() => invalidationsFrom({ invalidate: ['a', 5] }), { code: 'bad_invalidation', path: '/invalidate/1' });
  throwsProtocol(() => invalidationsFrom({ invalidate: null }), { code: 'bad_invalidation', path: '/invalidate' });
  throwsProtocol(() => invalidationsFrom('a;'.repeat(1) + ';'), { code: 'bad_header', pos: 2 });
  for (const bad of [null, 5, ['a']]) {
    throwsProtocol(() => invalidationsFrom(bad as never), { code: 'bad_invalidation', path: '' });
  }
});

test('decodeFrame: strict JSON beyond the vectors', () => {
  const bad = [
    '\uFEFF{"action":"ping"}', // BOM
    '{"action":"ping","ref":"\uD800"}', // raw lone surrogate
    '{"action":"ping","ref":"\uDC00x"}',
    '{"action":"ping","ref":"\\udc00"}', // escaped lone low surrogate
    '{"action":"ping","ref":"\\ud83d\\u0041"}', // high surrogate, then not a low one
    '{"action":"ping","ref":-1e400}',
    '{"action":"ping","ref":01}',
    '{"action":"ping","ref":1.}',
    '{"action":"ping","ref":.5}',
    '{"action":"ping","ref":+1}',
    '{"action":"ping","ref":"a\tb"}', // raw control character in a string
    '{"action":"ping","ref":"\\x"}',
    '{"action":"ping",}',
    '{"action":"ping"',
    '{"action" "ping"}',
    '[1,]',
    'nul',
    '{"action":"ping"}\u00a0',
  ];
  for (const text of bad) throwsProtocol(() => decodeFrame(text), { code: 'bad_json' });
  assert.deepStrictEqual(decodeFrame('{"action":"message","channel":"c","data":[1e-400,-0.0,1E2]}'), {
    action: 'message',
    channel: 'c',
    params: {},
    data: [0, -0, 100],
  });
});

test('decodeFrame: an integer is an integral number of magnitude at most 2^53 - 1', () => {
  for (const [ref, want] of [
    ['-1', -1],
    ['1.0', 1],
    ['1e2', 100],
    ['-0', -0],
    ['9007199254740991', 9007199254740991],
    ['-9007199254740991', -9007199254740991],
  ] as const) {
    assert.deepStrictEqual(decodeFrame(`{"action":"ping","ref":${ref}}`), { action: 'ping', ref: want });
  }
  for (const ref of ['1.5', '1e-1', '9007199254740992', '-9007199254740992', '1e300', 'true', 'null', '""', '[]']) {
    throwsProtocol(() => decodeFrame(`{"action":"ping","ref":${ref}}`), { code: 'bad_frame' });
  }
  // The last duplicate decides.
  throwsProtocol(() => decodeFrame('{"action":"ping","ref":1,"ref":1.5}'), { code: 'bad_frame' });
  assert.deepStrictEqual(decodeFrame('{"action":"ping","ref":1.5,"ref":2}'), { action: 'ping', ref: 2 });
});

test('decodeFrame: null is a value, not an absent field', () => {
  throwsProtocol(() => decodeFrame('{"action":"rpc","id":1,"fn":"f","args":null}'), { code: 'bad_frame' });
  throwsProtocol(() => decodeFrame('{"action":"subscribe","context":null,"channel":"c"}'), { code: 'bad_frame' });
  throwsProtocol(() => decodeFrame('{"action":"subscribe","context":"a","since":null}'), { code: 'bad_frame' });
  throwsProtocol(() => decodeFrame('{"action":"ping","ref":null}'), { code: 'bad_frame' });
  assert.deepStrictEqual(decodeFrame('{"action":"message","channel":"c","data":null}'), {
    action: 'message',
    channel: 'c',
    params: {},
    data: null,
  });
});

test('decodeFrame: 64 levels of objects, not 65', () => {
  const nest = (n: number) => '{"a":'.repeat(n) + '1' + '}'.repeat(n);
  assert.equal(decodeFrame(`{"action":"message","channel":"c","data":${nest(63)}}`).action, 'message');
  throwsProtocol(() => decodeFrame(`{"action":"message","channel":"c","data":${nest(64)}}`), { code: 'too_large' });
});

test('decodeFrame accepts the frames JSON.stringify makes of the SPEC examples', () => {
  const cases: [object, object][] = [
    [
      { action: 'subscribe', context: 'user', params: { user_id: 5 }, ref: 1 },
      { action: 'subscribe', context: 'user', params: { user_id: '5' }, ref: 1 },
    ],
    [
      { action: 'subscribe', channel: 'chat', params: { room: 'lobby' }, since: 'm1x:17' },
      { action: 'subscribe', channel: 'chat', params: { room: 'lobby' }, since: 'm1x:17' },
    ],
    [
      { action: 'unsubscribe', context: 'user', params: { user_id: 5 } },
      { action: 'unsubscribe', context: 'user', params: { user_id: '5' } },
    ],
    [
      { action: 'message', channel: 'chat', params: { room: 'lobby' }, data: { text: 'hi' } },
      { action: 'message', channel: 'chat', params: { room: 'lobby' }, data: { text: 'hi' } },
    ],
    [
      { action: 'rpc', id: '7', fn: 'todos.add', args: { title: 'milk' } },
      { action: 'rpc', id: '7', fn: 'todos.add', args: { title: 'milk' } },
    ],
    [
      { action: 'ctx', id: 3, context: 'user', params: { user_id: 5 } },
      { action: 'ctx', id: 3, context: 'user', params: { user_id: '5' } },
    ],
    [{ action: 'auth', token: 'eyJ.e30.x' }, { action: 'auth', token: 'eyJ.e30.x' }],
    [{ action: 'ping', ref: 'p' }, { action: 'ping', ref: 'p' }],
  ];
  for (const [frame, want] of cases) assert.deepStrictEqual(decodeFrame(JSON.stringify(frame)), want);
});

test('decodeEnvelope: numbers, defaults and extra versions', () => {
  assert.deepStrictEqual(decodeEnvelope('{"v":1.0,"kind":"canary","hub":"h","nonce":"1"}'), {
    v: 1,
    kind: 'canary',
    hub: 'h',
    nonce: '1',
  });
  throwsProtocol(() => decodeEnvelope('{"v":1.5,"kind":"canary","hub":"h","nonce":"1"}'), { code: 'bad_envelope' });
  throwsProtocol(() => decodeEnvelope('{"v":"1","kind":"canary","hub":"h","nonce":"1"}'), { code: 'bad_envelope' });
  throwsProtocol(() => decodeEnvelope('{"v":1,"kind":"canary","hub":"h","nonce":"1","ts":"5"}'), {
    code: 'bad_envelope',
  });
  throwsProtocol(() => decodeEnvelope('{"v":1,"kind":"close","conn":"h.1","code":4005.5}'), { code: 'bad_envelope' });
  assert.deepStrictEqual(decodeEnvelope('{"v":1,"kind":"close","conn":"h.1","code":4005.0}'), {
    v: 1,
    kind: 'close',
    conn: 'h.1',
    code: 4005,
    reason: '',
  });
  throwsProtocol(() => decodeEnvelope('{"v":1,"kind":5}'), { code: 'bad_envelope' });
  throwsProtocol(() => decodeEnvelope('{"v":1,"kind":"invalidate","invalidate":["a"],"versions":{"a":"x:1","b":5}}'), {
    code: 'bad_envelope',
  });
  assert.deepStrictEqual(
    decodeEnvelope('{"v":1,"kind":"invalidate","invalidate":["a"],"versions":{"a":"x:1","b":"y:0"}}'),
    { v: 1, kind: 'invalidate', invalidate: ['a'], versions: { a: 'x:1', b: 'y:0' } },
  );
  throwsProtocol(() => decodeEnvelope(`{"v":1,"kind":"canary","x":${'['.repeat(64)}${']'.repeat(64)}}`), {
    code: 'too_large',
  });
});

test('decodeEnvelope: string field limits count UTF-8 bytes, not UTF-16 units', () => {
  const env = (fields: string) => `{"v":1,${fields}}`;
  // "é" is 2 bytes: 64 of them are 128 bytes (ok), 65 are 130 (over).
  assert.equal((decodeEnvelope(env(`"kind":"send","conn":"${'é'.repeat(64)}","frame":{}`)) as { conn: string }).conn, 'é'.repeat(64));
  throwsProtocol(() => decodeEnvelope(env(`"kind":"send","conn":"${'é'.repeat(65)}","frame":{}`)), { code: 'bad_envelope' });
  // "😀" is 4 bytes: 16 are 64 (ok), 17 are 68 (over).
  decodeEnvelope(env(`"kind":"canary","hub":"${'😀'.repeat(16)}","nonce":"1"`));
  throwsProtocol(() => decodeEnvelope(env(`"kind":"canary","hub":"${'😀'.repeat(17)}","nonce":"1"`)), { code: 'bad_envelope' });
  throwsProtocol(() => decodeEnvelope(env(`"kind":"canary","hub":"","nonce":"1"`)), { code: 'bad_envelope' });
  // reason: 0-123 bytes; 41 × "€" (3 bytes) = 123, 42 = 126.
  decodeEnvelope(env(`"kind":"close","conn":"c","code":4000,"reason":"${'€'.repeat(41)}"`));
  throwsProtocol(() => decodeEnvelope(env(`"kind":"close","conn":"c","code":4000,"reason":"${'€'.repeat(42)}"`)), { code: 'bad_envelope' });
  throwsProtocol(() => decodeEnvelope(env(`"kind":"disconnect","sub":"5","reason":"${'€'.repeat(42)}"`)), { code: 'bad_envelope' });
  decodeEnvelope(env(`"kind":"disconnect","sub":"${'s'.repeat(256)}"`));
  // type is a NAME: 128 bytes at most, no DEL.
  decodeEnvelope(env(`"kind":"message","channel":"c","type":"${'t'.repeat(128)}","seq":1,"epoch":"e"`));
  throwsProtocol(() => decodeEnvelope(env(`"kind":"message","channel":"c","type":"${'t'.repeat(129)}","seq":1,"epoch":"e"`)), { code: 'bad_envelope' });
  throwsProtocol(() => decodeEnvelope(env(`"kind":"message","channel":"c","type":"a\u007fb","seq":1,"epoch":"e"`)), { code: 'bad_envelope' });
  throwsProtocol(() => decodeEnvelope(env(`"kind":"message","channel":"c","type":5,"seq":1,"epoch":"e"`)), { code: 'bad_envelope' });
  // a reply's id: integer or 1-64 bytes.
  throwsProtocol(() => decodeEnvelope(env(`"kind":"reply","conn":"c","frame":{"id":"${'é'.repeat(33)}"}`)), { code: 'bad_envelope' });
  throwsProtocol(() => decodeEnvelope(env(`"kind":"reply","conn":"c","frame":{"id":1.5}`)), { code: 'bad_envelope' });
});
