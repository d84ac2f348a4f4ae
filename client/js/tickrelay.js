// tickrelay.js: a browser (and Node >= 20) client for tickrelay rooms, JSON subprotocol.
//
// One ES module, no dependency, no build step: copy it next to your game or import it from
// a tickrelay server (`GET /demo/tickrelay.js`). It mirrors the Python client
// (tickrelay.client): join with a `welcome`, keep a merge-patch mirror of the room state,
// send inputs with a growing `seq`, and come back after a drop with the resume token, with
// jittered exponential backoff. The wire contract is docs/PROTOCOL.md.
//
//   import { connect } from "./tickrelay.js";
//   const client = await connect("ws://localhost:8000", "lobby");
//   client.on("state", () => draw(client.mirror.players));
//   client.sendInput({ x: 3, y: 4 });

/** The only subprotocol this module speaks: JSON maps in text frames. */
export const SUBPROTOCOL = "tickrelay.v1.json";

/** Close codes after which a reconnect (with `resume`) may succeed as is (contract §8). */
export const RECONNECTABLE = new Set([1006, 1011, 1012, 1013, 4011]);

/** Close code of a refused resume token: join afresh, without `resume`. */
export const RESUME_FAILED = 4012;

/** `error` codes that refuse an input for good: it will never be acked. */
const INPUT_REFUSALS = new Set([
  "stale", "too_large", "not_host", "bad_message", "rate_limited", "spectator",
]);

/**
 * Where a client is in its life. Explicit states, never a pile of booleans.
 * @readonly
 * @enum {string}
 */
export const ClientState = Object.freeze({
  CONNECTING: "connecting",
  OPEN: "open",
  RECONNECTING: "reconnecting",
  CLOSED: "closed",
});

/** A join refused before its `welcome` (close code and reason from the server). */
export class ConnectRefused extends Error {
  /** @param {number} code @param {string} reason */
  constructor(code, reason) {
    super(`join refused: ${code} ${reason}`);
    this.name = "ConnectRefused";
    this.code = code;
    this.reason = reason;
  }
}

/** A state message that does not fit the mirror (a delta on a base it does not hold). */
export class MirrorError extends Error {
  constructor(message) {
    super(message);
    this.name = "MirrorError";
  }
}

const isObject = (value) => value !== null && typeof value === "object" && !Array.isArray(value);

/**
 * RFC 7386 JSON Merge Patch, copy-on-write: returns the patched value and never changes
 * `target` or `patch`, so a state held by the mirror may be kept as a snapshot (the
 * interpolation buffer of a game does exactly that).
 * @param {*} target @param {*} patch @returns {*}
 */
export function mergePatch(target, patch) {
  if (!isObject(patch)) return patch;
  const result = isObject(target) ? { ...target } : {};
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) delete result[key];
    else result[key] = mergePatch(result[key], value);
  }
  return result;
}

/**
 * The local copy of a room's state, fed with every `snap` and `delta`. Updates are atomic:
 * a message that does not fit throws MirrorError and changes nothing.
 */
export class StateMirror {
  constructor() {
    /** @type {number|null} tick of the state held */
    this.tick = null;
    /** @type {number|null} server wall clock (ms) of the state held */
    this.st = null;
    /** @type {Object<string, *>} player states by pid */
    this.players = {};
    /** @type {*} the shared room state */
    this.room = {};
    /** @type {Object<string, number>} last applied input `seq` by pid */
    this.acks = {};
  }

  /**
   * Apply a `snap` or `delta`; returns false (and changes nothing) for any other message.
   * @param {Object} msg @returns {boolean}
   */
  apply(msg) {
    if (msg.t === "snap") {
      if (!Number.isInteger(msg.tick) || !isObject(msg.s) || !isObject(msg.s.players)) {
        throw new MirrorError("malformed snap");
      }
      this.#hold(msg, msg.s.players, msg.s.room ?? {}, msg.acks ?? {});
      return true;
    }
    if (msg.t === "delta") {
      if (this.tick === null || msg.base !== this.tick) {
        throw new MirrorError(`delta base ${msg.base} is not the held tick ${this.tick}`);
      }
      if (!Number.isInteger(msg.tick) || !isObject(msg.d)) throw new MirrorError("malformed delta");
      const state = mergePatch({ players: this.players, room: this.room }, msg.d);
      const acks = mergePatch(this.acks, msg.acks ?? {});
      this.#hold(msg, state.players ?? {}, state.room ?? {}, acks);
      return true;
    }
    return false;
  }

  /** The last `seq` of `pid` the server applied (0 before any). @param {string} pid */
  lastAck(pid) {
    return this.acks[pid] ?? 0;
  }

