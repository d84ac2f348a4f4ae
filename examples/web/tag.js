// The tag demo served at GET /demo: tickrelay's example game (examples/tag.py) on a canvas.
//
// The server owns the game: a client sends only its intent, `{"dir": [dx, dy]}`, and the
// room moves everyone. To feel immediate anyway, the page predicts its own player from the
// intents not yet acked (`client.pending`), and draws the others a little in the past,
// interpolated between the two states around that time (INTERP_DELAY_MS), so they glide
// instead of jumping once per tick. Pages opened with the same `?game=` (default "lobby")
// are matched into one room by POST /matchmake {"logic": "tag", "meta": {"demo": game}}.
import { ClientState, connect } from "./tickrelay.js";

const INTERP_DELAY_MS = 100; // two ticks at the default 20 Hz: always two states to blend
const MAX_PREDICT_MS = 300; // never extrapolate our own player further than this
const BUFFER = 40; // states kept for interpolation
const KEYS = {
  ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1],
  KeyA: [-1, 0], KeyD: [1, 0], KeyW: [0, -1], KeyS: [0, 1],
};

const canvas = document.getElementById("arena");
const ctx = canvas.getContext("2d");
const statusLine = document.getElementById("status");
const game = new URLSearchParams(location.search).get("game") || "lobby";

/** Find (or create) this game's tag room. */
async function matchmake() {
  const answer = await fetch("/matchmake", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ logic: "tag", meta: { demo: game } }),
  });
  if (!answer.ok) throw new Error(`POST /matchmake answered ${answer.status}`);
  return (await answer.json()).room;
}

/** The states received, oldest first, each `{st, players}`, for interpolation. */
const history = [];

function remember(mirror, tickMs) {
  const last = history.at(-1);
  if (last && mirror.st - last.st > 2 * tickMs) {
    // The room sent nothing for a while (nobody moved): the old state held until just
    // before this one, so blend from there, not across the whole quiet spell.
    history.push({ st: mirror.st - tickMs, players: last.players });
  }
  history.push({ st: mirror.st, players: mirror.players });
  if (history.length > BUFFER) history.splice(0, history.length - BUFFER);
}

/** Where `pid` was at server time `t`, blended between the two states around it. */
function interpolated(pid, t) {
  for (let i = history.length - 1; i > 0; i--) {
    const [a, b] = [history[i - 1], history[i]];
    if (a.st > t) continue;
    const from = a.players[pid];
    const to = b.players[pid];
    if (!from || !to) return to ?? from;
    const k = Math.min(1, (t - a.st) / Math.max(1, b.st - a.st));
    return { x: from.x + (to.x - from.x) * k, y: from.y + (to.y - from.y) * k };
  }
  return history.at(-1)?.players[pid];
}

/** Our own position now: the server's, moved on by the intent we last sent. */
function predicted(client) {
  const me = client.mirror.players[client.pid];
  if (!me) return undefined;
  const { speed = 30, arena = [100, 100] } = client.mirror.room;
  const intent = client.pending.at(-1)?.d.dir ?? me.dir ?? [0, 0];
  const elapsed = Math.min(MAX_PREDICT_MS, Math.max(0, client.serverNow() - client.mirror.st));
  const step = (speed * elapsed) / 1000;
  const clamp = (v, max) => Math.min(max, Math.max(0, v));
  return { x: clamp(me.x + intent[0] * step, arena[0]), y: clamp(me.y + intent[1] * step, arena[1]) };
}

/** The intent of the keys held, clamped to unit length and rounded as the server does. */
function intentOf(held) {
  let [dx, dy] = [0, 0];
  for (const code of held) [dx, dy] = [dx + KEYS[code][0], dy + KEYS[code][1]];
  const length = Math.hypot(dx, dy);
  if (length > 1) [dx, dy] = [dx / length, dy / length];
  return [Math.round(dx * 1e4) / 1e4, Math.round(dy * 1e4) / 1e4];
}

function listenToKeys(client) {
  const held = new Set();
  let sent = "[0,0]";
  const update = () => {
    const dir = intentOf(held);
    if (JSON.stringify(dir) === sent || client.state !== ClientState.OPEN) return;
    sent = JSON.stringify(dir);
    client.sendInput({ dir });
  };
  addEventListener("keydown", (event) => {
    if (!(event.code in KEYS)) return;
    event.preventDefault();
    held.add(event.code);
    update();
  });
  addEventListener("keyup", (event) => {
    held.delete(event.code);
    update();
  });
  addEventListener("blur", () => {
    held.clear();
    update();
  });
}

