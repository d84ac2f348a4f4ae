"""Unit tests of the load tester's pure pieces: no sockets, no processes, no clocks."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import jwt
import msgpack
import pytest

from tickrelay.loadtest.bench import median_row
from tickrelay.loadtest.benchdoc import LIMITS_END, LIMITS_START, _ratio_cell, write_doc
from tickrelay.loadtest.config import LoadConfig, SlowConfig
from tickrelay.loadtest.frames import SharedDecoder, decoder, input_encoder
from tickrelay.loadtest.interval import IntervalStats
from tickrelay.loadtest.metrics import parse_tick_lag_p99
from tickrelay.loadtest.plan import plan_seats, slow_indices
from tickrelay.loadtest.profile_groups import group_samples
from tickrelay.loadtest.report import driver_verdict
from tickrelay.loadtest.runner import RunResult
from tickrelay.loadtest.stats import Histogram, bucket_bounds, bucket_index, percentile
from tickrelay.loadtest.tracking import AckTracker, StateTracker
from tickrelay.loadtest.wsclient import WsConnection, accept_key, apply_mask, frame_header

# -- percentiles and histograms --------------------------------------------------------------


def test_percentile_nearest_rank() -> None:
    values = sorted([15, 20, 35, 40, 50])
    assert percentile(values, 5) == 15
    assert percentile(values, 30) == 20
    assert percentile(values, 40) == 20
    assert percentile(values, 50) == 35
    assert percentile(values, 100) == 50
    assert percentile(values, 0) == 15
    assert percentile([], 50) is None
    with pytest.raises(ValueError):
        percentile(values, 101)


def test_percentile_of_1_to_100() -> None:
    values = list(range(1, 101))
    assert [percentile(values, p) for p in (50, 90, 99, 100)] == [50, 90, 99, 100]


def test_bucket_bounds_contain_their_values() -> None:
    rng = random.Random(3)
    values = [*range(0, 2000), *(rng.randrange(2000, 10**9) for _ in range(5000))]
    for v in values:
        lo, hi = bucket_bounds(bucket_index(v))
        assert lo <= v < hi
        assert hi - lo <= max(1, lo // 128 + 1)  # < 1 % wide above the linear range


def test_histogram_percentiles_close_to_exact() -> None:
    rng = random.Random(7)
    samples = [rng.lognormvariate(-3.5, 1.0) for _ in range(20_000)]  # ~30 ms median, seconds
    h = Histogram()
    for s in samples:
        h.record(s)
    exact = sorted(int(s * 1e6) for s in samples)
    for p in (50, 90, 99, 99.9):
        got = h.percentile_us(p)
        want = percentile(exact, p)
        assert got is not None and want is not None
        assert abs(got - want) <= want * 0.01 + 1, (p, got, want)
    assert h.percentile_us(100) == max(exact) == h.max_us
    assert h.count == len(samples)


def test_histogram_merge_and_roundtrip() -> None:
    a, b, both = Histogram(), Histogram(), Histogram()
    for i in range(1, 500):
        (a if i % 3 else b).record(i / 1000)
        both.record(i / 1000)
    merged = Histogram.merged([a, Histogram.from_dict(json.loads(json.dumps(b.to_dict())))])
    assert merged.to_dict() == both.to_dict()
    assert merged.summary_ms((50, 99)) == both.summary_ms((50, 99))
    assert Histogram().summary_ms() == {
        "count": 0,
        "mean": None,
        "p50": None,
        "p90": None,
        "p99": None,
        "max": None,
    }


def test_negative_durations_count_as_zero() -> None:
    h = Histogram()
    h.record(-0.5)
    assert h.count == 1 and h.max_us == 0 and h.percentile_us(50) == 0


# -- ack latency from snap / delta streams ---------------------------------------------------


def snap(tick: int, acks: dict[str, int]) -> dict[str, Any]:
    players = {pid: {"x": 0} for pid in acks}
    return {"t": "snap", "tick": tick, "st": 0, "s": {"players": players, "room": {}}, "acks": acks}


def delta(tick: int, base: int, acks: dict[str, Any]) -> dict[str, Any]:
    return {"t": "delta", "tick": tick, "base": base, "st": 0, "d": {}, "acks": acks}


def test_ack_latency_from_snap_then_deltas() -> None:
    tr = StateTracker("me")
    lat, gaps = Histogram(), Histogram()
    tr.acks.sent(1, 0.000)
    tr.acks.sent(2, 0.010)
    tr.acks.sent(3, 0.020)
    # full map: our ack is still 0, another player's moves
    assert tr.on_state(snap(10, {"me": 0, "other": 5}), 0.030, lat, gaps) == 0
    assert lat.count == 0
    # delta that changed nobody's ack
    tr.on_state(delta(11, 10, {}), 0.040, lat, gaps)
    assert lat.count == 0
    # our ack jumps to 2: inputs 1 and 2 are acknowledged by this message
    tr.on_state(delta(12, 11, {"me": 2}), 0.060, lat, gaps)
    assert lat.count == 2
    assert lat.max_us == 60_000
    # another player's ack only, and tick 13 skipped
    assert tr.on_state(delta(14, 12, {"other": 7}), 0.070, lat, gaps) == 1
    assert lat.count == 2 and tr.acks.pending == 1
    tr.on_state(delta(15, 14, {"me": 3}), 0.100, lat, gaps)
    assert lat.count == 3
    assert lat.total_us == 60_000 + 50_000 + 80_000
    assert tr.skipped == 1
    assert tr.base_mismatches == 0
    assert gaps.count == 4  # between 5 state messages
    assert tr.states == 5


def test_ack_in_a_later_snap_counts_as_full_map() -> None:
    tr = StateTracker("me")
    lat, gaps = Histogram(), Histogram()
    tr.acks.sent(1, 1.0)
    tr.on_state(snap(3, {"me": 1}), 1.25, lat, gaps)
    assert lat.count == 1 and lat.max_us == 250_000


def test_refused_input_is_acked_by_the_next_applied_one() -> None:
    tr = StateTracker("me")
    lat, gaps = Histogram(), Histogram()
    tr.acks.sent(1, 0.0)
    tr.acks.sent(2, 0.1)
    tr.on_state(delta(5, 4, {"me": 2}), 0.2, lat, gaps)  # seq 1 was refused, 2 applied
    assert lat.count == 2 and tr.acks.ack == 2 and tr.acks.pending == 0


def test_null_ack_stale_ack_and_spectator_record_nothing() -> None:
    lat, gaps = Histogram(), Histogram()
    tr = StateTracker("me")
    tr.acks.sent(5, 0.0)
    tr.on_state(delta(2, 1, {"me": None}), 0.1, lat, gaps)
    tr.on_state(delta(3, 2, {"me": 4}), 0.1, lat, gaps)
    assert lat.count == 0 and tr.acks.pending == 1
    spectator = StateTracker(None)
    spectator.acks.sent(1, 0.0)
    spectator.on_state(snap(1, {"me": 9}), 0.1, lat, gaps)
    assert lat.count == 0


def test_delta_on_a_base_we_did_not_receive_is_counted() -> None:
    tr = StateTracker("me")
    lat, gaps = Histogram(), Histogram()
    tr.on_state(snap(10, {"me": 0}), 0.0, lat, gaps)
    tr.on_state(delta(12, 11, {}), 0.1, lat, gaps)
    assert tr.base_mismatches == 1
    tr.reset_stream()  # a new connection starts a new stream: no gap, no mismatch
    tr.on_state(snap(40, {"me": 0}), 0.2, lat, gaps)
    assert tr.skipped == 1 and tr.base_mismatches == 1


def test_censor_records_only_old_pending_inputs() -> None:
    acks = AckTracker()
    for seq, t in ((1, 0.0), (2, 0.5), (3, 0.9)):
        acks.sent(seq, t)
    h = Histogram()
    assert acks.censor(1.0, 0.25, h) == 2
    assert h.count == 2 and h.max_us == 1_000_000
    assert acks.forget() == 3 and acks.pending == 0


# -- frames ----------------------------------------------------------------------------------


@pytest.mark.parametrize("codec", ["msgpack", "json"])
@pytest.mark.parametrize(("seq", "x", "y"), [(1, 0, 0), (127, -33, 200), (2**40, -(2**20), 7)])
def test_input_encoding(codec: Any, seq: int, x: int, y: int) -> None:
    payload = input_encoder(codec)(seq, x, y)
    assert decoder(codec)(payload) == {"t": "input", "seq": seq, "d": {"x": x, "y": y}}


def test_shared_decoder_decodes_identical_frames_once_and_stays_bounded() -> None:
    dec = SharedDecoder("msgpack", limit=4)
    a = msgpack.packb({"t": "snap", "tick": 1})
    first = dec(a)
    assert dec(bytes(a)) is first  # equal bytes, different object: same decoded message
    for tick in range(2, 10):
        assert dec(msgpack.packb({"t": "snap", "tick": tick}))["tick"] == tick
    assert len(dec._cache) <= 4


# -- websocket framing -----------------------------------------------------------------------


class FakeTransport:
    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.written.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = True

    def get_write_buffer_size(self) -> int:
        return 0


class Recorder:
    def __init__(self) -> None:
        self.opened: list[str | None] = []
        self.messages: list[tuple[bytes, bool]] = []
        self.closed: list[tuple[int, str, str | None]] = []
        self.nbytes = 0

    def ws_open(self, subprotocol: str | None) -> None:
        self.opened.append(subprotocol)

    def ws_data(self, nbytes: int) -> None:
        self.nbytes += nbytes

    def ws_message(self, payload: bytes, text: bool) -> None:
        self.messages.append((payload, text))

    def ws_closed(self, code: int, reason: str, error: str | None) -> None:
        self.closed.append((code, reason, error))


def server_frame(opcode: int, payload: bytes, fin: bool = True) -> bytes:
    n = len(payload)
    b0 = (0x80 if fin else 0) | opcode
    if n < 126:
        return bytes((b0, n)) + payload
    if n < 65536:
        return bytes((b0, 126)) + n.to_bytes(2, "big") + payload
    return bytes((b0, 127)) + n.to_bytes(8, "big") + payload


def unmask_client_frame(frame: bytes) -> tuple[int, bytes]:
    assert frame[1] & 0x80, "client frames must be masked"
    n, pos = frame[1] & 0x7F, 2
    if n == 126:
        n, pos = int.from_bytes(frame[2:4], "big"), 4
    elif n == 127:
        n, pos = int.from_bytes(frame[2:10], "big"), 10
    mask = frame[pos : pos + 4]
    return frame[0] & 0x0F, apply_mask(frame[pos + 4 : pos + 4 + n], mask)


def open_connection() -> tuple[WsConnection, Recorder, FakeTransport, bytes]:
    rec, tr = Recorder(), FakeTransport()
    conn = WsConnection(rec, "127.0.0.1", 8000, "/ws/rooms/a", ("tickrelay.v1.msgpack",))
    conn.connection_made(tr)  # type: ignore[arg-type]
    request = tr.written.pop().decode()
    assert request.startswith("GET /ws/rooms/a HTTP/1.1\r\n")
    assert "Sec-WebSocket-Protocol: tickrelay.v1.msgpack" in request
    response = (
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Accept: {accept_key(conn._key)}\r\n"
        "Sec-WebSocket-Protocol: tickrelay.v1.msgpack\r\n\r\n"
    ).encode()
    return conn, rec, tr, response


def test_accept_key_matches_rfc6455_example() -> None:
    assert accept_key("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


@pytest.mark.parametrize("size", [0, 125, 126, 65535, 65536])
def test_client_frames_are_masked_and_sized(size: int) -> None:
    payload = bytes(random.Random(size).randbytes(size))
    mask = b"\x01\x02\x03\x04"
    frame = frame_header(2, size, mask) + apply_mask(payload, mask)
    assert unmask_client_frame(frame) == (2, payload)


def test_frames_split_anywhere_are_reassembled() -> None:
    conn, rec, tr, response = open_connection()
    big = bytes(range(256)) * 300  # 76,800 bytes: 64-bit length
    stream = (
        response
        + server_frame(2, b"one")
        + server_frame(1, b'{"t":"x"}')
        + server_frame(2, big)
        + server_frame(2, b"fr", fin=False)
        + server_frame(9, b"ping!")  # a control frame between fragments
        + server_frame(0, b"ag", fin=False)
        + server_frame(0, b"ment", fin=True)
        + server_frame(2, b"x" * 300)
    )
    rng = random.Random(1)
    pos = 0
    while pos < len(stream):
        step = rng.randint(1, 700)
        conn.data_received(stream[pos : pos + step])
        pos += step
    assert rec.opened == ["tickrelay.v1.msgpack"]
    assert rec.messages == [
        (b"one", False),
        (b'{"t":"x"}', True),
        (big, False),
        (b"fragment", False),
        (b"x" * 300, False),
    ]
    assert rec.nbytes == len(stream)
    assert [unmask_client_frame(f) for f in tr.written] == [(10, b"ping!")]  # the pong


def test_server_close_is_reported_and_answered() -> None:
    conn, rec, tr, response = open_connection()
    conn.data_received(response + server_frame(8, (4011).to_bytes(2, "big") + b"slow"))
    assert rec.closed == [(4011, "slow", None)]
    assert tr.closed
    assert unmask_client_frame(tr.written[-1]) == (8, (4011).to_bytes(2, "big"))
    conn.connection_lost(None)
    assert len(rec.closed) == 1  # reported once


def test_failed_handshake_is_an_error_not_a_message() -> None:
    conn, rec, _tr, _ = open_connection()
    conn.data_received(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
    conn.connection_lost(None)
    assert rec.opened == [] and rec.messages == []
    assert rec.closed == [(1006, "", "http 403")]


def test_sending_after_close_is_a_no_op() -> None:
    conn, _rec, tr, response = open_connection()
    conn.data_received(response)
    conn.send(b"hello")
    assert unmask_client_frame(tr.written[-1]) == (2, b"hello")
    conn.close(1000)
    assert unmask_client_frame(tr.written[-1]) == (8, (1000).to_bytes(2, "big"))
    n = len(tr.written)
    conn.send(b"late")
    assert len(tr.written) == n


# -- plan, tokens, metrics, verdict, doc -----------------------------------------------------


def test_seats_split_across_workers_exactly_once() -> None:
    cfg = LoadConfig(
        rooms=5,
        players=3,
        spectators=1,
        workers=3,
        slow=SlowConfig(fraction=0.2),
        secret="s" * 32,
        token_rooms=True,
    )
    seats = [s for w in range(3) for s in plan_seats(cfg, w)]
    assert sorted(s.index for s in seats) == list(range(20))
    assert sum(s.spectator for s in seats) == 5
    assert len(slow_indices(cfg)) == 3 == sum(s.slow for s in seats)
    assert not any(s.slow and s.spectator for s in seats)
    seat = seats[0]
    claims = jwt.decode(seat.token or "", "s" * 32, algorithms=["HS256"])
    assert claims["sub"] == f"{cfg.room_prefix}-p{seat.index}"
    assert claims["rooms"] == [seat.room] and claims["exp"] > 0


def test_config_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        LoadConfig(url="http://127.0.0.1:1")
    with pytest.raises(ValueError):
        LoadConfig(players=0, spectators=0)
    assert LoadConfig(rooms=10, players=8, ramp=40, warmup=1, duration=3).window == (3, 6)


@pytest.mark.parametrize(
    ("body", "ms"),
    [
        (
            '# TYPE t summary\ntickrelay_tick_lag_seconds{quantile="0.5"} 0.001\n'
            'tickrelay_tick_lag_seconds{quantile="0.99"} 0.0042\n',
            4.2,
        ),
        ("tick_lag_p99_ms 7\n", 7.0),
        ('{"tick_lag_ms": {"p50": 1, "p99": 3.5}}', 3.5),
        ('{"rooms": 1, "tick": {"ticks": 9, "lag_p50_ms": 1.0, "lag_p99_ms": 2.5}}', 2.5),
        ('{"rooms": 3}', None),
        ("tickrelay_rooms 3\n", None),
        ("<html>not found</html>", None),
    ],
)
def test_tick_lag_parser(body: str, ms: float | None) -> None:
    assert parse_tick_lag_p99(body) == ms


def test_driver_verdict_flags_a_busy_driver_only() -> None:
    cfg = LoadConfig()
    window = IntervalStats()
    window.cpu = {"w0": 1.0}
    window.loop_lag.record(0.001)
    calm = driver_verdict(RunResult(cfg=cfg, driver_cores=1), window, seconds=10.0)
    assert calm["bottleneck"] is False and calm["reasons"] == []
    window.cpu = {"w0": 9.6}
    busy = driver_verdict(RunResult(cfg=cfg, driver_cores=1), window, seconds=10.0)
    assert busy["bottleneck"] is True and len(busy["reasons"]) == 2
    window.cpu = {"w0": 0.1}
    for _ in range(10):
        window.loop_lag.record(0.2)
    laggy = driver_verdict(RunResult(cfg=cfg, driver_cores=1), window, seconds=10.0)
    assert laggy["bottleneck"] is True and "lag" in laggy["reasons"][0]


def test_doc_regeneration_keeps_the_limits_section(tmp_path: Path) -> None:
    row = {
        "server": "floor",
        "rooms": 25,
        "players": 200,
        "msgs_per_s": 4000.0,
        "server_cpu": 0.1,
        "cpu_us_per_msg": 25.0,
        "bytes_per_msg": 300.0,
        "latency_p50_ms": 30.0,
        "latency_p99_ms": 50.0,
        "rss_mb": 30.0,
        "rss_per_player_kb": 17.0,
        "tick_lag_p99_ms": None,
        "driver_bound": False,
        "driver_reasons": [],
        "saturated": None,
    }
    out = {
        "command": "tickrelay-loadtest bench",
        "started_at": "2026-01-01T00:00:00",
        "seconds": 1.0,
        "machine": {
            "cpu": "x",
            "cores": 2,
            "loadavg_before": [0, 0, 0],
            "python": "3.11",
            "packages": {},
            "pinning": "none",
        },
        "options": {
            "players": 8,
            "rate": 20.0,
            "ramp": 10.0,
            "warmup": 2.0,
            "measure": 10.0,
            "saturation_cpu": 0.95,
            "saturation_p99_ms": 1000.0,
            "stall_warmup": 40.0,
        },
        "sweep": [row],
        "stall": [],
        "idle": [],
        "skipped": {"tickrelay": "not there"},
    }
    doc = tmp_path / "docs" / "PERFORMANCE.md"
    plot = tmp_path / "docs" / "perf" / "bench.png"
    write_doc(doc, out, plot)
    text = doc.read_text()
    assert "| floor | 25 | 200 | 4000 |" in text and "](perf/bench.png)" in text
    assert "tickrelay-loadtest bench" in text and "TODO" in text
    filled = text.replace(
        text[text.index(LIMITS_START) : text.index(LIMITS_END)],
        f"{LIMITS_START}\nfloor: bound by frame writes.\n",
    )
    doc.write_text(filled)
    write_doc(doc, out, plot)
    again = doc.read_text()
    assert "floor: bound by frame writes." in again and "TODO" not in again


def _round(cpu: float | None, p99: float = 50.0, driver_bound: bool = False) -> dict[str, Any]:
    return {
        "server": "s",
        "rooms": 25,
        "cpu_us_per_msg": cpu,
        "latency_p99_ms": p99,
        "driver_bound": driver_bound,
    }


def test_a_repeated_step_keeps_the_median_round_and_every_rounds_figure() -> None:
    row = median_row([_round(50.0, 60.0), _round(40.0, 55.0), _round(None, 900.0)])
    assert row["cpu_us_per_msg"] == 50.0  # None (no message received) sorts last
    assert row["rounds_cpu_us_per_msg"] == [50.0, 40.0, None]
    assert row["rounds_p99_ms"] == [60.0, 55.0, 900.0]


def test_the_median_round_is_taken_among_rounds_whose_driver_kept_up() -> None:
    row = median_row([_round(30.0, driver_bound=True), _round(40.0), _round(50.0)])
    assert row["cpu_us_per_msg"] == 40.0 and not row["driver_bound"]
    assert row["rounds_driver_bound"] == 1
    only_bound = median_row([_round(30.0, driver_bound=True)])
    assert only_bound["driver_bound"]


def test_repeated_ratios_pair_the_rounds_and_show_their_range() -> None:
    mine = median_row([_round(45.0), _round(36.0), _round(40.0)])
    ref = median_row([_round(50.0), _round(40.0), _round(50.0)])
    assert _ratio_cell(mine, ref) == "0.90x (0.80-0.90)"
    assert _ratio_cell(_round(45.0), _round(50.0)) == "0.90x"  # one round: no range


def test_profile_groups_sum_samples_by_the_kind_of_work() -> None:
    run = "_run_module_as_main (<frozen runpy>:198);Runner.run (asyncio/runners.py:118)"
    raw = [
        f"{run};TransportHandle.write_frame (server/transport.py:98);write (libc.so.6) 30",
        f"{run};Connection.handle_frame (server/connection.py:172);"
        "_check_tree (protocol/codec.py:81) 20",
        f"{run};Room._step (server/room.py:381);_merge (protocol/patch.py:37) 10",
        f"{run};Room._step (server/room.py:381);gc_collect_main (libpython3.11.so.1.0) 25",
        f"{run};Frame.parse (websockets/frames.py:323) 15",
        "",
    ]
    groups, total = group_samples(raw)
    assert total == 100
    assert groups == {
        "socket writes (syscall)": 30,
        "tickrelay: decode + validate": 20,
        "tickrelay: merge patch": 10,
        "cyclic GC": 25,
        "websockets (frame parsing, protocol)": 15,
    }


def test_rooms_alternate_over_the_urls_of_several_servers() -> None:
    cfg = LoadConfig(url="ws://127.0.0.1:9001, ws://127.0.0.1:9002/base", rooms=3, players=2)
    seats = plan_seats(cfg, 0)
    by_room = {seat.room: cfg.host_port(seat.server) for seat in seats}
    ports = [by_room[room][1] for room in sorted(by_room)]
    assert sorted(ports) == [9001, 9001, 9002]
    assert {cfg.base_path(seat.server) for seat in seats} == {"", "/base"}
    assert all(len({s.server for s in seats if s.room == room}) == 1 for room in by_room)


def test_every_url_of_a_list_must_be_ws() -> None:
    with pytest.raises(ValueError, match="only ws://"):
        LoadConfig(url="ws://127.0.0.1:9001,http://127.0.0.1:9002")
