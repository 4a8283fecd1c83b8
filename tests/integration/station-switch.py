#!/usr/bin/env python3
"""The ground network in front of several ground stations, for test-stations.sh.

    station-switch.py PORT_FILE LOG STATION_PORT...

Listens on 127.0.0.1 (a free port, written to PORT_FILE) and hands each TCP connection a
node opens to the next station in turn (127.0.0.1:STATION_PORT, round robin); a station
that refuses the connection (down) is skipped for the next. A connection ends when it has
been quiet for QUIET seconds after the station spoke last (the node has its answer: the
pass is over), so the node's next pass opens a new connection, to the other station; a
node waiting for an answer is never cut. One line per connection to LOG:
"<station port> <client port>", and "refused <station port>" for a station that was down.
SIGTERM or SIGINT: stop.
"""
import os
import selectors
import signal
import socket
import sys
import time

QUIET = 0.5


def main():
    port_file, log_path, stations = sys.argv[1], sys.argv[2], [int(p) for p in sys.argv[3:]]
    log = open(log_path, "a", buffering=1)
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(256)
    listener.setblocking(False)
    sel = selectors.DefaultSelector()
    sel.register(listener, selectors.EVENT_READ, None)
    pairs = {}  # socket -> [peer, is_station, pair state]
    turn = 0
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))
    tmp = port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write("%d\n" % listener.getsockname()[1])
    os.rename(tmp, port_file)

    def close(state):
        for s in (state["node"], state["station"]):
            try:
                sel.unregister(s)
            except (KeyError, ValueError):
                pass
            pairs.pop(s, None)
            s.close()

    while not stop:
        for key, _ in sel.select(timeout=0.1):
            s = key.fileobj
            if s is listener:
                try:
                    node, addr = listener.accept()
                except BlockingIOError:
                    continue
                station = None
                for _ in stations:
                    port = stations[turn % len(stations)]
                    turn += 1
                    try:
                        station = socket.create_connection(("127.0.0.1", port), timeout=2)
                        break
                    except OSError:
                        log.write("refused %d\n" % port)
                        station = None
                if station is None:
                    node.close()
                    continue
                log.write("%d %d\n" % (port, addr[1]))
                node.setblocking(False)
                station.setblocking(False)
                state = {"node": node, "station": station, "last": time.monotonic(), "station_last": False}
                pairs[node] = (station, False, state)
                pairs[station] = (node, True, state)
                sel.register(node, selectors.EVENT_READ, None)
                sel.register(station, selectors.EVENT_READ, None)
                continue
            if s not in pairs:
                continue
            peer, is_station, state = pairs[s]
            try:
                data = s.recv(65536)
            except OSError:
                data = b""
            if not data:
                close(state)
                continue
            try:
                peer.setblocking(True)
                peer.sendall(data)
                peer.setblocking(False)
            except OSError:
                close(state)
                continue
            state["last"] = time.monotonic()
            state["station_last"] = is_station
        now = time.monotonic()
        for state in {id(v[2]): v[2] for v in pairs.values()}.values():
            if state["station_last"] and now - state["last"] >= QUIET:
                close(state)
    for state in {id(v[2]): v[2] for v in pairs.values()}.values():
        close(state)


if __name__ == "__main__":
    main()
