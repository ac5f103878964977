"""One data-access style per domain: a domain's SQL runs only in the `queries.py` beside its routes,
which loads its `sql/<domain>/` files with `service.db.sql.load_sql`; service modules call those
functions and keep the business rules (and open the transactions). Read by parsing every module
under service/, so a new module that runs a statement of its own fails here."""

from __future__ import annotations

import ast
from pathlib import Path

from service.db.paths import CHECKOUT_ROOT as PROJECT_ROOT

SERVICE = PROJECT_ROOT / "service"

# The methods of an asyncpg connection or pool that run a statement.
RUNS_A_STATEMENT = {
    "execute",
    "executemany",
    "fetch",
    "fetchrow",
    "fetchval",
    "fetchmany",
    "cursor",
    "prepare",
    "copy_from_query",
    "copy_from_table",
    "copy_to_table",
    "copy_records_to_table",
}

# Modules allowed to do so besides */queries.py, each with its reason.
EXCEPTIONS = {
    "service/db": "the database package itself: the pool's set-up, migrations, the embedded server",
}


def _exempt(relative: str) -> bool:
    return relative.endswith("/queries.py") or any(
        relative == prefix or relative.startswith(prefix + "/") for prefix in EXCEPTIONS
    )


def _offences(tree: ast.AST) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        function = node.func
        name = function.id if isinstance(function, ast.Name) else getattr(function, "attr", None)
        if name == "load_sql":
            found.append((node.lineno, "load_sql(...)"))
        elif isinstance(function, ast.Attribute) and name in RUNS_A_STATEMENT:
            found.append((node.lineno, f".{name}(...)"))
    return found


def _modules() -> list[tuple[str, Path]]:
    return sorted((str(path.relative_to(PROJECT_ROOT)), path) for path in SERVICE.rglob("*.py"))


def test_only_queries_modules_load_sql_or_run_statements() -> None:
    offences = [
        f"{relative}:{line}: {what}"
        for relative, path in _modules()
        if not _exempt(relative)
        for line, what in _offences(ast.parse(path.read_text(encoding="utf-8")))
    ]
    assert not offences, (
        "SQL runs outside a domain's queries.py (move it into the domain's queries.py, or list the "
        "module in EXCEPTIONS with its reason):\n" + "\n".join(offences)
    )


def test_the_check_sees_a_statement_and_a_load() -> None:
    sample = ast.parse(
        "async def f(pool):\n"
        "    SQL = load_sql('x/y')\n"
        "    await pool.fetchrow(SQL, 1)\n"
        "    async with pool.acquire() as c, c.transaction():\n"
        "        await c.execute(SQL)\n"
    )
    assert [what for _, what in _offences(sample)] == ["load_sql(...)", ".fetchrow(...)", ".execute(...)"]


def test_every_domain_with_sql_files_has_a_queries_module() -> None:
    """Each sql/<domain>/ is run by one queries module: the domain's, or the one named here."""
    home = {
        "caller_cache": "security/queries.py",  # the caller cache lives in service/security
        "embedded": "db/embedded.py",  # the embedded server's set-up, in the database package
    }
    sql_root = PROJECT_ROOT / "sql"
    missing = [
        domain.name
        for domain in sorted(sql_root.iterdir())
        if domain.is_dir()
        and domain.name != "bench"  # bench/'s own statements, run by bench/scenarios.py
        and not (SERVICE / home.get(domain.name, f"{domain.name}/queries.py")).exists()
    ]
    assert not missing
