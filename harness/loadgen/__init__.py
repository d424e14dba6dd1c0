"""What the load generator runs on (ground floor): the contract between the orchestrator and
its Locust processes, importable from gevent-patched processes (no threads, no grpc, no
orchestrator imports).

    spec.py      RunSpec: the resolved run, written once, read by every Locust process
    arrivals.py  a scenario's open-loop schedules and closed-loop ticks
    schedule.py  arrival processes (constant, Poisson, ramps, trace) dealt to workers
    payloads.py  request tensors and bodies, answer labels
    health.py    the generator's per-second self-health verdict
    stream.py    the files workers and master write during a run (windows, health, events)
    recorder.py  the worker's LatencyRecorder
"""
