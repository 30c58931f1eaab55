"""One ``storage_options`` dict for both clients: fsspec's names, translated for obstore.

Features in object storage are read through zarr's fsspec store (s3fs, gcsfs,
adlfs), a shared store's objects through obstore. A user writes one dict, in the
names of the fsspec library of the URL's scheme, and it serves both: it goes to
fsspec as it is, and :func:`obstore_config` translates it here, per scheme. A
key that is not one of those below is passed to obstore as it is (obstore's own
configuration keys, e.g. ``aws_...``, ``google_...``, ``azure_...``,
``use_emulator``), and a key neither knows is refused by name.

========  ==========================================================  ===========================
scheme    fsspec names understood                                     obstore configuration
========  ==========================================================  ===========================
s3://     ``endpoint_url``, ``key``, ``secret``, ``token``, ``anon``,  ``endpoint``,
          ``client_kwargs={"region_name": ...}``, ``config_kwargs``   ``access_key_id``, ...
gs://     ``endpoint_url``, ``token`` (a file, a dict, ``"anon"``),   ``base_url``,
          ``project`` (not needed for objects)                        ``service_account_...``
az://     ``connection_string``, ``account_name``, ``account_key``,   ``account_name``,
abfs://   ``sas_token``, ``account_host``, ``anon``, ``tenant_id``,    ``account_key``,
          ``client_id``, ``client_secret``                            ``sas_key``, ``endpoint``
========  ==========================================================  ===========================

Everywhere: ``client_options`` are obstore's HTTP client options as they are
(``{"timeout": "30s"}``), and an ``http://`` endpoint (a local server or
emulator) turns on ``allow_http``: nothing falls back to a public endpoint the
options did not name, and plain HTTP is used only where an endpoint says so.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

from ..errors import InvalidInputError

__all__ = ["obstore_config", "parse_connection_string"]

_S3_KEYS = {"key": "access_key_id", "secret": "secret_access_key", "token": "session_token"}
_AZURE_KEYS = {
    "account_name": "account_name",
    "account_key": "account_key",
    "tenant_id": "tenant_id",
    "client_id": "client_id",
    "client_secret": "client_secret",
}


def obstore_config(url: str, options: dict[str, Any] | None) -> dict[str, Any]:
    """fsspec-style ``storage_options`` for ``url`` as obstore ``from_url`` arguments.

    Parameters
    ----------
    url
        The store's URL; its scheme says which names are translated (module docs).
    options
        The user's ``storage_options`` (fsspec names, or obstore's own).

    Returns
    -------
    dict
        ``{"config": ..., "client_options": ...}`` for ``obstore.store.from_url``.

    Raises
    ------
    InvalidInputError
        A value that cannot be translated (an option object where a string is needed,
        a malformed connection string, a client keyword obstore has no use for).
    """
    scheme = url.split("://", 1)[0].lower()
    translate: Callable[[str, Any, dict[str, Any]], bool]
    if scheme in ("az", "azure", "abfs", "abfss", "adl"):
        translate = _azure
    elif scheme in ("gs", "gcs"):
        translate = _gcs
    else:
        translate = _s3
    config: dict[str, Any] = {}
    client: dict[str, Any] = {}
    for key, value in (options or {}).items():
        if key == "client_options":
            client.update(dict(value))
        elif not translate(key, value, config):
            config[key] = value  # obstore's own name (or refused by it, by name)
    endpoint = config.get("endpoint") or config.get("base_url")
    if endpoint is None and translate is _s3:
        endpoint = os.environ.get("AWS_ENDPOINT_URL", os.environ.get("AWS_ENDPOINT"))
    if str(endpoint or "").startswith("http://"):  # a local server (the environment's, too)
        client.setdefault("allow_http", True)
    return {"config": config, "client_options": client}


def _s3(key: str, value: Any, config: dict[str, Any]) -> bool:
    if key == "endpoint_url":
        config["endpoint"] = value
    elif key in _S3_KEYS:
        config[_S3_KEYS[key]] = value
    elif key == "anon":
        config["skip_signature"] = bool(value)
    elif key == "client_kwargs":
        for inner, inner_value in dict(value).items():
            if inner != "region_name":
                raise InvalidInputError(
                    f"storage_options client_kwargs {inner!r} is not used by the store's "
                    "object-storage client (only region_name is)"
                )
            config["region"] = inner_value
    elif key == "config_kwargs":
        pass  # botocore's retry and timeout settings: the store's client has its own
    else:
        return False
    return True


def _gcs(key: str, value: Any, config: dict[str, Any]) -> bool:
    if key == "endpoint_url":
        config["base_url"] = value
    elif key == "token":
        if value == "anon":
            config["skip_signature"] = True
        elif isinstance(value, dict):
            config["service_account_key"] = json.dumps(value)
        elif isinstance(value, str | os.PathLike) and os.path.isfile(value):
            config["application_credentials"] = os.fspath(value)
        elif value not in ("google_default", "cloud", None):
            raise InvalidInputError(
                "storage_options token for gs://: give a service-account file, its JSON as a "
                f"dict, 'anon', 'google_default' or 'cloud'; got a {type(value).__name__}"
            )
    elif key == "anon":
        config["skip_signature"] = bool(value)
    elif key == "project":
        pass  # gcsfs bills and lists buckets by project; objects need none
    else:
        return False
    return True


def _azure(key: str, value: Any, config: dict[str, Any]) -> bool:
    if key == "connection_string":
        config.update(parse_connection_string(value))
    elif key in _AZURE_KEYS:
        config[_AZURE_KEYS[key]] = value
    elif key == "sas_token":
        config["sas_key"] = str(value).lstrip("?")
    elif key == "account_host":
        config["endpoint"] = f"https://{value}"
    elif key == "anon":
        config["skip_signature"] = bool(value)
    elif key == "credential":
        raise InvalidInputError(
            "storage_options credential (an Azure credential object) cannot be used by the "
            "store's object-storage client; give account_key, sas_token, connection_string, "
            "or tenant_id with client_id and client_secret"
        )
    else:
        return False
    return True


def parse_connection_string(text: object) -> dict[str, Any]:
    """An Azure Storage connection string as obstore configuration.

    ``AccountName``, ``AccountKey``, ``SharedAccessSignature``, ``BlobEndpoint``
    (else ``DefaultEndpointsProtocol`` and ``EndpointSuffix`` make one) and
    ``UseDevelopmentStorage=true`` (the emulator at its well-known address).
    """
    if not isinstance(text, str) or "=" not in text:
        raise InvalidInputError("storage_options connection_string must be 'Key=value;...'")
    parts: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in text.split(";"))):
        name, sep, value = item.partition("=")
        if not sep:
            raise InvalidInputError(
                f"storage_options connection_string: {name!r} is not of the form Key=value"
            )
        parts[name.strip().lower()] = value.strip()
    if parts.get("usedevelopmentstorage", "").lower() == "true":
        return {"use_emulator": True}
    config: dict[str, Any] = {}
    if "accountname" in parts:
        config["account_name"] = parts["accountname"]
    if "accountkey" in parts:
        config["account_key"] = parts["accountkey"]
    if "sharedaccesssignature" in parts:
        config["sas_key"] = parts["sharedaccesssignature"].lstrip("?")
    if "blobendpoint" in parts:
        config["endpoint"] = parts["blobendpoint"].rstrip("/")
    elif "accountname" in parts:
        protocol = parts.get("defaultendpointsprotocol", "https")
        suffix = parts.get("endpointsuffix", "core.windows.net")
        config["endpoint"] = f"{protocol}://{parts['accountname']}.blob.{suffix}"
    return config
