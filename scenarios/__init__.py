"""Locust side of the harness: protocol users, open-loop driver, load shape, the locustfile.

Importing anything here except `scenarios.launch` imports Locust, which monkey-patches the
process with gevent: only Locust processes (and people's own locustfiles) import these
modules. The orchestrator (`harness run`, `harness.load.api`) runs them as subprocesses.

    users.py      KServeHttpUser, KServeGrpcUser, TFServingUser (importable in any locustfile)
    openloop.py   OpenLoopDriver: requests at their scheduled times, lag/drops measured
    worker.py     per-worker recording, self-health and window shipping
    master.py     second 0, exact merge of the workers' windows, the end of the run
    load_shape.py HarnessShape (Locust LoadTestShape)
    locustfile.py the project's locustfile that `harness run` starts
    launch.py     starts a worker once its master's ephemeral port is known
    *.yaml        the quickstart and one example scenario per shape
"""
