"""Models: training, the MLflow tracking store and registry, and scoring.

- `tracking`: where MLflow keeps runs and models (local SQLite or Databricks/UC);
- `estimator`: the scikit-learn pipeline, the time split and the metrics;
- `baseline`: the reference distributions logged for drift monitoring;
- `training_run`: logging one training run;
- `registry`: registering versions, aliases, resolving `@champion` to a version;
- `promotion`: the champion/challenger rule;
- `signature`: whether a feature snapshot fits a model;
- `scorer`: the model as a Spark UDF.

Jobs (`train`, `score`) compose these; nothing here reads or writes lake tables.
"""
