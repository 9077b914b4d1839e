"""Remote runs on Ray: ``tidal submit``, the queue in front of the cluster and its dispatcher.

Modules: ``snapshot`` (the working directory as git would commit it), ``spec`` (what a run asks
for), ``resources`` (why a run waits), ``cluster`` (Ray Jobs), ``handover`` (a queued run to Ray,
and Ray's state back to the run), ``dispatcher`` (the thread in ``tidal server``), ``queue``,
``submit``, ``follow`` (logs).
"""
