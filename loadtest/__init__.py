"""tickrelay load tester: simulated players, a benchmark suite and baseline servers.

The hot path (`wsclient`, `player`, `tracking`, `stats`) deliberately avoids the `protocol`
package and pydantic: the driver shares a small machine with the server under test, so every
microsecond it spends per message is a microsecond stolen from the measurement.
"""
