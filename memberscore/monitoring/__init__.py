"""Monitoring: the I/O side of `memberscore monitor` and of the run report.

- `baselines`: the training baseline of the model version that scored the day;
- `sources`: freshness of the bronze sources and late rows, against D's cutoff;
- `drift`: measure a day's drift for every configured model (`measure_drift`),
  raising `memberscore.errors.DriftAlertError` (exit status 10);
- `report_data`: the figures the run report shows, read from the lake.

The statistics themselves are pure and live in `memberscore.transforms.drift`; the
HTML report is `memberscore.reporting`.  See docs/monitoring.md.
"""
