import assert from "node:assert/strict";
import { MAX_LINE_BYTES, type MetricsEvent, MetricsTail, parseMetricsLine } from "./metrics.ts";

const enc = new TextEncoder();
const bytes = (s: string) => enc.encode(s);

function pushAll(tail: MetricsTail, ...parts: string[]): MetricsEvent[] {
  return parts.flatMap((p) => tail.push(bytes(p)));
}

Deno.test("MetricsTail.push() parses complete lines and takes out step and path", () => {
  const tail = new MetricsTail();
  const events = pushAll(
    tail,
    '{"step": 1, "loss": 0.5, "acc": 0.9}\n{"loss": 0.4, "name": "x", "ok": true, "n": null}\n',
    '{"step": 2, "path": "ckpt/model.bin", "loss": 0.3}\n',
  );
  assert.deepEqual(events, [
    { kind: "metrics", line: 1, step: 1, metrics: { loss: 0.5, acc: 0.9 } },
    { kind: "metrics", line: 2, metrics: { loss: 0.4, name: "x", ok: true, n: null } },
    { kind: "metrics", line: 3, step: 2, path: "ckpt/model.bin", metrics: { loss: 0.3 } },
  ]);
  assert.equal(tail.lines, 3);
});

Deno.test("MetricsTail.push() buffers a partial line until its newline", () => {
  const tail = new MetricsTail();
  assert.deepEqual(tail.push(bytes('{"step": 1, "lo')), []);
  assert.deepEqual(tail.push(bytes('ss": 0.5')), []);
  assert.deepEqual(tail.push(bytes('}\n{"step": 2')), [
    { kind: "metrics", line: 1, step: 1, metrics: { loss: 0.5 } },
  ]);
  assert.deepEqual(tail.push(bytes("}\n")), [
    { kind: "metrics", line: 2, step: 2, metrics: {} },
  ]);
  assert.equal(tail.offset, '{"step": 1, "loss": 0.5}\n{"step": 2}\n'.length);
});

Deno.test("MetricsTail.push() handles a byte at a time and UTF-8 split across pushes", () => {
  const tail = new MetricsTail();
  const all = bytes('{"métrique": 1, "名前": "値"}\n');
  const events: MetricsEvent[] = [];
  for (const b of all) events.push(...tail.push(new Uint8Array([b])));
  assert.deepEqual(events, [
    { kind: "metrics", line: 1, metrics: { "métrique": 1, "名前": "値" } },
  ]);
});

Deno.test("MetricsTail.push() ignores blank lines but counts them, and accepts CRLF", () => {
  const tail = new MetricsTail();
  const events = pushAll(tail, '\n  \r\n{"a": 1}\r\n\r\n{"b": 2}\r\n');
  assert.deepEqual(events, [
    { kind: "metrics", line: 3, metrics: { a: 1 } },
    { kind: "metrics", line: 5, metrics: { b: 2 } },
  ]);
});

Deno.test("MetricsTail.push() reports malformed lines with their reason", () => {
  const tail = new MetricsTail();
  const events = pushAll(
    tail,
    [
      "not json",
      "[1, 2]",
      "3",
      "null",
      '"text"',
      '{"step": -1}',
      '{"step": 1.5}',
      '{"step": "3"}',
      '{"step": null}',
      '{"path": 3}',
      '{"path": ""}',
      '{"xs": [1, 2]}',
      '{"a": 1',
      '{"ok": 1}',
    ].join("\n") + "\n",
  );
  assert.equal(events.length, 14);
  const reasons = events.map((e) => e.kind === "malformed" ? e.reason : "ok");
  assert.match(reasons[0]!, /invalid JSON/);
  assert.match(reasons[1]!, /expected a JSON object, got an array/);
  assert.match(reasons[2]!, /expected a JSON object, got 3/);
  assert.match(reasons[3]!, /got null/);
  assert.match(reasons[4]!, /got the string "text"/);
  assert.match(reasons[5]!, /"step" must be a non-negative integer, got -1/);
  assert.match(reasons[6]!, /got 1\.5/);
  assert.match(reasons[7]!, /got the string "3"/);
  assert.match(reasons[8]!, /got null/);
  assert.match(reasons[9]!, /"path" must be a non-empty string/);
  assert.match(reasons[10]!, /"path" must be a non-empty string/);
  assert.match(reasons[11]!, /"xs" is an array/);
  assert.match(reasons[12]!, /invalid JSON/);
  assert.equal(reasons[13], "ok");
  assert.deepEqual(events[0], {
    kind: "malformed",
    line: 1,
    text: "not json",
    reason: (events[0] as { reason: string }).reason,
  });
  assert.deepEqual(events.map((e) => e.line), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14]);
});

Deno.test("MetricsTail.push() accepts step 3.0 and flattens nested objects with /", () => {
  const tail = new MetricsTail();
  assert.deepEqual(tail.push(bytes('{"step": 3.0, "train": {"loss": 1, "sub": {"x": "y"}}}\n')), [
    { kind: "metrics", line: 1, step: 3, metrics: { "train/loss": 1, "train/sub/x": "y" } },
  ]);
});

Deno.test("MetricsTail.push() turns Python's NaN and Infinity into strings", () => {
  const tail = new MetricsTail();
  assert.deepEqual(
    tail.push(bytes('{"loss": NaN, "a": Infinity, "b": -Infinity, "s": "NaN Infinity"}\n')),
    [{
      kind: "metrics",
      line: 1,
      metrics: { loss: "NaN", a: "Infinity", b: "-Infinity", s: "NaN Infinity" },
    }],
  );
  const [bad] = tail.push(bytes('{"x": NaNa}\n'));
  assert.equal(bad?.kind, "malformed");
  const [step] = tail.push(bytes('{"step": NaN}\n'));
  assert.equal(step?.kind, "malformed");
});

