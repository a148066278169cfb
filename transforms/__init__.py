"""Pure DataFrame -> DataFrame transforms and Column -> Column helpers.

Nothing here reads, writes, collects, counts or looks up the environment: a transform
takes DataFrames and parameters and returns a DataFrame."""
