"""Looking at a reward (notebook 03): :mod:`~ume_rl.inspection.probes` (corrupted variants, hacking probes),
:mod:`~ume_rl.inspection.plots` (figures) and :mod:`~ume_rl.inspection.widgets` (the live scoring panel).
Uses :mod:`ume_rl.rewards`."""
