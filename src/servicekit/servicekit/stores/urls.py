"""Store URLs: one setting says which backend a service uses and where it is.

    sqlite:///.data/package.db                     the embedded default, a file relative to the cwd
    sqlite:////var/lib/drone/package.db            an absolute path (four slashes)
    cosmos://account.documents.azure.com:443/shipping
    cosmos://127.0.0.1:8081/shipping?verify=false  a local test server with a self-signed certificate
    odbc:Driver={ODBC Driver 18 for SQL Server};Server=tcp:x.database.windows.net,1433;Database=...

The Cosmos key, when there is one, comes from its own secret setting, not from the URL.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

# The key that every Cosmos DB emulator ships with; it is public, so it protects nothing.
COSMOS_EMULATOR_KEY = (
    "C2y6yDjf5/R+ob0N8A7Cgv30VRDJIWEHLM+4QDU5DE2nQ9nDuVTqobD4b8mGGyPMbIZnqyMsEcaGQy67XIw/Jw=="
)

_ODBC_SECRET = re.compile(r"(?i)\b(pwd|password|accesstoken)\s*=\s*(\{[^}]*\}|[^;]*)")
_ODBC_INSECURE = {
    "trustservercertificate": ("yes", "true"),
    "encrypt": ("no", "false", "optional"),
}


class StoreUrlError(ValueError):
    pass


@dataclass(frozen=True)
class SqliteUrl:
    path: Path


@dataclass(frozen=True)
class CosmosUrl:
    endpoint: str
    database: str
    verify_tls: bool = True


@dataclass(frozen=True)
class OdbcUrl:
    connection_string: str
    options: dict[str, str] = field(default_factory=dict)

    @property
    def driver(self) -> str:
        return self.options.get("driver", "").strip("{}")


StoreUrl = SqliteUrl | CosmosUrl | OdbcUrl


def parse_store_url(url: str) -> StoreUrl:
    scheme, _, rest = url.partition(":")
    match scheme.lower():
        case "sqlite":
            if not rest.startswith("///") or len(rest) == 3:
                raise StoreUrlError("a SQLite store URL looks like sqlite:///path/to/file.db")
            return SqliteUrl(Path(rest[3:]))
        case "cosmos":
            parts = urlsplit(url)
            database = parts.path.strip("/")
            if not parts.hostname or not database or "/" in database:
                raise StoreUrlError("a Cosmos store URL looks like cosmos://host:port/database")
            query = {k.lower(): v[-1] for k, v in parse_qs(parts.query).items()}
            verify = query.get("verify", "true").lower() not in ("false", "0", "no")
            port = f":{parts.port}" if parts.port else ""
            return CosmosUrl(f"https://{parts.hostname}{port}/", database, verify)
        case "odbc":
            if "=" not in rest:
                raise StoreUrlError("an ODBC store URL looks like odbc:Driver={...};Server=...")
            return OdbcUrl(rest, _odbc_options(rest))
        case _:
            raise StoreUrlError(f"unknown store URL scheme {scheme!r} (sqlite, cosmos or odbc)")


def redact_store_url(url: str) -> str:
    """The URL with passwords and tokens replaced, fit for a log line."""
    return _ODBC_SECRET.sub(lambda m: f"{m.group(1)}=***", url)


def insecure_store_reasons(url: str, *, setting: str, key: str | None = None) -> list[str]:
    """Why this store configuration must not be used outside development (empty when it may)."""
    try:
        parsed = parse_store_url(url)
    except StoreUrlError as exc:
        return [f"{setting}: {exc}"]
    reasons = []
    match parsed:
        case SqliteUrl():
            reasons.append(
                f"{setting} is the embedded SQLite store, which is lost with the pod; "
                "point it at Cosmos DB or Azure SQL"
            )
        case CosmosUrl(verify_tls=False):
            reasons.append(f"{setting} turns TLS certificate verification off (verify=false)")
        case OdbcUrl(options=options):
            for option, bad_values in _ODBC_INSECURE.items():
                if options.get(option, "").lower() in bad_values:
                    reasons.append(f"{setting} sets {option}={options[option]}")
    if key == COSMOS_EMULATOR_KEY:
        reasons.append("the Cosmos key is the public emulator key")
    return reasons


def _odbc_options(connection_string: str) -> dict[str, str]:
    options = {}
    for part in re.findall(r"([^=;]+)=(\{[^}]*\}|[^;]*)", connection_string):
        options[part[0].strip().lower()] = part[1].strip()
    return options
