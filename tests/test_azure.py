"""Azure Blob Storage, on a real Azurite server: one ``storage_options`` dict (adlfs's
``connection_string``) serves a shared ``az://`` store (obstore) and its ``az://`` Zarr
features (adlfs) alike. The shared-store suites run here too, through the ``where``
fixture; the translation of each scheme's names is checked below without a server."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zarr

import alma_store
from alma_store.storage import obstore_config

from .conftest import AZURITE_KEY, Azurite, run_python

pytest.importorskip("adlfs")
pytest.importorskip("obstore")


def put_features(options: dict[str, Any], url: str, n: int) -> np.ndarray:
    x = np.random.default_rng(n).normal(size=(n, 3)).astype(np.float32)
    arr = zarr.create_array(
        url, shape=x.shape, chunks=(64, 3), dtype=x.dtype, storage_options=options
    )
    arr[:] = x
    return x


def test_a_shared_store_and_its_features_on_azure_with_one_dict(azurite: Azurite) -> None:
    options = azurite.options()
    features = f"az://cont/{uuid.uuid4().hex}.zarr"
    x = put_features(options, features, 300)
    url = f"az://cont/{uuid.uuid4().hex}"
    with alma_store.create(url, features, shared=True, storage_options=options) as store:
        store.add_labels([4, 7, 250], [1, 0, 1], relative_to="dataset")
        assert np.array_equal(store.labeled[[0, 1, 2]], x[[4, 7, 250]])
    code = """
import json, sys, numpy as np, alma_store
url, options = sys.argv[1], json.loads(sys.argv[2])
with alma_store.open(url, storage_options=options) as store:
    store.add_labels([0], [1])  # the first Unlabeled item: dataset index 0
    print(json.dumps([store.labels.tolist(), float(np.asarray(store.unlabeled).sum()),
                      store.verify()["records"]]))
"""
    labels, total, records = json.loads(
        run_python(code, url, json.dumps(options)).stdout.splitlines()[-1]
    )
    assert labels == [1, 1, 0, 1] and records == 2  # another process, the same dict
    rest = np.delete(np.arange(300), [0, 4, 7, 250])
    assert total == pytest.approx(float(x[rest].sum()), rel=1e-5)


def test_the_emulator_by_obstore_names_too(azurite: Azurite) -> None:
    """obstore's own names pass through untouched (for a store without Zarr features)."""
    options = {
        "account_name": "devstoreaccount1",
        "account_key": AZURITE_KEY,
        "endpoint": azurite.endpoint,
    }
    url = f"az://cont/{uuid.uuid4().hex}"
    with alma_store.create(url, n_items=10, shared=True, storage_options=options) as store:
        store.add_labels([2], [5], relative_to="dataset")
    with alma_store.open(url, storage_options=azurite.options(), mode="r") as store:
        assert store.labels.tolist() == [5]


def test_a_wrong_key_is_refused_before_anything_is_written(azurite: Azurite) -> None:
    wrong = azurite.connection_string.replace(AZURITE_KEY, "d3Jvbmcga2V5" * 8)
    url = f"az://cont/{uuid.uuid4().hex}"
    with pytest.raises(alma_store.AlmaError):
        alma_store.create(
            url, n_items=10, shared=True, storage_options={"connection_string": wrong}
        )
    with pytest.raises(alma_store.StoreNotFoundError):
        alma_store.open(url, storage_options=azurite.options())


# -- the translation, scheme by scheme ---------------------------------------------


def test_s3_names() -> None:
    got = obstore_config(
        "s3://b/x",
        {
            "endpoint_url": "http://127.0.0.1:9",
            "key": "k",
            "secret": "s",
            "token": "t",
            "client_kwargs": {"region_name": "eu-west-1"},
            "config_kwargs": {"retries": {}},
            "aws_virtual_hosted_style_request": "false",
        },
    )
    assert got == {
        "config": {
            "endpoint": "http://127.0.0.1:9",
            "access_key_id": "k",
            "secret_access_key": "s",
            "session_token": "t",
            "region": "eu-west-1",
            "aws_virtual_hosted_style_request": "false",
        },
        "client_options": {"allow_http": True},
    }
    with pytest.raises(alma_store.InvalidInputError, match="only region_name"):
        obstore_config("s3://b", {"client_kwargs": {"verify": False}})
    assert obstore_config("s3://b", {"anon": True})["config"] == {"skip_signature": True}


def test_gcs_names(tmp_path: Path) -> None:
    got = obstore_config("gs://b/x", {"endpoint_url": "http://127.0.0.1:4443", "project": "p"})
    assert got == {
        "config": {"base_url": "http://127.0.0.1:4443"},
        "client_options": {"allow_http": True},
    }
    secret = tmp_path / "sa.json"
    secret.write_text("{}")
    assert obstore_config("gs://b", {"token": str(secret)})["config"] == {
        "application_credentials": str(secret)
    }
    assert obstore_config("gs://b", {"token": "anon"})["config"] == {"skip_signature": True}
    assert json.loads(
        obstore_config("gs://b", {"token": {"a": 1}})["config"]["service_account_key"]
    ) == {"a": 1}
    assert obstore_config("gs://b", {"token": "google_default"})["config"] == {}
    with pytest.raises(alma_store.InvalidInputError, match="token for gs://"):
        obstore_config("gs://b", {"token": str(tmp_path / "missing.json")})
    assert (
        "allow_http"
        not in obstore_config("gs://b", {"endpoint_url": "https://x"})["client_options"]
    )


def test_azure_names() -> None:
    got = obstore_config(
        "az://c/x",
        {
            "connection_string": "DefaultEndpointsProtocol=https;AccountName=acct;"
            "AccountKey=a2V5;EndpointSuffix=core.chinacloudapi.cn",
        },
    )
    assert got == {
        "config": {
            "account_name": "acct",
            "account_key": "a2V5",
            "endpoint": "https://acct.blob.core.chinacloudapi.cn",
        },
        "client_options": {},
    }
    emulator = obstore_config("az://c", {"connection_string": "UseDevelopmentStorage=true"})
    assert emulator["config"] == {"use_emulator": True}
    sas = obstore_config(
        "abfs://c", {"account_name": "acct", "sas_token": "?sv=1&sig=x", "account_host": "h.net"}
    )
    assert sas["config"] == {
        "account_name": "acct",
        "sas_key": "sv=1&sig=x",
        "endpoint": "https://h.net",
    }
    with pytest.raises(alma_store.InvalidInputError, match="credential object"):
        obstore_config("az://c", {"credential": object()})
    with pytest.raises(alma_store.InvalidInputError, match="Key=value"):
        obstore_config("az://c", {"connection_string": "AccountName"})
    with pytest.raises(alma_store.InvalidInputError, match="not of the form"):
        obstore_config("az://c", {"connection_string": "AccountName=a;junk"})
