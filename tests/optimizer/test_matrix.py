"""Matrix providers: the offline defaults and the OSRM-compatible table client."""

from __future__ import annotations

import json
import math
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer

import numpy as np
import pytest

from optimizer import XY, EuclideanProvider, GeoPoint, GreatCircleProvider


def test_pure_path_does_not_import_httpx() -> None:
    import subprocess

    code = "import sys, optimizer; optimizer.solve; print('httpx' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


def test_euclidean_is_double_precision() -> None:
    m = EuclideanProvider().matrix([XY(0, 0), XY(3, 4), XY(1, 1)])
    assert m.distances[0, 1] == 5.0
    assert m.durations[2, 0] == math.sqrt(2)


def test_great_circle_circuity_and_speed_bands() -> None:
    provider = GreatCircleProvider(circuity=1.0, speed_bands=((1000.0, 36.0), (math.inf, 72.0)))
    # One degree of latitude is about 111.2 km.
    m = provider.matrix([GeoPoint(26.0, 119.0), GeoPoint(27.0, 119.0)])
    assert m.distances[0, 1] == pytest.approx(111_195, rel=1e-3)
    # first 1 km at 10 m/s, the rest at 20 m/s
    assert m.durations[0, 1] == pytest.approx(100 + (m.distances[0, 1] - 1000) / 20)
    assert np.all(np.diag(m.durations) == 0)
    longer = GreatCircleProvider(circuity=1.4).matrix(
        [GeoPoint(26.0, 119.0), GeoPoint(26.1, 119.0)]
    )
    assert longer.distances[0, 1] == pytest.approx(1.4 * 11_119.5, rel=1e-3)
    with pytest.raises(ValueError):
        GreatCircleProvider(circuity=0.9)


class _FakeOsrm(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        coords = self.path.split("/table/v1/driving/")[1].split("?")[0].split(";")
        n = len(coords)
        durations = [[0.0 if i == j else 60.0 * abs(i - j) for j in range(n)] for i in range(n)]
        distances = [[0.0 if i == j else 900.0 * abs(i - j) for j in range(n)] for i in range(n)]
        if n > 2:
            durations[0][2] = None  # type: ignore[call-overload]
        body = json.dumps({"code": "Ok", "durations": durations, "distances": distances})
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def osrm_url() -> Iterator[str]:
    server = HTTPServer(("127.0.0.1", 0), _FakeOsrm)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_osrm_table_provider(osrm_url: str) -> None:
    from optimizer.osrm import OsrmTableProvider

    points = [GeoPoint(26.0, 119.0), GeoPoint(26.1, 119.1), GeoPoint(26.2, 119.2)]
    m = OsrmTableProvider(base_url=osrm_url, unreachable_s=99_999.0).matrix(points)
    assert m.durations[0, 1] == 60.0 and m.distances[1, 2] == 900.0
    assert m.durations[0, 2] == 99_999.0  # null = unreachable


def test_osrm_parse_errors() -> None:
    from optimizer.osrm import OsrmError, parse_table

    with pytest.raises(OsrmError, match="NoRoute"):
        parse_table({"code": "NoRoute", "message": "x"}, 2, 1.0, 1.0)
    with pytest.raises(OsrmError, match="2x2"):
        parse_table({"code": "Ok", "durations": [[0]], "distances": [[0]]}, 2, 1.0, 1.0)
