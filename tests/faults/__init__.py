"""The fault suite (`make test-faults`): real runs of memberscore against real local
homes under bad input, kills, warehouse faults, concurrency and data-quality
failures, each case checked for rows lost, doubled and secrets leaked.  See
docs/reliability.md; run with `python -m tests.faults`."""
