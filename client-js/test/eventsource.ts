/**
 * A minimal EventSource for Node (which has none) over its fetch, for the
 * client's SSE transport against the real hub: GET with Accept:
 * text/event-stream, `data:` lines joined with LF per event, `:` comments
 * skipped, `onerror` when the response is not 200 or ends. Unlike a
 * browser's it never reconnects by itself (the client does not rely on that:
 * it closes the stream on error and reconnects itself). Chromium's own
 * EventSource is exercised by tests/e2e.
 */

export class NodeEventSource {
  onmessage: ((e: { data: string }) => void) | null = null;
  onerror: ((e: unknown) => void) | null = null;
  private readonly ac = new AbortController();
  private closed = false;

  constructor(url: string, _init?: { withCredentials?: boolean }) {
    fetch(url, { headers: { Accept: 'text/event-stream' }, signal: this.ac.signal })
      .then(async (res) => {
        if (res.status !== 200 || !res.body) return this.fail();
        const dec = new TextDecoder();
        let buf = '';
        let data: string[] = [];
        for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
          buf += dec.decode(chunk, { stream: true });
          for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
            const line = buf.slice(0, i).replace(/\r$/, '');
            buf = buf.slice(i + 1);
            if (line === '') {
              if (data.length && !this.closed) this.onmessage?.({ data: data.join('\n') });
              data = [];
            } else if (line.startsWith('data:')) {
              data.push(line.slice(line.startsWith('data: ') ? 6 : 5));
            }
          }
        }
        this.fail();
      })
      .catch(() => this.fail()); // refused, reset, or aborted by close()
  }

  private fail(): void {
    if (!this.closed) this.onerror?.({});
  }

  close(): void {
    this.closed = true;
    this.ac.abort();
  }
}
