"""memberscore: batch member features and churn scores, from landing files to Snowflake."""

__version__ = "0.1.0"
