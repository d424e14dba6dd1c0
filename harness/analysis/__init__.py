"""Analysis: turn measurements into decisions. Two independent packages, both pure (arrays and
records in, frozen records out):

    ab/        A/B significance for `harness compare`
    capacity/  curve fits, sweep search, capacity plans, HPA manifests and simulation
"""
