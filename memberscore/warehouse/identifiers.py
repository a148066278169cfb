"""Snowflake identifiers we put into SQL text, and the strict checks they pass first.

Only identifiers are ever written into SQL by this package (table, column, schema,
stage names); every value is bound (`?` placeholders, server-side) or staged as a
file.  An identifier comes from conf or from a Delta schema, so it is checked against
a strict pattern and emitted unquoted and upper-case: no quoting games, no case
surprises for analysts (`member_scores` is `MEMBER_SCORES`).
"""

from __future__ import annotations

import re

from memberscore.errors import WarehouseError

# Unquoted Snowflake identifiers: a letter or underscore, then letters, digits,
# underscores.  (`$` is legal in Snowflake but refused here: nothing of ours needs it.)
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,254}$")
# Snowflake's reserved keywords (and ANSI ones it refuses as unquoted identifiers):
# a column named like one would break every statement that names it.
RESERVED = frozenset((
    "ACCOUNT", "ALL", "ALTER", "AND", "ANY", "AS", "BETWEEN", "BY", "CASE", "CAST",
    "CHECK", "COLUMN", "CONNECT", "CONNECTION", "CONSTRAINT", "CREATE", "CROSS", "CURRENT",
    "CURRENT_DATE", "CURRENT_TIME", "CURRENT_TIMESTAMP", "CURRENT_USER", "DATABASE",
    "DELETE", "DISTINCT", "DROP", "ELSE", "EXISTS", "FALSE", "FOLLOWING", "FOR", "FROM",
    "FULL", "GRANT", "GSCLUSTER", "GROUP", "HAVING", "ILIKE", "IN", "INCREMENT", "INNER",
    "INSERT", "INTERSECT", "INTO", "IS", "ISSUE", "JOIN", "LATERAL", "LEFT", "LIKE",
    "LOCALTIME", "LOCALTIMESTAMP", "MINUS", "NATURAL", "NOT", "NULL", "OF", "ON", "OR",
    "ORDER", "ORGANIZATION", "QUALIFY", "REGEXP", "REVOKE", "RIGHT", "RLIKE", "ROW",
    "ROWS", "SAMPLE", "SCHEMA", "SELECT", "SET", "SOME", "START", "TABLE", "TABLESAMPLE",
    "THEN", "TO", "TRIGGER", "TRUE", "TRY_CAST", "UNION", "UNIQUE", "UPDATE", "USING",
    "VALUES", "VIEW", "WHEN", "WHENEVER", "WHERE", "WINDOW", "WITH",
))
# Account identifiers: `orgname-account`, `xy12345.eu-west-1.aws`, `memberscore_local`.
_ACCOUNT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,254}$")
# Login names may hold e-mail style characters; they are connection arguments, never SQL.
_USER = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.@\-$]{0,254}$")
_HOST = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9\-.]{0,251}[A-Za-z0-9])?$")
# Run ids become part of a stage path: `20261121T101500Z-3fa9c1` or a Databricks run id.
_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")


def identifier(name: str, what: str) -> str:
    """`name` as an upper-case unquoted Snowflake identifier, or WarehouseError.

    `what` says where the name came from, for the message ("column of member_scores").
    """
    if not isinstance(name, str) or not _IDENTIFIER.match(name):
        raise WarehouseError(
            f"invalid Snowflake identifier {name!r} ({what}): expected letters, digits "
            "and underscores, starting with a letter or underscore"
        )
    if name.upper() in RESERVED:
        raise WarehouseError(
            f"{name!r} ({what}) is a reserved word in Snowflake and cannot be used as an "
            "unquoted identifier; rename it in the lake table"
        )
    return name.upper()


# The rules of the names conf gives (the validators of memberscore.config's
# SnowflakeSettings and LakeSettings): each returns the value as written, or raises
# ValueError saying what it must be; the config names the key and the file.


def conf_identifier(name: str) -> str:
    """An identifier from conf (a database, schema, role, warehouse, catalog)."""
    if not _IDENTIFIER.match(name) or name.upper() in RESERVED:
        raise ValueError(
            "must be a Snowflake identifier (letters, digits and underscores, starting "
            f"with a letter or underscore, not a reserved word), found {name!r}"
        )
    return name


def conf_account(account: str) -> str:
    """A Snowflake account identifier from conf `snowflake.account`."""
    if not _ACCOUNT.match(account):
        raise ValueError("must be an account identifier such as 'myorg-myaccount' or "
                         f"'xy12345.eu-west-1', found {account!r}")
    return account


def conf_user(user: str) -> str:
    """A login name from conf `snowflake.user`."""
    if not _USER.match(user):
        raise ValueError(f"must be a login name (letters, digits, '_', '.', '@', '-'), "
                         f"found {user!r}")
    return user


def conf_host(host: str) -> str:
    """A host name or IPv4 address from conf `snowflake.host`."""
    if not _HOST.match(host):
        raise ValueError(f"must be a host name, found {host!r}")
    return host


def run_id_path_part(run_id: str) -> str:
    """A run id, checked before it becomes part of a stage path."""
    if not _RUN_ID.match(run_id):
        raise WarehouseError(
            f"run id {run_id!r} cannot name a stage path: expected letters, digits, "
            "'_', '.', '-' (pass a simpler --run-id)"
        )
    return run_id
