"""Capacity: how far one instance goes, and how many instances a peak needs.

    curves           USL and queueing-style latency fits, the knee, max throughput under SLO
    sweep_search     grow-then-bisect search for the highest load meeting the SLO
    operating_point  one instance's concurrency and throughput (from a sweep or by hand)
    queueing         Erlang C, M/M/c waiting-time quantiles, Little's law
    planner          instances = ceil(peak x latency / concurrency), headroom, redundancy
    manifests        Deployment / Service / HPA / PDB from a plan, validated strictly
    hpa_pod          one pod as a queue (in-flight, p99 per request rate): plan and simulation
    hpa_models, hpa_sim  the Kubernetes HPA control loop replayed over a traffic trace

Pure: arrays and records in, frozen records out (the plan command writes the files).
"""
