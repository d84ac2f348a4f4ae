// tickrelay.js against a real server: TICKRELAY_URL (http://host:port) and TICKRELAY_ADMIN
// (the admin token) come from tests/test_js_client.py, which starts the server.
import assert from "node:assert/strict";
import net from "node:net";
import test from "node:test";

import { ClientState, connect, ConnectRefused } from "../tickrelay.js";

const BASE = process.env.TICKRELAY_URL;
const ADMIN = process.env.TICKRELAY_ADMIN;
let rooms = 0;
const newRoom = () => `js-${process.pid}-${++rooms}`;

/** Every client a test opened, closed after it: no socket outlives its test. */
const opened = [];
async function join(room, options = {}, base = BASE) {
  const client = await connect(base, room, options);
  opened.push(client);
  return client;
}
test.afterEach(() => {
  for (const client of opened.splice(0)) client.close();
});

/** Resolves when `predicate()` holds after a state message (checked at once first). */
function stateUntil(client, predicate, timeoutMs = 5000) {
  if (predicate()) return Promise.resolve();
  return client.next("state", { filter: predicate, timeoutMs });
}

/**
 * A TCP relay to the server whose `cut()` destroys both sockets: to the client, a
 * connection lost without a close frame (1006), as when a phone leaves Wi-Fi.
 */
async function flakyLink() {
  const sockets = new Set();
  const { hostname, port } = new URL(BASE);
  const relay = net.createServer((inbound) => {
    const outbound = net.connect(Number(port), hostname);
    for (const [a, b] of [[inbound, outbound], [outbound, inbound]]) {
      sockets.add(a);
      a.pipe(b);
      a.on("error", () => b.destroy());
      a.on("close", () => b.destroy());
    }
  });
  await new Promise((resolve) => relay.listen(0, "127.0.0.1", resolve));
  return {
    url: `ws://127.0.0.1:${relay.address().port}`,
    cut: () => sockets.forEach((socket) => socket.destroy()),
    stop: () => new Promise((resolve) => {
      relay.close(resolve);
      sockets.forEach((socket) => socket.destroy());
    }),
  };
}

test("a join resolves with the welcome's pid, host, rate and resume token", async () => {
  const client = await join(newRoom());
  assert.equal(client.state, ClientState.OPEN);
  assert.match(client.pid, /^[0-9a-f]{12}$/);
  assert.equal(client.host, client.pid);
  assert.equal(client.rate, 20);
  assert.equal(typeof client.resumeToken, "string");
});

test("the mirror follows the room through the first snap and the deltas after it", async () => {
  const room = newRoom();
  const alice = await join(room);
  const bob = await join(room);
  const kinds = [];
  bob.on("snap", () => kinds.push("snap"));
  bob.on("delta", () => kinds.push("delta"));
  await stateUntil(bob, () => alice.pid in bob.mirror.players);
  alice.sendInput({ x: 1, tags: ["a"] });
  await stateUntil(bob, () => bob.mirror.players[alice.pid]?.x === 1);
  alice.sendInput({ x: 2, tags: null });
  await stateUntil(bob, () => bob.mirror.players[alice.pid]?.x === 2);
  assert.deepEqual(bob.mirror.players[alice.pid], { x: 2 });
  assert.ok(kinds.includes("delta"), `bob saw ${kinds}`);
});

test("acks empty the pending inputs, which prediction applies until then", async () => {
  const client = await join(newRoom());
  await client.next("snap");
  const seq = client.sendInput({ x: 5 });
  assert.deepEqual(client.pending.map((input) => input.seq), [seq]);
  assert.deepEqual(client.predicted(), { x: 5 });
  await stateUntil(client, () => client.ackedSeq === seq);
  assert.deepEqual(client.pending, []);
  assert.deepEqual(client.mirror.players[client.pid], { x: 5 });
});

test("a refused input leaves the pending list with its error", async () => {
  const client = await join(newRoom());
  await client.next("snap");
  const error = client.next("error");
  client.sendInput({ x: 1 });
  await stateUntil(client, () => client.ackedSeq === 1);
  client.seq = 0; // a seq that does not grow is stale
  client.sendInput({ x: 2 });
  assert.equal((await error).code, "stale");
  assert.deepEqual(client.pending, []);
});

test("an event with `to` reaches only the pids it names", async () => {
  const room = newRoom();
  const alice = await join(room);
  const bob = await join(room);
  const carol = await join(room);
  const carolFirst = carol.next("event");
  const bobGot = bob.next("event");
  alice.sendEvent({ secret: 1 }, [bob.pid]);
  alice.sendEvent({ open: 1 });
  assert.deepEqual(await bobGot, { t: "event", from: alice.pid, d: { secret: 1 } });
  assert.deepEqual((await carolFirst).d, { open: 1 });
});

test("a ping measures the round trip and the server clock's offset", async () => {
  const client = await join(newRoom());
  const rtt = await client.ping();
  assert.ok(rtt >= 0 && rtt < 5000, `rtt ${rtt}`);
  assert.equal(client.rtt, rtt);
  assert.ok(Math.abs(client.clockOffset) < 5000, `offset ${client.clockOffset}`);
  assert.ok(Math.abs(client.serverNow() - Date.now()) < 5000);
});

test("a dropped socket is resumed: same pid, a fresh snap, and the others see it back", async () => {
  const link = await flakyLink();
  try {
    const room = newRoom();
    const watcher = await join(room);
    const player = await join(room, { backoffMs: [50, 200] }, link.url);
    await stateUntil(player, () => player.mirror.tick !== null);
    const pid = player.pid;
    const closed = player.next("close");
    const reconnected = player.next("reconnect");
    const snap = player.next("snap"); // none comes before the cut: deltas only
    const away = watcher.next("away");
    const back = watcher.next("back");
    link.cut();
    assert.deepEqual(await closed, { code: 1006, reason: "", reconnecting: true });
    assert.equal((await away).pid, pid);
    await reconnected;
    assert.equal(player.pid, pid);
    assert.equal(player.resumed, true);
    assert.ok(pid in (await snap).s.players, "the resumed snap holds our seat");
    assert.equal((await back).pid, pid);
    player.sendInput({ after: "resume" });
    await stateUntil(watcher, () => watcher.mirror.players[pid]?.after === "resume");
    player.close();
  } finally {
    await link.stop();
  }
});

test("a refused join rejects with the close code and reason", async () => {
  await assert.rejects(connect(BASE, "bad id!"), (error) => {
    assert.ok(error instanceof ConnectRefused);
    assert.equal(error.code, 4000);
    assert.notEqual(error.reason, "");
    return true;
  });
});

test("a close that forbids a reconnect is surfaced and ends the client", async () => {
  const room = newRoom();
  const client = await join(room);
  const closed = client.next("close");
  const answer = await fetch(`${BASE}/rooms/${room}`, {
    method: "DELETE",
    headers: { Authorization: `Bearer ${ADMIN}` },
  });
  assert.equal(answer.status, 204);
  const { code, reconnecting } = await closed;
  assert.deepEqual([code, reconnecting], [4004, false]);
  assert.equal(client.state, ClientState.CLOSED);
  assert.equal(client.closeCode, 4004);
});