/** Where each player is drawn now: ourselves predicted, the others interpolated. */
function positions(client) {
  const renderAt = client.serverNow() - INTERP_DELAY_MS;
  const drawn = {};
  for (const pid of Object.keys(client.mirror.players)) {
    drawn[pid] = pid === client.pid ? predicted(client) : interpolated(pid, renderAt);
  }
  return drawn;
}

function draw(client) {
  const room = client.mirror.room;
  const [width, height] = room.arena ?? [100, 100];
  const scale = canvas.width / width;
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  ctx.strokeStyle = "#232a33";
  for (let g = 10; g < width; g += 10) {
    ctx.beginPath();
    ctx.moveTo(g * scale, 0);
    ctx.lineTo(g * scale, height * scale);
    ctx.moveTo(0, g * scale);
    ctx.lineTo(width * scale, g * scale);
    ctx.stroke();
  }
  for (const [pid, at] of Object.entries(positions(client))) {
    if (!at) continue;
    const [x, y] = [at.x * scale, at.y * scale];
    const it = pid === room.it;
    if (it) {
      ctx.setLineDash([6, 6]);
      ctx.strokeStyle = "#ff6b6b88";
      ctx.beginPath();
      ctx.arc(x, y, (room.radius ?? 5) * scale, 0, 2 * Math.PI);
      ctx.stroke();
      ctx.setLineDash([]);
    }
    ctx.fillStyle = it ? "#ff6b6b" : "#4fd1c5";
    ctx.beginPath();
    ctx.arc(x, y, 2 * scale, 0, 2 * Math.PI);
    ctx.fill();
    if (pid === client.pid) {
      ctx.strokeStyle = "#ffffff";
      ctx.lineWidth = 3;
      ctx.stroke();
      ctx.lineWidth = 1;
    }
    ctx.fillStyle = "#e6e6e6";
    ctx.font = "12px system-ui, sans-serif";
    ctx.fillText(pid === client.pid ? "you" : pid.slice(0, 6), x + 2.5 * scale, y - 2.5 * scale);
  }
}

function showScores(client) {
  const { scores = {}, it } = client.mirror.room;
  const rows = Object.entries(scores).map(([pid, score]) => {
    const row = document.createElement("div");
    row.textContent = `${pid === client.pid ? "you" : pid.slice(0, 6)}: ${score}`;
    row.className = `${pid === it ? "it" : ""} ${pid === client.pid ? "me" : ""}`;
    return row;
  });
  document.getElementById("scores").replaceChildren(...rows);
}

function logLine(text) {
  const log = document.getElementById("log");
  const line = document.createElement("div");
  line.textContent = text;
  log.prepend(line);
  while (log.childElementCount > 8) log.lastElementChild.remove();
}

function showStatus(client) {
  const rtt = client.rtt === null ? "…" : `${Math.round(client.rtt)} ms`;
  statusLine.textContent =
    `${client.state} · room ${client.roomId} · ${Object.keys(client.mirror.players).length} ` +
    `players · rtt ${rtt}`;
}

async function main() {
  const room = await matchmake();
  const client = await connect(location.origin, room, { pingIntervalMs: 2000 });
  const tickMs = 1000 / client.rate;
  client.on("state", (mirror) => {
    remember(mirror, tickMs);
    showScores(client);
  });
  if (client.mirror.tick !== null) remember(client.mirror, tickMs);
  await client.ping(); // the clock offset, before the first frame uses serverNow()
  client.on("event", ({ from, d }) => {
    if (from === null && d?.type === "tag") logLine(`${d.by.slice(0, 6)} tagged ${d.it.slice(0, 6)}`);
  });
  client.on("close", ({ code, reconnecting }) => logLine(`closed ${code}${reconnecting ? ", reconnecting" : ""}`));
  listenToKeys(client);
  canvas.focus();
  // The debug hook the browser test (and a curious developer) reads.
  window.tickrelayDemo = { client, game, room, positions: () => positions(client) };
  const frame = () => {
    draw(client);
    showStatus(client);
    requestAnimationFrame(frame);
  };
  frame();
}

main().catch((error) => {
  statusLine.textContent = `failed: ${error.message}`;
  window.tickrelayDemo = { error: String(error) };
});
