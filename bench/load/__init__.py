"""Machinery shared by the HTTP benchmarks (``api_bench.py``, ``invite_bench.py``): the server
under test as a subprocess (``server``), the load generator — wrk replaying pre-built requests
(``wrk``, ``replay.lua``) — and CPU accounting by process group (``cpu``)."""
