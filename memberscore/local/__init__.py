"""The local harness: what lets memberscore run on one laptop with no cloud account,
and what the tests use to break it on purpose.

- `warehouse_server`: the local Snowflake-compatible warehouse (fakesnow's server,
  with the fixes memberscore needs), which `memberscore warehouse` serves and every
  local publish starts when nobody serves it;
- `broker_server`: the local Kafka broker (Apache Kafka, KRaft, one node) for the
  "day published" event, which `memberscore broker` serves and every local publish
  starts when nobody serves it;
- `home_server`: what those two share: one server per home folder, found through
  its lock and state files, or started;
- `synthetic` and `landing_files`: the synthetic bank and the landing files
  `memberscore generate` and `memberscore demo` write;
- `faults`: fault injection at the publisher's steps (`MEMBERSCORE_FAULT`), for the
  tests and for drills on a staging warehouse.

Production modules never import this package at module level; three imports are
lazy and taken only locally or in a drill (the local warehouse when
`snowflake.local_server` is true, the local broker when `events.local_broker` is true
and no broker is configured, fault injection when `MEMBERSCORE_FAULT` is set).
`tests/test_layers.py` holds that, and checks that the nightly jobs load without it.
"""
