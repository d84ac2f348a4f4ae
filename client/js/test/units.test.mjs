// The parts of tickrelay.js that need no server: merge patch, mirror, backoff, URLs.
import assert from "node:assert/strict";
import test from "node:test";

import { backoffDelays, mergePatch, MirrorError, roomUrl, StateMirror } from "../tickrelay.js";

test("mergePatch follows RFC 7386: null deletes, arrays are replaced whole", () => {
  const target = { a: 1, b: { c: 2, d: 3 }, list: [1, 2] };
  const patched = mergePatch(target, { a: null, b: { c: 9 }, list: [3] });
  assert.deepEqual(patched, { b: { c: 9, d: 3 }, list: [3] });
});

test("mergePatch never changes its target", () => {
  const target = { b: { c: 2 } };
  mergePatch(target, { b: { c: 3 } });
  assert.deepEqual(target, { b: { c: 2 } });
});

test("the mirror refuses a delta whose base is not the tick it holds, and keeps its state", () => {
  const mirror = new StateMirror();
  mirror.apply({ t: "snap", tick: 5, st: 1, s: { players: { a: { x: 1 } }, room: {} }, acks: { a: 0 } });
  assert.throws(
    () => mirror.apply({ t: "delta", tick: 7, base: 6, d: { players: { a: { x: 2 } } }, acks: {} }),
    MirrorError,
  );
  assert.equal(mirror.tick, 5);
  assert.deepEqual(mirror.players, { a: { x: 1 } });
});

test("the mirror applies a delta on its base, acks included", () => {
  const mirror = new StateMirror();
  mirror.apply({ t: "snap", tick: 5, s: { players: { a: {}, b: {} }, room: {} }, acks: { a: 0, b: 0 } });
  mirror.apply({ t: "delta", tick: 6, base: 5, d: { players: { a: { x: 2 }, b: null } }, acks: { a: 1, b: null } });
  assert.deepEqual(mirror.players, { a: { x: 2 } });
  assert.deepEqual(mirror.acks, { a: 1 });
  assert.equal(mirror.tick, 6);
});

test("backoff delays grow exponentially with equal jitter, up to the maximum", () => {
  assert.deepEqual(backoffDelays(100, 400, 4, () => 0), [50, 100, 200, 200]);
  assert.deepEqual(backoffDelays(100, 400, 4, () => 1), [100, 200, 400, 400]);
});

test("room URLs carry the room id encoded and the query the contract names", () => {
  const url = roomUrl("http://h:1", "a b", { token: "t", resume: "r", spectate: true });
  assert.equal(url, "ws://h:1/ws/rooms/a%20b?token=t&resume=r&spectate=1");
});