Deno.test("MetricsTail.push() keeps a __proto__ metric as a plain key", () => {
  const [event] = new MetricsTail().push(bytes('{"__proto__": 1, "a": 2}\n'));
  assert.equal(event?.kind, "metrics");
  const metrics = (event as { metrics: Record<string, unknown> }).metrics;
  assert.equal(Object.getPrototypeOf(metrics), Object.prototype);
  assert.deepEqual(Object.keys(metrics), ["__proto__", "a"]);
});

Deno.test("MetricsTail.push() rejects invalid UTF-8", () => {
  const tail = new MetricsTail();
  const line = new Uint8Array([...bytes('{"a": "'), 0xff, 0xfe, ...bytes('"}\n')]);
  const [event] = tail.push(line);
  assert.equal(event?.kind, "malformed");
  assert.match((event as { reason: string }).reason, /not valid UTF-8/);
});

Deno.test("MetricsTail.push() skips an over-long line without buffering it", () => {
  const tail = new MetricsTail({ maxLineBytes: 100 });
  const long = '{"a": "' + "x".repeat(300) + '"}';
  const events: MetricsEvent[] = [];
  for (let i = 0; i < long.length; i += 7) events.push(...tail.push(bytes(long.slice(i, i + 7))));
  events.push(...tail.push(bytes('\n{"b": 1}\n')));
  assert.equal(events.length, 2);
  assert.equal(events[0]!.kind, "malformed");
  assert.equal(events[0]!.line, 1);
  assert.match((events[0] as { reason: string }).reason, /longer than 100 bytes/);
  assert.ok((events[0] as { text: string }).text.startsWith('{"a": "xxx'));
  assert.deepEqual(events[1], { kind: "metrics", line: 2, metrics: { b: 1 } });
});

Deno.test("MetricsTail.push() limits lines to 1 MiB by default, CR not counted", () => {
  const tail = new MetricsTail();
  const fits = '{"a": "' + "x".repeat(MAX_LINE_BYTES - 10) + '"}';
  assert.equal(fits.length, MAX_LINE_BYTES - 1);
  assert.equal(tail.push(bytes(fits + "\r\n"))[0]?.kind, "metrics");
  const over = '{"a": "' + "x".repeat(MAX_LINE_BYTES) + '"}';
  const [event] = tail.push(bytes(over + "\n"));
  assert.equal(event?.kind, "malformed");
  assert.equal(event?.line, 2);
  assert.ok((event as { text: string }).text.length <= 256);
  // One byte over, arriving in one piece with a CR.
  const [one] = tail.push(bytes('{"a": "' + "x".repeat(MAX_LINE_BYTES - 8) + '"}\r\n'));
  assert.equal(one?.kind, "malformed");
});

Deno.test("MetricsTail.flush() parses a final unterminated line", () => {
  const tail = new MetricsTail();
  assert.deepEqual(tail.push(bytes('{"a": 1}\n{"step": 9, "a": 2}')), [
    { kind: "metrics", line: 1, metrics: { a: 1 } },
  ]);
  assert.deepEqual(tail.flush(), [{ kind: "metrics", line: 2, step: 9, metrics: { a: 2 } }]);
  assert.deepEqual(tail.flush(), []);
  assert.deepEqual(tail.push(bytes('{"a": 3}\n')), [
    { kind: "metrics", line: 3, metrics: { a: 3 } },
  ]);
});

Deno.test("MetricsTail.flush() reports a truncated final line as malformed", () => {
  const tail = new MetricsTail({ maxLineBytes: 10 });
  tail.push(bytes('{"a": 1, "b": 2'));
  const [event] = tail.flush();
  assert.equal(event?.kind, "malformed");
  const tail2 = new MetricsTail();
  tail2.push(bytes('{"a": 1, "b'));
  assert.match((tail2.flush()[0] as { reason: string }).reason, /invalid JSON/);
});

Deno.test("MetricsTail.reset() drops the partial line and restarts numbering and offset", () => {
  const tail = new MetricsTail();
  tail.push(bytes('{"a": 1}\n{"a": 2}\n{"part'));
  assert.equal(tail.offset, 24);
  tail.reset();
  assert.equal(tail.offset, 0);
  assert.equal(tail.lines, 0);
  assert.deepEqual(tail.push(bytes('{"b": 1}\n')), [
    { kind: "metrics", line: 1, metrics: { b: 1 } },
  ]);
});

Deno.test("MetricsTail.push() copies its input, so callers may reuse buffers", () => {
  const tail = new MetricsTail();
  const buf = new Uint8Array(64);
  const part1 = bytes('{"a": ');
  buf.set(part1);
  tail.push(buf.subarray(0, part1.length));
  buf.fill(0x20);
  const part2 = bytes("5}\n");
  buf.set(part2);
  assert.deepEqual(tail.push(buf.subarray(0, part2.length)), [
    { kind: "metrics", line: 1, metrics: { a: 5 } },
  ]);
});

Deno.test("parseMetricsLine() skips a BOM and returns undefined for blank text", () => {
  assert.equal(parseMetricsLine(bytes("   "), 1), undefined);
  assert.deepEqual(parseMetricsLine(bytes('\uFEFF{"a": 1}'), 1), {
    kind: "metrics",
    line: 1,
    metrics: { a: 1 },
  });
});
