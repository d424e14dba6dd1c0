"""The latency core (ground floor): the HDR layout, the per-second window wire format and
its exact merge, and the one sparse-histogram value type that results and analysis read.

No I/O beyond bytes; importable from Locust's gevent processes and from the orchestrator.

    hdr.py      the layout (1 us .. 60 s, 3 digits), fast record/clear over hdrh
    windows.py  WindowRecord (windows.parquet row, worker -> master message), WindowStore
    sparse.py   SparseHist: non-zero slots + counts; exact merge, percentiles, mean
"""