  #hold(msg, players, room, acks) {
    this.tick = msg.tick;
    this.st = typeof msg.st === "number" ? msg.st : null;
    this.players = players;
    this.room = room;
    this.acks = acks;
  }
}

/**
 * Delays (ms) before successive reconnect attempts: exponential with "equal jitter", as
 * the Python client (attempt n waits a random time in [cap/2, cap], cap = min(max,
 * base * 2^n)). The jitter spreads a crowd dropped by one worker restart; the half kept
 * guarantees a pause against a server that refuses at once (1013).
 * @param {number} baseMs @param {number} maxMs @param {number} attempts
 * @param {() => number} [random] @returns {number[]}
 */
export function backoffDelays(baseMs, maxMs, attempts, random = Math.random) {
  const delays = [];
  let cap = baseMs;
  for (let i = 0; i < attempts; i++) {
    delays.push(cap / 2 + random() * (cap / 2));
    cap = Math.min(maxMs, cap * 2);
  }
  return delays;
}

/**
 * The room URL: `base` is `ws://host:port` (or `http(s)://`, turned into `ws(s)://`).
 * @param {string} base @param {string} roomId
 * @param {{token?: string, resume?: string|null, spectate?: boolean}} [query]
 */
export function roomUrl(base, roomId, { token, resume, spectate } = {}) {
  const url = new URL(`/ws/rooms/${encodeURIComponent(roomId)}`, base.replace(/^http/, "ws"));
  if (token) url.searchParams.set("token", token);
  if (resume) url.searchParams.set("resume", resume);
  if (spectate) url.searchParams.set("spectate", "1");
  return url.toString();
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * @typedef {Object} ClientOptions
 * @property {string} [token] auth token (sent as `?token=`: browsers cannot set headers)
 * @property {string} [resume] a resume token from an earlier `welcome`, to take a place back
 * @property {boolean} [spectate] join as a spectator
 * @property {boolean} [autoReconnect=true] reconnect after the RECONNECTABLE close codes
 * @property {[number, number]} [backoffMs=[100, 5000]] first and largest reconnect delay
 * @property {number} [attempts=10] reconnect attempts before giving up
 * @property {number} [pingIntervalMs=0] send a `ping` this often (0: only on `ping()`)
 * @property {typeof WebSocket} [WebSocket] the WebSocket class (default: the global one)
 */

/**
 * @typedef {Object} PendingInput an input sent and not yet acked, for prediction
 * @property {number} seq
 * @property {Object} d the player patch
 * @property {Object} [room] the room patch (host only)
 * @property {number} sentAt local `performance.now()` when it was sent
 */

/**
 * One seat (or spectator place) in one room, across the connections reconnects need.
 *
 * Listen with `on(type, fn)`: every server message type (`welcome`, `snap`, `delta`,
 * `event`, `join`, `leave`, `away`, `back`, `host`, `pong`, `error`), plus
 * `state` (after a snap/delta reached the mirror), `mirror-error`, `decode-error`, `close`
 * (`{code, reason, reconnecting}`, every connection that ends) and `reconnect` (a new
 * `welcome` after a drop). Create it with {@link connect}.
 */
export class RoomClient {
  /** @param {string} base @param {string} roomId @param {ClientOptions} [options] */
  constructor(base, roomId, options = {}) {
    this.base = base;
    this.roomId = roomId;
    this.options = { autoReconnect: true, backoffMs: [100, 5000], attempts: 10,
      pingIntervalMs: 0, ...options };
    /** @type {ClientState} */
    this.state = ClientState.CONNECTING;
    this.mirror = new StateMirror();
    /** From the last `welcome`. */
    this.pid = null;
    this.host = null;
    this.rate = null;
    this.resumeToken = null;
    this.spectator = false;
    this.resumed = false;
    /** `seq` of the last input sent (kept across resumes: the server remembers it). */
    this.seq = 0;
    /** @type {PendingInput[]} inputs sent and not acked yet, oldest first */
    this.pending = [];
    /** Round-trip time (ms) and server-minus-local clock offset (ms) of the last pong. */
    this.rtt = null;
    this.clockOffset = null;
    /** How the last connection ended (null while one is open). */
    this.closeCode = null;
    this.closeReason = null;
    this.reconnects = 0;
    this._listeners = new Map();
    this._pings = new Map();
    this._pingId = 0;
    this._socket = null;
    this._pinger = null;
  }

  /** Subscribe to a message type (see the class doc); returns the unsubscribe function. */
  on(type, fn) {
    if (!this._listeners.has(type)) this._listeners.set(type, new Set());
    this._listeners.get(type).add(fn);
    return () => this._listeners.get(type).delete(fn);
  }

  /**
   * The next message of `type` (for which `filter` holds), as a promise; rejects after
   * `timeoutMs`. Handy in tests and in turn-based flows.
   */
  next(type, { filter = () => true, timeoutMs = 5000 } = {}) {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        off();
        reject(new Error(`no ${type} within ${timeoutMs} ms`));
      }, timeoutMs);
      const off = this.on(type, (msg) => {
        if (!filter(msg)) return;
        clearTimeout(timer);
        off();
        resolve(msg);
      });
    });
  }

  /** The last `seq` of ours the server applied. */
  get ackedSeq() {
    return this.pid === null ? 0 : this.mirror.lastAck(this.pid);
  }

  /** Estimated server wall clock (ms), from the offset measured by the last ping. */
  serverNow() {
    return Date.now() + (this.clockOffset ?? 0);
  }

  /**
   * Our own state as the server will see it once every pending input is applied: the
   * mirror's state with the pending patches merged on top (client-side prediction for a
   * merge-relay game; a game whose server simulates uses `pending` directly).
   */
  predicted() {
    let state = this.pid === null ? {} : (this.mirror.players[this.pid] ?? {});
    for (const input of this.pending) state = mergePatch(state, input.d);
    return state;
  }

  /**
   * Send an `input` (a merge patch of our own state, and of the room state when host);
   * returns its `seq`. It stays in `pending` until acked or refused.
   * @param {Object} d @param {Object} [room] @returns {number}
   */
  sendInput(d, room) {
    const msg = { t: "input", seq: ++this.seq, d };
    if (room !== undefined) msg.room = room;
    this.pending.push({ seq: msg.seq, d, room, sentAt: performance.now() });
    this._send(msg);
    return msg.seq;
  }

  /** Relay `d` to the other members at once, or only to the pids in `to`. */
  sendEvent(d, to) {
    this._send(to === undefined ? { t: "event", d } : { t: "event", d, to });
  }

  /**
   * Send a `ping` and resolve with the round-trip time (ms) when its `pong` comes; also
   * updates `rtt` and `clockOffset` (server clock minus ours at the round trip's middle).
   */
  ping(timeoutMs = 5000) {
    const id = ++this._pingId;
    const ct = Date.now();
    const t0 = performance.now();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this._pings.delete(id);
        reject(new Error(`no pong within ${timeoutMs} ms`));
      }, timeoutMs);
      this._pings.set(id, (pong) => {
        clearTimeout(timer);
        this.rtt = performance.now() - t0;
        if (typeof pong.st === "number") this.clockOffset = pong.st - (ct + this.rtt / 2);
        resolve(this.rtt);
      });
      this._send({ t: "ping", id, ct });
    });
  }

  /** Give the place up now (`leave`); resolves when the server closed (1000). */
  leave() {
    const closed = this.next("close", { timeoutMs: 5000 }).catch(() => null);
    this._send({ t: "leave" });
    this._end();
    return closed;
  }

  /**
   * Close without `leave`: a drop, so the server keeps the place for the resume grace and
   * `resumeToken` can take it back (`connect(..., {resume})`).
   */
  close() {
    const socket = this._socket;
    this._end();
    if (socket !== null && socket.readyState <= 1) socket.close(1000);
  }

  _end() {
    this.state = ClientState.CLOSED;
    clearInterval(this._pinger);
    this._pinger = null;
  }

  _send(msg) {
    if (this._socket === null || this._socket.readyState !== 1) {
      throw new Error(`cannot send ${msg.t}: the client is ${this.state}`);
    }
    this._socket.send(JSON.stringify(msg));
  }

  _emit(type, value) {
    for (const fn of this._listeners.get(type) ?? []) {
      try {
        fn(value);
      } catch (error) {
        console.error(`tickrelay: a ${type} listener failed`, error);
      }
    }
  }

  /** Open one connection; resolves with its `welcome`, rejects with ConnectRefused. */
  _join(resume) {
    const WebSocketClass = this.options.WebSocket ?? globalThis.WebSocket;
    const url = roomUrl(this.base, this.roomId, { ...this.options, resume });
    const socket = new WebSocketClass(url, SUBPROTOCOL);
    return new Promise((resolve, reject) => {
      let welcomed = false;
      socket.onmessage = (event) => {
        let msg;
        try {
          msg = JSON.parse(event.data);
        } catch (error) {
          this._emit("decode-error", error); // a server bug: reported, never applied
          return;
        }
        if (!welcomed && msg.t === "welcome") {
          welcomed = true;
          this._socket = socket;
          resolve(msg);
        }
        if (welcomed) this._dispatch(msg);
      };
      socket.onclose = (event) => {
        if (welcomed) this._closed(socket, event.code, event.reason);
        else reject(new ConnectRefused(event.code, event.reason));
      };
    });
  }

  _dispatch(msg) {
    switch (msg.t) {
      case "welcome":
        this.pid = msg.pid;
        this.host = msg.host;
        this.rate = msg.rate;
        this.resumeToken = msg.resume;
        this.spectator = msg.spectator;
        this.resumed = msg.resumed;
        this.closeCode = this.closeReason = null;
        break;
      case "snap":
      case "delta":
        this._applyState(msg);
        break;
      case "host":
        this.host = msg.pid;
        break;
      case "pong":
        this._pings.get(msg.id)?.(msg);
        this._pings.delete(msg.id);
        break;
      case "error":
        if (INPUT_REFUSALS.has(msg.code) && Number.isInteger(msg.ref)) {
          this.pending = this.pending.filter((input) => input.seq !== msg.ref);
        }
        break;
    }
    this._emit(msg.t, msg);
  }

  _applyState(msg) {
    try {
      this.mirror.apply(msg);
    } catch (error) {
      // A delta that does not fit is reported, never applied: the next snap heals it.
      this._emit("mirror-error", error);
      return;
    }
    const acked = this.ackedSeq;
    if (this.pending.length && this.pending[0].seq <= acked) {
      this.pending = this.pending.filter((input) => input.seq > acked);
    }
    this._emit("state", this.mirror);
  }

  _closed(socket, code, reason) {
    if (socket !== this._socket) return;
    this._socket = null;
    this.closeCode = code;
    this.closeReason = reason;
    const reconnecting =
      this.state === ClientState.OPEN && this.options.autoReconnect && RECONNECTABLE.has(code);
    if (!reconnecting) this._end();
    this._emit("close", { code, reason, reconnecting });
    if (reconnecting) this._reconnect();
  }

  async _start() {
    await this._join(this.options.resume ?? null);
    this._opened();
  }

  _opened() {
    this.state = ClientState.OPEN;
    const every = this.options.pingIntervalMs;
    if (every > 0 && this._pinger === null) {
      const tick = () => this.state === ClientState.OPEN && this.ping().catch(() => {});
      this._pinger = setInterval(tick, every);
    }
  }

  /** Back off, resume with the latest token; after 4012 join afresh (a new pid). */
  async _reconnect() {
    this.state = ClientState.RECONNECTING;
    const [base, max] = this.options.backoffMs;
    let resume = this.resumeToken;
    for (const delay of backoffDelays(base, max, this.options.attempts)) {
      await sleep(delay);
      if (this.state !== ClientState.RECONNECTING) return;
      try {
        await this._join(resume);
      } catch (error) {
        this.closeCode = error.code;
        this.closeReason = error.reason;
        if (error.code === RESUME_FAILED && resume !== null) {
          resume = null; // the grace is over: a fresh join, with a fresh mirror
          this.mirror = new StateMirror();
          this.pending = [];
          continue;
        }
        if (RECONNECTABLE.has(error.code)) continue;
        break;
      }
      if (this.state !== ClientState.RECONNECTING) return this._socket?.close(1000);
      this.reconnects += 1;
      this._opened();
      this._resendPending();
      this._emit("reconnect", this);
      return;
    }
    this._end();
    this._emit("close", { code: this.closeCode, reason: this.closeReason, reconnecting: false });
  }

  /**
   * Inputs lost with the old socket would stay pending forever and skew prediction: send
   * them again after a resume. Those the server did receive are refused as `stale` (and
   * dropped from `pending` by that error); the others are applied.
   */
  _resendPending() {
    for (const input of this.pending) {
      const msg = { t: "input", seq: input.seq, d: input.d };
      if (input.room !== undefined) msg.room = input.room;
      this._send(msg);
    }
  }
}

/**
 * Join `roomId` on the server at `base` (`ws://host:port`); resolves once the `welcome`
 * came, rejects with {@link ConnectRefused} when the server closes first (a browser sees a
 * refused handshake, e.g. HTTP 403, as code 1006 without reason).
 * @param {string} base @param {string} roomId @param {ClientOptions} [options]
 * @returns {Promise<RoomClient>}
 */
export async function connect(base, roomId, options = {}) {
  const client = new RoomClient(base, roomId, options);
  try {
    await client._start();
  } catch (error) {
    client._end();
    throw error;
  }
  return client;
}
